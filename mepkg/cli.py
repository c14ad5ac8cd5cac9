"""The ``mepkg`` command: one sub-command per pipeline stage.

Each handler parses its arguments, calls one mepkg function and writes its
outputs; the logic lives in the stage modules. Errors that come from bad
input (``ValueError``, ``FileNotFoundError``, ``KeyError`` raised by mepkg
with a message) are printed as one line, without a traceback, exit code 2.
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

    labels, manifest = scan_dataset(args.dataset, args.root, label_files=args.labels,
                                    emotion_map=_parse_map(args.emotion_map))
    out = Path(args.out)
    write_csv(labels, out / "labels.csv")
    write_csv(manifest, out / "manifest.csv")
    log.info("%s: %d videos (%d missing frames filled), %d events",
             out, len(manifest), int(manifest.n_missing.sum()), len(labels))


def _cmd_synth(args: argparse.Namespace) -> None:
    from mepkg.synth import generate_benchmark

    generate_benchmark(args.out, size=args.size, layout=args.layout, seed=args.seed,
                       progress=True)


# ---------------------------------------------------------------- features
def _cmd_landmarks(args: argparse.Namespace) -> None:
    from mepkg.h5io import write_landmarks
    from mepkg.landmarks import detect_video_landmarks

    track = detect_video_landmarks(args.input, k=args.k, frame_skip=args.frame_skip,
                                   backend=args.backend, progress=True)
    write_landmarks(args.out, track)


def _cmd_features(args: argparse.Namespace) -> None:
    from mepkg.features import FeatureConfig, run_features

    config = FeatureConfig(k=args.k, frame_skip=args.frame_skip, backend=args.backend)
    run_features(args.input, args.out, config=config, landmarks=args.landmarks,
                 debug_figure=args.debug_figure, progress=True)


# ---------------------------------------------------------------- model
def _cmd_train_fold(args: argparse.Namespace) -> None:
    from mepkg.train import TrainConfig, run_fold

    overrides = {"epochs": args.epochs} if args.epochs is not None else {}
    config = TrainConfig(device=args.device, threads=args.threads, **overrides)
    run_fold(features_dir=args.features, labels=args.labels, subject=args.subject,
             out_dir=args.out, config=config)


def _cmd_convert_checkpoint(args: argparse.Namespace) -> None:
    from mepkg.model import convert_release_checkpoint

    convert_release_checkpoint(args.input, args.output)


# ---------------------------------------------------------------- decoding and scores
def _cmd_decode(args: argparse.Namespace) -> None:
    from mepkg.decode import run_decode

    run_decode(args.scores, args.out, priors_file=args.priors, labels=args.labels,
               preset=args.preset, megc_out=args.megc_out)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from mepkg.metrics import run_evaluate

    emotions = tuple(e.strip() for e in args.emotions.split(",") if e.strip())
    if args.mode == "release" and args.frame_skip is None:
        raise ValueError("--mode release scores at the sampled rate: give the dataset's "
                         "--frame-skip (SAMM-LV 7, CAS(ME)^3 1)")
    run_evaluate(args.pred, args.gt, args.out, mode=args.mode, emotions=emotions,
                 frame_skip=args.frame_skip)


def _cmd_spot(args: argparse.Namespace) -> None:
    from mepkg.spot import spot_video

    spot_video(args.video, model=args.model, out_dir=args.out, fps=args.fps,
               device=args.device, progress=True)


def _cmd_package_model(args: argparse.Namespace) -> None:
    from mepkg.decode import read_priors
    from mepkg.spot import package_model

    priors, k_prime = read_priors(args.priors)
    package_model(args.model, args.labels, args.out, priors=priors, k_prime=k_prime)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mepkg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mepkg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    datasets = ["casme3", "sammlv", "generic"]

    p = sub.add_parser("labels", help="label sheet(s) -> labels.csv (no frames needed)")
    p.add_argument("--dataset", required=True, choices=datasets)
    p.add_argument("--labels", required=True, nargs="+", help="label sheet(s): xlsx or csv")
    p.add_argument("--emotion-map", nargs="*", metavar="RAW=CLASS",
                   help="extra raw emotion -> class mappings")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_labels)

    p = sub.add_parser("manifest", help="scan a dataset root -> labels.csv + manifest.csv")
    p.add_argument("--dataset", required=True, choices=datasets)
    p.add_argument("--root", required=True)
    p.add_argument("--labels", nargs="+", help="label sheet(s) if not in their usual place")
    p.add_argument("--emotion-map", nargs="*", metavar="RAW=CLASS")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_manifest)

    p = sub.add_parser("synth", help="render the synthetic ME benchmark")
    p.add_argument("--size", default="tiny", choices=["tiny", "small", "standard"])
    p.add_argument("--layout", default="sammlv", choices=datasets)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("landmarks", help="video -> reference-frame landmarks (HDF5)")
    p.add_argument("input", help="video file or frame folder")
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=30, help="window length in sampled frames")
    p.add_argument("--frame-skip", type=int, default=7)
    p.add_argument("--backend", default="dlib", choices=["dlib", "face_alignment"])
    p.set_defaults(func=_cmd_landmarks)

    p = sub.add_parser("features", help="video -> ROI optical-flow window features (HDF5)")
    p.add_argument("input", help="video file or frame folder")
    p.add_argument("--out", required=True)
    p.add_argument("--landmarks", help="landmarks HDF5 from `mepkg landmarks` (else detected)")
    p.add_argument("--k", type=int, default=30)
    p.add_argument("--frame-skip", type=int, default=7)
    p.add_argument("--backend", default="dlib", choices=["dlib", "face_alignment"])
    p.add_argument("--debug-figure", help="PNG: crop box, landmarks and ROIs on a frame")
    p.set_defaults(func=_cmd_features)

    p = sub.add_parser("train-fold", help="train one leave-one-subject-out fold")
    p.add_argument("--features", required=True, help="folder of features/<video_id>.h5")
    p.add_argument("--labels", required=True, help="labels.csv")
    p.add_argument("--subject", required=True, help="held-out subject ('all': none held out)")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_cmd_train_fold)

    p = sub.add_parser("convert-checkpoint", help="authors' released .pkl -> mepkg model .pt")
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=_cmd_convert_checkpoint)

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

    p = sub.add_parser("package-model",
                       help="add decoding priors and k' to a trained model (for `spot`)")
    p.add_argument("--model", required=True, help="model.pt of `train-fold --subject all`")
    p.add_argument("--labels", required=True, help="labels.csv of the training subjects")
    p.add_argument("--priors", help="YAML of decoding priors (default: the paper's)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_package_model)

    p = sub.add_parser("spot", help="apply a trained model to a new video")
    p.add_argument("video", help="video file or frame folder")
    p.add_argument("--model", required=True)
    p.add_argument("--out", default="spot_out")
    p.add_argument("--fps", type=float, help="frame rate (needed for frame folders)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_spot)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        if args.verbose:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"mepkg {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
