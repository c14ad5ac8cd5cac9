"""The ``mepkg`` command: one sub-command per pipeline stage.

Each handler parses its arguments, calls one mepkg function and writes its
outputs; the logic lives in the stage modules.

The one error path (``main``): output locations are checked before any work
starts; an anticipated failure (bad input: ``ValueError``,
``FileNotFoundError``, ``KeyError`` with a message, an ``OSError`` naming a
file) is printed as one line ``mepkg <command>: error: ...``, exit code 2;
Ctrl-C prints ``interrupted``, exit code 130; anything else prints one line
saying how to see its traceback (``-v``), exit code 1. Bad options are
reported the same way (one line, exit code 2), without the usage block.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mepkg import __version__

log = logging.getLogger("mepkg")


# ---------------------------------------------------------------- data
def _cmd_labels(args: argparse.Namespace) -> None:
    from mepkg.atomic import write_csv
    from mepkg.datasets import read_labels

    labels = read_labels(args.dataset, args.labels, emotion_map=_parse_map(args.emotion_map))
    write_csv(labels, args.out)
    micro = labels[labels.type == "micro"]
    log.info("%s: %d events (%d micro), %d subjects, %d videos; emotions %s",
             args.out, len(labels), len(micro), labels.subject.nunique(),
             labels.groupby(["subject", "video"]).ngroups,
             dict(micro.emotion.value_counts()))


def _cmd_manifest(args: argparse.Namespace) -> None:
    from mepkg.atomic import write_csv
    from mepkg.datasets import scan_dataset
    from mepkg.datasets.generic import FolderRateError

    try:
        labels, manifest = scan_dataset(args.dataset, args.root, label_files=args.labels,
                                        emotion_map=_parse_map(args.emotion_map),
                                        folder_fps=args.folder_fps)
    except FolderRateError as error:
        raise ValueError(f"{error.folder}: a frame folder has no frame rate; pass the rate of "
                         f"the dataset's frame folders with --folder-fps (e.g. --folder-fps 200)"
                         ) from None
    out = Path(args.out)
    write_csv(labels, out / "labels.csv")
    write_csv(manifest, out / "manifest.csv")
    log.info("%s: %d videos (%d missing frames filled), %d events",
             out, len(manifest), int(manifest.n_missing.sum()), len(labels))


def _cmd_synth(args: argparse.Namespace) -> None:
    from mepkg.synth import generate_benchmark

    from mepkg.synth.hazards import HazardConfig

    hazards = HazardConfig(**{name: True for name in args.hazards}, flicker=args.flicker,
                           codec=args.codec, quality=args.quality)
    generate_benchmark(args.out, size=args.size, layout=args.layout, seed=args.seed,
                       progress=True, hazards=hazards)


# ---------------------------------------------------------------- features
def _frame_rate(path: str, fps: float | None) -> float | None:
    """The rate of ``path``: ``--fps`` if given; a frame folder needs it."""
    if fps is None and Path(path).is_dir():
        raise ValueError(f"{path} is a frame folder, which records no frame rate; pass it with "
                         f"--fps (CAS(ME)^3: --fps 30, SAMM-LV: --fps 200)")
    if fps is None and not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such video file or frame folder")
    return fps


def _cmd_landmarks(args: argparse.Namespace) -> None:
    from mepkg.datasets import identify_video
    from mepkg.h5io import write_landmarks
    from mepkg.landmarks import detect_video_landmarks

    fps = _frame_rate(args.input, args.fps)
    subject, video, vid = identify_video(args.input, args.subject)
    track = detect_video_landmarks(args.input, k=args.k, frame_skip=args.frame_skip,
                                   backend=args.backend, progress=True, fps=fps)
    track.attrs.update({"subject": subject, "video_id": vid})
    write_landmarks(args.out, track)


def _cmd_features(args: argparse.Namespace) -> None:
    from mepkg.datasets import identify_video
    from mepkg.features import FeatureConfig, run_features

    fps = _frame_rate(args.input, args.fps)
    subject, video, vid = identify_video(args.input, args.subject)
    config = FeatureConfig(k=args.k, frame_skip=args.frame_skip, backend=args.backend)
    run_features(args.input, args.out, config=config, landmarks=args.landmarks,
                 debug_figure=args.debug_figure, progress=True, fps=fps, subject=subject,
                 video=video, video_id=args.video_id or vid)


# ---------------------------------------------------------------- model
def _cmd_train_fold(args: argparse.Namespace) -> None:
    from mepkg.train import TrainConfig, resolve_device, run_fold

    resolve_device(args.device)   # a bad --device fails before any work
    overrides = {"epochs": args.epochs} if args.epochs is not None else {}
    config = TrainConfig(device=args.device, threads=args.threads, **overrides)
    run_fold(features_dir=args.features, labels=args.labels, subject=args.subject,
             out_dir=args.out, config=config)


def _cmd_convert_checkpoint(args: argparse.Namespace) -> None:
    from mepkg.model import convert_release_checkpoint

    convert_release_checkpoint(args.input, args.output, k=args.k, frame_skip=args.frame_skip,
                               fps=args.fps)


# ---------------------------------------------------------------- decoding and scores
def _cmd_decode(args: argparse.Namespace) -> None:
    from mepkg.decode import run_decode

    run_decode(args.scores, args.out, priors_file=args.priors, labels=args.labels,
               preset=args.preset, megc_out=args.megc_out)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from mepkg.metrics import run_evaluate

    emotions = tuple(e.strip() for e in args.emotions.split(",") if e.strip())
    if not emotions:
        raise ValueError(f"--emotions {args.emotions!r} names no emotion; give a comma-separated "
                         f"list such as negative,positive,surprise")
    if args.mode == "release" and args.frame_skip is None:
        raise ValueError("--mode release scores at the sampled rate: give the dataset's "
                         "--frame-skip (SAMM-LV 7, CAS(ME)^3 1)")
    run_evaluate(args.pred, args.gt, args.out, mode=args.mode, emotions=emotions,
                 frame_skip=args.frame_skip)


def _cmd_spot(args: argparse.Namespace) -> None:
    _frame_rate(args.video, args.fps)
    from mepkg.spot import spot_video

    spot_video(args.video, model=args.model, out_dir=args.out, fps=args.fps,
               device=args.device, progress=True)


def _cmd_package_model(args: argparse.Namespace) -> None:
    from mepkg.decode import read_priors
    from mepkg.package import package_model

    priors, _ = read_priors(args.priors)        # a fixed k' travels in priors.k_prime
    package_model(args.model, args.labels, args.out, priors=priors)


# ---------------------------------------------------------------- parser
def _parse_map(items: list[str] | None) -> dict[str, str] | None:
    """``["contempt=negative", ...]`` -> ``{"contempt": "negative"}``."""
    if not items:
        return None
    mapping = {}
    for item in items:
        raw, sep, mapped = item.partition("=")
        if not sep:
            raise ValueError(f"--emotion-map expects RAW=CLASS, got {item!r}")
        mapping[raw.strip().lower()] = mapped.strip().lower()
    return mapping


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``mepkg <cmd>: error: ...``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value
    parse.__name__ = kind.__name__
    return parse


def _device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps (what torch.device accepts here)."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda, "
                                         f"cuda:N or mps")
    return text


POS_INT, POS_FLOAT = _positive(int), _positive(float)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mepkg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mepkg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging; tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    datasets = ["casme3", "sammlv", "generic"]

    def outputs(p, *specs):
        """Output options checked before the work: (attribute, "file" | "dir", option)."""
        p.set_defaults(outputs=specs)

    p = sub.add_parser("labels", help="label sheet(s) -> labels.csv (no frames needed)")
    p.add_argument("--dataset", required=True, choices=datasets)
    p.add_argument("--labels", required=True, nargs="+", help="label sheet(s): xlsx or csv")
    p.add_argument("--emotion-map", nargs="*", metavar="RAW=CLASS",
                   help="extra raw emotion -> class mappings")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_labels)
    outputs(p, ("out", "file", "--out"))

    p = sub.add_parser("manifest", help="scan a dataset root -> labels.csv + manifest.csv")
    p.add_argument("--dataset", required=True, choices=datasets)
    p.add_argument("--root", required=True)
    p.add_argument("--labels", nargs="+", help="label sheet(s) if not in their usual place")
    p.add_argument("--emotion-map", nargs="*", metavar="RAW=CLASS")
    p.add_argument("--folder-fps", type=POS_FLOAT,
                   help="generic: frame rate of its frame folders (required when it has any; "
                        "video files keep their own)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_manifest)
    outputs(p, ("out", "dir", "--out"))

    p = sub.add_parser("synth", help="render the synthetic ME benchmark")
    p.add_argument("--size", default="tiny", choices=["tiny", "small", "standard"])
    p.add_argument("--layout", default="sammlv", choices=datasets)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hazards", nargs="*", default=[], metavar="HAZARD",
                   choices=["occluder", "drift_out", "leave"],
                   help="real footage's hazards: occluder, drift_out, leave (default: none); "
                        "hazards.csv records where they are")
    p.add_argument("--flicker", type=float, default=0.0,
                   help="lighting flicker amplitude, e.g. 0.1 (default 0: off)")
    p.add_argument("--codec", default="", choices=["", "mp4v", "h264"],
                   help="compressed .mp4 videos (layout generic); default MJPG .avi")
    p.add_argument("--quality", type=int, default=88,
                   help="JPEG quality of frames / encoder quality of videos (default 88)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_synth)
    outputs(p, ("out", "dir", "--out"))

    def video_stage(name: str, help: str) -> argparse.ArgumentParser:
        """The arguments landmarks and features share: one video in, one HDF5 out."""
        p = sub.add_parser(name, help=help)
        p.add_argument("input", help="video file or frame folder")
        p.add_argument("--out", required=True)
        p.add_argument("--fps", type=POS_FLOAT,
                       help="frame rate (required for a frame folder; default: the video file's)")
        p.add_argument("--subject", help="subject id recorded in the file (default: from the path)")
        p.add_argument("--k", type=POS_INT, default=30, help="window length in sampled frames")
        p.add_argument("--frame-skip", type=POS_INT, default=7)
        p.add_argument("--backend", default="dlib", choices=["dlib", "face_alignment"])
        return p

    p = video_stage("landmarks", "video -> reference-frame landmarks (HDF5)")
    p.set_defaults(func=_cmd_landmarks)
    outputs(p, ("out", "file", "--out"))

    p = video_stage("features", "video -> ROI optical-flow window features (HDF5)")
    p.add_argument("--video-id", help="video id recorded in the file (default: from the path, "
                                      "e.g. spNO.1_a for .../spNO.1/a/color)")
    p.add_argument("--landmarks", help="landmarks HDF5 from `mepkg landmarks` (else detected)")
    p.add_argument("--debug-figure", help="PNG: crop box, landmarks and ROIs on a frame")
    p.set_defaults(func=_cmd_features)
    outputs(p, ("out", "file", "--out"), ("debug_figure", "file", "--debug-figure"))

    p = sub.add_parser("train-fold", help="train one leave-one-subject-out fold")
    p.add_argument("--features", required=True, help="folder of features/<video_id>.h5")
    p.add_argument("--labels", required=True, help="labels.csv")
    p.add_argument("--subject", required=True, help="held-out subject ('all': none held out)")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=POS_INT)
    p.add_argument("--device", default="auto", type=_device)
    p.add_argument("--threads", type=POS_INT, default=1)
    p.set_defaults(func=_cmd_train_fold)
    outputs(p, ("out", "dir", "--out"))

    p = sub.add_parser("convert-checkpoint", help="authors' released .pkl -> mepkg model .pt")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--k", type=POS_INT,
                   help="window length the release was trained with (SAMM-LV 30, CAS(ME)^3 50)"
                        "; required unless the file records it, as are the next two")
    p.add_argument("--frame-skip", type=POS_INT,
                   help="frame skip of its training data (SAMM-LV 7, CAS(ME)^3 1)")
    p.add_argument("--fps", type=POS_FLOAT,
                   help="frame rate of its training videos (SAMM-LV 200, CAS(ME)^3 30)")
    p.set_defaults(func=_cmd_convert_checkpoint)
    outputs(p, ("output", "file", "OUTPUT"))

    p = sub.add_parser("decode", help="score curves -> intervals (prior-guided)")
    p.add_argument("--scores", required=True, nargs="+", help="scores.h5 file(s)")
    p.add_argument("--priors", help="YAML of decoding priors (default: the paper's)")
    p.add_argument("--labels", help="labels.csv of the training subjects (for k')")
    p.add_argument("--out", required=True, help="intervals.csv")
    p.add_argument("--preset", choices=["megc_samm", "megc_casme3"],
                   help="the release's MEGC test-set decoding (docs/method.md §9.3)")
    p.add_argument("--megc-out", help="also write the MEGC submission CSV (1-based frames, "
                                      "vetoed rows dropped)")
    p.set_defaults(func=_cmd_decode)
    outputs(p, ("out", "file", "--out"), ("megc_out", "file", "--megc-out"))

    p = sub.add_parser("evaluate", help="STRS of predictions against ground truth")
    p.add_argument("--pred", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--mode", default="official", choices=["official", "strict", "release"],
                   help="official (MEGC), strict, or release (the authors' scoring; "
                        "docs/method.md §8)")
    p.add_argument("--frame-skip", type=int,
                   help="the dataset's frame_skip; required by --mode release")
    p.add_argument("--emotions", default="negative,positive,surprise")
    p.add_argument("--out", required=True, help="metrics.json")
    p.set_defaults(func=_cmd_evaluate)
    outputs(p, ("out", "file", "--out"))

    p = sub.add_parser("package-model",
                       help="add decoding priors and k' to a trained model (for `spot`)")
    p.add_argument("--model", required=True, help="model.pt of `train-fold --subject all`")
    p.add_argument("--labels", required=True, help="labels.csv of the training subjects")
    p.add_argument("--priors", help="YAML of decoding priors (default: the paper's)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_package_model)
    outputs(p, ("out", "file", "--out"))

    p = sub.add_parser("spot", help="apply a trained model to a new video")
    p.add_argument("video", help="video file or frame folder")
    p.add_argument("--model", required=True)
    p.add_argument("--out", default="spot_out")
    p.add_argument("--fps", type=POS_FLOAT,
                   help="frame rate (required for a frame folder; default: the video file's)")
    p.add_argument("--device", default="auto", type=_device)
    p.set_defaults(func=_cmd_spot)
    outputs(p, ("out", "dir", "--out"))
    return parser


def _one_line(err: BaseException) -> str:
    """The message of an anticipated error, on one line."""
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    elif isinstance(err, OSError) and err.filename is not None:
        text = (f"{err.filename}: {err.strerror or err}; check the path exists, is the kind "
                f"expected (file or folder) and can be read/written")
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _anticipated(err: Exception) -> bool:
    """Bad input, reported in one line: mepkg's ValueError / FileNotFoundError / OSError
    naming a file, and KeyError with a sentence (a bare missing key is a bug)."""
    if isinstance(err, KeyError):
        return bool(err.args) and " " in str(err.args[0])
    return isinstance(err, (ValueError, OSError))


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("mepkg: interrupted", file=sys.stderr)
        return 130
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    prog = f"mepkg {args.command}"
    try:
        from mepkg.atomic import check_output

        for attr, kind, option in getattr(args, "outputs", ()):
            if getattr(args, attr, None):
                check_output(getattr(args, attr), kind, option)
        args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.verbose:
            raise
        if _anticipated(err):
            print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
            return 2
        # a bug, or a failure nobody anticipated
        print(f"{prog}: error: unexpected {type(err).__name__}: {_one_line(err)}; run "
              f"`mepkg -v {args.command} ...` to see the traceback and report it",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
