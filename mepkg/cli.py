"""The ``mepkg`` command: one sub-command per pipeline stage.

Each handler parses its arguments, calls one mepkg function and writes its
outputs; the logic lives in the stage modules.

The one error path (``main``): output locations are checked before any work
starts (writable, of the right kind, and none of them naming an input file
or another output); an anticipated failure (bad input: ``mepkg.inputs.InputError``, a
``ValueError`` raised by mepkg's own checks, ``FileNotFoundError`` and other
``OSError``, ``KeyError`` with a message) is printed as one line
``mepkg <command>: error: ...``, exit code 2; Ctrl-C prints ``interrupted``,
exit code 130; anything else (a library's own ValueError included) prints
one line ``mepkg <command>: internal error: ...`` saying how to see its
traceback (``-v``), exit code 1. Bad options are reported the same way (one
line, exit code 2), without the usage block. Every line is written below any
progress bar still drawn (``mepkg.messages``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from mepkg import __version__
from mepkg.constants import (DATASETS, DECODE_PRESET_NAMES, LANDMARK_BACKENDS, MODES,
                             SYNTHETIC_SIZES)

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
    from mepkg.inputs import InputError

    try:
        labels, manifest = scan_dataset(args.dataset, args.root, label_files=args.labels,
                                        emotion_map=_parse_map(args.emotion_map),
                                        folder_fps=args.folder_fps)
    except FolderRateError as error:
        raise InputError(f"{error.folder}: {error.what}; pass the rate of the dataset's frame "
                         f"folders and rate-less video files with --folder-fps (e.g. "
                         f"--folder-fps 200)") from None
    out = Path(args.out)
    write_csv(labels, out / "labels.csv")
    write_csv(manifest, out / "manifest.csv")
    log.info("%s: %d videos (%d missing frames filled), %d events",
             out, len(manifest), int(manifest.n_missing.sum()), len(labels))


def _cmd_synth(args: argparse.Namespace) -> None:
    from mepkg.synth import generate_benchmark

    from mepkg.synth.hazards import HazardConfig

    hazards = HazardConfig(**{name: True for name in args.hazards},
                           **_given(args, "flicker", "codec", "quality"))
    generate_benchmark(args.out, size=args.size, layout=args.layout, seed=args.seed,
                       progress=show_progress(args), hazards=hazards)


# ---------------------------------------------------------------- features
def _frame_rate(path: str, fps: float | None) -> float | None:
    """The rate of ``path``: ``--fps`` if given; a frame folder needs it."""
    if fps is None and Path(path).is_dir():
        raise ValueError(f"{path} is a frame folder, which records no frame rate; pass it with "
                         f"--fps (CAS(ME)^3: --fps 30, SAMM-LV: --fps 200)")
    if fps is None and not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such video file or frame folder")
    return fps


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` the user gave: the rest keep the settings' defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _feature_config(args: argparse.Namespace):
    from mepkg.features import FeatureConfig

    return FeatureConfig(**_given(args, "k", "frame_skip", "backend"))


def _cmd_landmarks(args: argparse.Namespace) -> None:
    from mepkg.datasets import identify_video
    from mepkg.h5io import write_landmarks
    from mepkg.landmarks import detect_video_landmarks

    fps = _frame_rate(args.input, args.fps)
    subject, video, vid = identify_video(args.input, args.subject)
    config = _feature_config(args)
    track = detect_video_landmarks(args.input, k=config.k, frame_skip=config.frame_skip,
                                   backend=config.backend, progress=show_progress(args), fps=fps)
    track.attrs.update({"subject": subject, "video_id": vid})
    write_landmarks(args.out, track)


def _cmd_features(args: argparse.Namespace) -> None:
    from mepkg.datasets import identify_video
    from mepkg.features import run_features

    fps = _frame_rate(args.input, args.fps)
    subject, video, vid = identify_video(args.input, args.subject)
    config = _feature_config(args)
    run_features(args.input, args.out, config=config, landmarks=args.landmarks,
                 debug_figure=args.debug_figure, progress=show_progress(args), fps=fps, subject=subject,
                 video=video, video_id=args.video_id or vid)


# ---------------------------------------------------------------- model
def _cmd_train_fold(args: argparse.Namespace) -> None:
    from mepkg.jobs import set_openmp_wait

    set_openmp_wait()   # before torch loads
    from mepkg.train import TrainConfig, resolve_device, run_fold

    config = TrainConfig(**_given(args, "epochs", "device", "threads"))
    resolve_device(config.device)   # a bad --device fails before any work
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
    from mepkg.metrics import EvaluateSettings, run_evaluate

    emotions = EvaluateSettings.emotions
    if args.emotions is not None:
        emotions = tuple(e.strip() for e in args.emotions.split(",") if e.strip())
    if not emotions:
        raise ValueError(f"--emotions {args.emotions!r} names no emotion; give a comma-separated "
                         f"list such as negative,positive,surprise")
    run_evaluate(args.pred, args.gt, args.out, emotions=emotions, frame_skip=args.frame_skip,
                 **_given(args, "mode"))


def _cmd_spot(args: argparse.Namespace) -> None:
    _frame_rate(args.video, args.fps)
    from mepkg.spot import spot_video

    spot_video(args.video, model=args.model, out_dir=args.out, fps=args.fps, progress=show_progress(args),
               **_given(args, "device"))


def _cmd_package_model(args: argparse.Namespace) -> None:
    from mepkg.decode import read_priors
    from mepkg.package import package_model

    priors, _ = read_priors(args.priors)        # a fixed k' travels in priors.k_prime
    package_model(args.model, args.labels, args.out, priors=priors,
                  trained_on={"dataset": args.dataset} if args.dataset else None)


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
            whole = kind is int and _is_number(text)
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number" if whole else f"{text!r} is not a number"
            ) from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value
    parse.__name__ = kind.__name__
    return parse


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps (what torch.device accepts here)."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use auto, cpu, cuda, "
                                         f"cuda:N or mps")
    return text


POS_INT, POS_FLOAT = _positive(int), _positive(float)


def _window(text: str) -> int:
    """A window length k: an even whole number >= 2 (windows overlap by k/2)."""
    value = POS_INT(text)
    if value < 2 or value % 2:
        raise argparse.ArgumentTypeError(f"{text!r} must be an even number >= 2 (windows "
                                         f"overlap by k/2)")
    return value


DESCRIPTION = """\
mepkg: micro-expression spotting and recognition in long videos (prior-guided
video-level regression). One sub-command per pipeline stage; the Snakemake
workflow (snakemake --cores 8) runs them all for every video and LOSO fold.
"""
EPILOG = """\
the pipeline by hand, one video and one fold:
  mepkg manifest --dataset sammlv --root /data/SAMM-LV --out run/
  mepkg features /data/SAMM-LV/006/006_1 --fps 200 --out run/features/006_1.h5
  mepkg train-fold --features run/features --labels run/labels.csv --subject 006 --out run/folds/006
  mepkg decode --scores run/folds/006/scores.h5 --labels run/labels.csv --out run/006.csv
  mepkg evaluate --pred run/006.csv --gt run/labels.csv --out run/metrics.json
apply a trained model:
  mepkg spot my_video.mp4 --model results/<run>/model_all.pt

`mepkg <command> --help` describes a command and its options. Bad input ends in
one line `mepkg <command>: error: ...` (exit code 2); -v shows tracebacks.
"""


def setting(action: argparse.Action, where: str) -> argparse.Action:
    """Mark an option whose default is a settings field (``"module:Class.field"``): it is
    left unset (None) so that the dataclass decides, and its help shows that default."""
    action.setting = where
    return action


def _setting_default(where: str) -> str:
    """The default of ``"module:Class.field"``, read from the dataclass (only for --help)."""
    import importlib

    module, name = where.split(":")
    cls, field = name.split(".")
    value = getattr(getattr(importlib.import_module(module), cls), field)
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples kept as written; every option's default after its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if getattr(action, "setting", None) and "(default:" not in text:
            text += f" (default: {_setting_default(action.setting)})"
        if ("%(default)" not in text and action.option_strings and not action.required
                and action.default not in (None, False, argparse.SUPPRESS)):
            text += " (default: %(default)s)"
        return text


def _common_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """-v/-q/--progress, accepted before and after the sub-command.

    On a sub-command their defaults are SUPPRESS, so that an option given
    before the sub-command is not reset by the sub-parser.
    """
    def default(value):
        return value if top else argparse.SUPPRESS

    parser.add_argument("-v", "--verbose", action="store_true", default=default(False),
                        help="debug logging; the traceback of an unexpected error")
    parser.add_argument("-q", "--quiet", action="store_true", default=default(False),
                        help="warnings and errors only")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction,
                        default=default(None),
                        help="progress bars on stderr (default: only when stderr is a terminal)")


def show_progress(args: argparse.Namespace) -> bool:
    """--progress / --no-progress, else bars only when stderr is a terminal."""
    chosen = getattr(args, "progress", None)
    return sys.stderr.isatty() if chosen is None else bool(chosen)


def log_level(args: argparse.Namespace) -> int:
    """-v: debug, -q: warnings only, else info."""
    if getattr(args, "verbose", False):
        return logging.DEBUG
    return logging.WARNING if getattr(args, "quiet", False) else logging.INFO


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mepkg", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"mepkg {__version__}")
    _common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                title="commands", metavar="<command>")
    datasets = list(DATASETS)

    def command(name: str, help: str, description: str, example: str) -> argparse.ArgumentParser:
        """A sub-command: one-line help, a description and an example."""
        p = sub.add_parser(name, help=help, description=description,
                           epilog=f"example:\n  {example}", formatter_class=_HelpFormatter)
        _common_options(p, top=False)
        return p

    def outputs(p, *specs):
        """Output options checked before the work: (attribute, "file" | "dir", option)."""
        p.set_defaults(outputs=specs)

    p = command("labels", "label sheet(s) -> labels.csv (no frames needed)",
                "Read a dataset's label sheet(s) into labels.csv: one row per event, 0-based "
                "original frames,\nits type (micro/macro) and emotion mapped to the analysed "
                "classes (docs/method.md §1).",
                "mepkg labels --dataset sammlv --labels SAMM_LongVideos_V3_Release.xlsx "
                "--out labels.csv")
    p.add_argument("--dataset", required=True, choices=datasets,
                   help="which dataset's sheet layout")
    p.add_argument("--labels", required=True, nargs="+", help="label sheet(s): xlsx or csv")
    p.add_argument("--emotion-map", nargs="*", metavar="RAW=CLASS",
                   help="extra raw emotion -> class mappings")
    p.add_argument("--out", required=True, help="labels.csv to write")
    p.set_defaults(func=_cmd_labels)
    outputs(p, ("out", "file", "--out"))

    p = command("manifest", "scan a dataset root -> labels.csv + manifest.csv",
                "Scan a dataset folder: the label sheets -> labels.csv, every video (file or "
                "frame folder)\nwith its frame rate, frame count and missing frames -> "
                "manifest.csv.",
                "mepkg manifest --dataset casme3 --root /data/CASME3/part_A --out run/")
    p.add_argument("--dataset", required=True, choices=datasets, help="the dataset's layout")
    p.add_argument("--root", required=True, help="the dataset's root folder")
    p.add_argument("--labels", nargs="+", help="label sheet(s) if not in their usual place")
    p.add_argument("--emotion-map", nargs="*", metavar="RAW=CLASS",
                   help="extra raw emotion -> class mappings")
    p.add_argument("--folder-fps", type=POS_FLOAT,
                   help="generic: frame rate of its frame folders and of video files that "
                        "record none (required when it has any; other video files keep theirs)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_manifest)
    outputs(p, ("out", "dir", "--out"))

    p = command("synth", "render the synthetic ME benchmark",
                "Render the embedded synthetic micro-expression benchmark (frame folders and "
                "label sheets\nin a dataset's layout), for trying the pipeline without a "
                "licensed dataset.",
                "mepkg synth --size small --layout sammlv --out data/synthetic")
    p.add_argument("--size", default="tiny", choices=SYNTHETIC_SIZES,
                   help="how many subjects and videos")
    p.add_argument("--layout", default="sammlv", choices=datasets,
                   help="whose folder layout and label sheets to imitate")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generator")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--hazards", nargs="*", default=[], metavar="HAZARD",
                   choices=["occluder", "drift_out", "leave"],
                   help="real footage's hazards: occluder, drift_out, leave (none unless "
                        "given); hazards.csv records where they are")
    setting(p.add_argument("--flicker", type=float,
                           help="lighting flicker amplitude, e.g. 0.1 (0: off)"),
            "mepkg.synth.hazards:HazardConfig.flicker")
    setting(p.add_argument("--codec", choices=["", "mp4v", "h264"],
                           help="compressed .mp4 videos (layout generic); '' writes MJPG .avi"),
            "mepkg.synth.hazards:HazardConfig.codec")
    setting(p.add_argument("--quality", type=int,
                           help="JPEG quality of frames / encoder quality of videos"),
            "mepkg.synth.hazards:HazardConfig.quality")
    p.set_defaults(func=_cmd_synth)
    outputs(p, ("out", "dir", "--out"))

    def video_stage(name: str, help: str, description: str,
                    example: str) -> argparse.ArgumentParser:
        """The arguments landmarks and features share: one video in, one HDF5 out."""
        p = command(name, help, description, example)
        p.add_argument("input", help="video file or frame folder")
        p.add_argument("--out", required=True, help="HDF5 file to write")
        p.add_argument("--fps", type=POS_FLOAT,
                       help="frame rate (required for a frame folder; default: the video file's)")
        p.add_argument("--subject", help="subject id recorded in the file (default: from the path)")
        setting(p.add_argument("--k", type=_window,
                               help="window length in sampled frames (SAMM-LV 30, CAS(ME)^3 50)"),
                "mepkg.features:FeatureConfig.k")
        setting(p.add_argument("--frame-skip", type=POS_INT,
                               help="keep every n-th frame (SAMM-LV 7, CAS(ME)^3 1)"),
                "mepkg.features:FeatureConfig.frame_skip")
        setting(p.add_argument("--backend", choices=LANDMARK_BACKENDS,
                               help="landmark detector: dlib (offline) or face_alignment (FAN)"),
                "mepkg.features:FeatureConfig.backend")
        return p

    p = video_stage("landmarks", "video -> reference-frame landmarks (HDF5)",
                    "Detect the face and its 68 landmarks at the reference frame of every "
                    "window\n(docs/method.md §2.1).",
                    "mepkg landmarks /data/SAMM-LV/006/006_1 --fps 200 --out 006_1.h5")
    p.set_defaults(func=_cmd_landmarks)
    outputs(p, ("out", "file", "--out"))

    p = video_stage("features", "video -> ROI optical-flow window features (HDF5)",
                    "Compute the 36-channel ROI optical-flow features of every window "
                    "(docs/method.md §2);\nlandmarks are detected unless --landmarks gives "
                    "them.",
                    "mepkg features video.mp4 --k 50 --frame-skip 1 --out features/video.h5")
    p.add_argument("--video-id", help="video id recorded in the file (default: from the path, "
                                      "e.g. spNO.1_a for .../spNO.1/a/color)")
    p.add_argument("--landmarks", help="landmarks HDF5 from `mepkg landmarks` (else detected)")
    p.add_argument("--debug-figure", help="figure (.png, .pdf or .svg): crop box, landmarks "
                                          "and ROIs on a frame")
    p.set_defaults(func=_cmd_features)
    outputs(p, ("out", "file", "--out"), ("debug_figure", "file", "--debug-figure"))

    p = command("train-fold", "train one leave-one-subject-out fold",
                "Train the slow-fast Mamba on every subject but one and write its model, the "
                "held-out\nvideos' score curves (scores.h5) and a training log.",
                "mepkg train-fold --features run/features --labels run/labels.csv "
                "--subject 006 --out run/folds/006")
    p.add_argument("--features", required=True, help="folder of features/<video_id>.h5")
    p.add_argument("--labels", required=True, help="labels.csv")
    p.add_argument("--subject", required=True, help="held-out subject ('all': none held out)")
    p.add_argument("--out", required=True, help="output folder (model.pt, scores.h5, log)")
    setting(p.add_argument("--epochs", type=POS_INT, help="training epochs (docs/method.md §5)"),
            "mepkg.train:TrainConfig.epochs")
    setting(p.add_argument("--device", type=_device,
                           help="auto (a GPU when torch sees one), cpu, cuda, cuda:N or mps"),
            "mepkg.train:TrainConfig.device")
    setting(p.add_argument("--threads", type=POS_INT, help="CPU threads for torch"),
            "mepkg.train:TrainConfig.threads")
    p.set_defaults(func=_cmd_train_fold)
    outputs(p, ("out", "dir", "--out"))

    p = command("convert-checkpoint", "authors' released .pkl -> mepkg model .pt",
                "Convert a checkpoint released with the paper's code into a mepkg model file "
                "that\n`spot` and `package-model` read.",
                "mepkg convert-checkpoint SAMMLV.pkl samm.pt --k 30 --frame-skip 7 --fps 200")
    p.add_argument("input", help="the released checkpoint (.pkl)")
    p.add_argument("output", help="mepkg model file (.pt) to write")
    p.add_argument("--k", type=_window,
                   help="window length the release was trained with (SAMM-LV 30, CAS(ME)^3 50)"
                        "; required unless the file records it, as are the next two")
    p.add_argument("--frame-skip", type=POS_INT,
                   help="frame skip of its training data (SAMM-LV 7, CAS(ME)^3 1)")
    p.add_argument("--fps", type=POS_FLOAT,
                   help="frame rate of its training videos (SAMM-LV 200, CAS(ME)^3 30)")
    p.set_defaults(func=_cmd_convert_checkpoint)
    outputs(p, ("output", "file", "OUTPUT"))

    p = command("decode", "score curves -> intervals (prior-guided)",
                "Turn score curves into (onset, apex, offset) intervals with an emotion, by "
                "prior-guided\ninterval selection (docs/method.md §6).",
                "mepkg decode --scores run/folds/006/scores.h5 --labels run/labels.csv "
                "--out 006.csv")
    p.add_argument("--scores", required=True, nargs="+", help="scores.h5 file(s)")
    p.add_argument("--priors", help="YAML of decoding priors (default: the paper's)")
    p.add_argument("--labels", help="labels.csv of the training subjects (for k')")
    p.add_argument("--out", required=True, help="intervals.csv")
    p.add_argument("--preset", choices=DECODE_PRESET_NAMES,
                   help="the release's MEGC test-set decoding (docs/method.md §9.3)")
    p.add_argument("--megc-out", help="also write the MEGC submission CSV (1-based frames, "
                                      "vetoed rows dropped; `submission: release` in the "
                                      "priors file: the authors' rows, docs/method.md §9.3)")
    p.set_defaults(func=_cmd_decode)
    outputs(p, ("out", "file", "--out"), ("megc_out", "file", "--megc-out"))

    p = command("evaluate", "STRS of predictions against ground truth",
                "Score predicted intervals against labels.csv: STRS, spotting F1, recognition "
                "F1, UF1, UAR\n(docs/method.md §7-8).",
                "mepkg evaluate --pred predictions.csv --gt labels.csv --out metrics.json")
    p.add_argument("--pred", required=True, help="predicted intervals (intervals.csv)")
    p.add_argument("--gt", required=True, help="ground truth (labels.csv)")
    setting(p.add_argument("--mode", choices=MODES,
                           help="official (MEGC), strict, or release (the authors' scoring; "
                                "docs/method.md §8)"),
            "mepkg.metrics:EvaluateSettings.mode")
    p.add_argument("--frame-skip", type=int,
                   help="--mode release: the dataset's frame_skip, for predictions without "
                        "the frame_skip column mepkg decode writes")
    setting(p.add_argument("--emotions", help="comma-separated classes analysed by recognition"),
            "mepkg.metrics:EvaluateSettings.emotions")
    p.add_argument("--out", required=True, help="metrics.json")
    p.set_defaults(func=_cmd_evaluate)
    outputs(p, ("out", "file", "--out"))

    p = command("package-model", "add decoding priors and k' to a trained model (for `spot`)",
                "Bundle a model trained on every subject with its decoding priors and k' into "
                "the one\nfile `spot` needs.",
                "mepkg package-model --model run/folds/all/model.pt --labels run/labels.csv "
                "--out model_all.pt")
    p.add_argument("--model", required=True, help="model.pt of `train-fold --subject all`")
    p.add_argument("--labels", required=True, help="labels.csv of the training subjects")
    p.add_argument("--priors", help="YAML of decoding priors (default: the paper's)")
    p.add_argument("--dataset", help="the training dataset's name, recorded in the model file")
    p.add_argument("--out", required=True, help="packaged model file to write")
    p.set_defaults(func=_cmd_package_model)
    outputs(p, ("out", "file", "--out"))

    p = command("spot", "apply a trained model to a new video",
                "Spot and recognise micro-expressions in one video with a packaged model: "
                "intervals.csv\n(original 0-based frames, apex, score, times in seconds) and a "
                "timeline figure.",
                "mepkg spot my_video.mp4 --model results/<run>/model_all.pt --out spot_out")
    p.add_argument("video", help="video file or frame folder")
    p.add_argument("--model", required=True,
                   help="packaged model (results/<run>/model_all.pt or `package-model`'s)")
    p.add_argument("--out", default="spot_out", help="output folder")
    p.add_argument("--fps", type=POS_FLOAT,
                   help="frame rate (required for a frame folder; default: the video file's)")
    setting(p.add_argument("--device", type=_device,
                           help="auto (a GPU when torch sees one), cpu, cuda, cuda:N or mps"),
            "mepkg.train:TrainConfig.device")
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
    """Bad input, reported in one line: an InputError (mepkg.inputs), a ValueError raised
    by one of mepkg's own ``raise`` statements (its checks of files and values),
    FileNotFoundError / OSError naming a file, and KeyError with a sentence. A
    ValueError from inside a library or from Python itself (``int(nan)``) is not:
    its text does not say which input is wrong."""
    from mepkg.inputs import InputError

    if isinstance(err, KeyError):
        return bool(err.args) and " " in str(err.args[0])
    if isinstance(err, OSError):   # a file, a folder, a full disk: the text says which
        return True
    if isinstance(err, InputError):
        return True
    return isinstance(err, ValueError) and _raised_by_mepkg(err)


def _raised_by_mepkg(err: BaseException) -> bool:
    """Whether ``err`` comes from a ``raise`` statement in mepkg's own code."""
    import linecache

    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    package = str(Path(__file__).resolve().parent) + os.sep
    if not str(Path(filename).resolve()).startswith(package):
        return False
    return linecache.getline(filename, tb.tb_lineno).lstrip().startswith("raise")


def _check_outputs_are_not_inputs(args: argparse.Namespace) -> None:
    """InputError when an output names an input file (or another output): writing it
    would destroy what is being read (``evaluate --pred p.csv --out p.csv``)."""
    from mepkg.inputs import InputError

    outputs = {attr: option for attr, _, option in getattr(args, "outputs", ())}
    seen: dict[Path, str] = {}
    for attr, value in vars(args).items():
        if attr in ("func", "outputs", "command") or value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item or not (attr in outputs
                                                            or Path(item).is_file()):
                continue
            positional = attr in ("input", "video")   # convert-checkpoint INPUT, spot VIDEO
            name = outputs.get(attr, attr.upper() if positional else "--" + attr.replace("_", "-"))
            path = Path(item).resolve()
            if path in seen and (attr in outputs or seen[path] in outputs.values()):
                raise InputError(f"{name} {item} is also {seen[path]}; writing it would "
                                 f"replace what is read or written there: give another name")
            seen.setdefault(path, name)


def _print_error(text: str) -> None:
    """One line on stderr, below any progress bar still drawn (never glued to it)."""
    from mepkg.messages import write_line

    write_line(text)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("mepkg: interrupted", file=sys.stderr)
        return 130
    from mepkg.messages import BarSafeHandler

    logging.basicConfig(level=log_level(args),
                        format="%(levelname)s %(name)s: %(message)s",
                        handlers=[BarSafeHandler(sys.stderr)])
    logging.captureWarnings(True)   # Python warnings too go through the bar-safe handler
    if not args.verbose:   # FFmpeg writes its own lines into a progress bar's; mepkg names the
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")   # file itself (-v: shown)
    prog = f"mepkg {args.command}"
    try:
        from mepkg.atomic import check_output

        for attr, kind, option in getattr(args, "outputs", ()):
            if getattr(args, attr, None):
                check_output(getattr(args, attr), kind, option)
        _check_outputs_are_not_inputs(args)
        args.func(args)
    except KeyboardInterrupt:
        _print_error(f"{prog}: interrupted")
        return 130
    except Exception as err:
        if args.verbose:
            raise
        if _anticipated(err):
            _print_error(f"{prog}: error: {_one_line(err)}")
            return 2
        # a bug, or a failure nobody anticipated
        _print_error(f"{prog}: internal error: unexpected {type(err).__name__}: "
                     f"{_one_line(err)}; run `mepkg -v {args.command} ...` to see the "
                     f"traceback and report it")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
