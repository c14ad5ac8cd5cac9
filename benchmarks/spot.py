"""Benchmark of ``mepkg spot``: a 60 s, 30 fps, 640 x 480 video on the CPU.

Renders one synthetic face video with known micro-expressions
(``mepkg.synth.render_video``, 640 px, cropped to 640 x 480), runs
``spot_video`` with a packaged model (the workflow's ``model_all.pt``) and
prints the wall time, the real-time factor and the strict-mode spotting F1
against the injected MEs:

    python benchmarks/spot.py --model results/synthetic-small-sammlv/model_all.pt

Target: under 60 s for the 60 s video on this machine (real time).
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from pathlib import Path

import cv2
import pandas as pd


def build_video(out: Path, seconds: float, fps: float, seed: int) -> tuple[Path, pd.DataFrame]:
    """A 640 x 480 MJPG .avi with the events of ``plan_video(seconds, fps, seed)``."""
    from mepkg.synth import plan_video, render_video

    square = render_video(out.with_name("square.avi"), seconds=seconds, frame_size=640,
                          fps=fps, seed=seed)
    reader = cv2.VideoCapture(str(square))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    while True:
        ok, frame = reader.read()
        if not ok:
            break
        writer.write(frame[60:540])          # keep the face: rows 60..539
    reader.release()
    writer.release()
    square.unlink()
    _, video = plan_video(seconds, fps, seed)
    truth = pd.DataFrame([{"subject": out.stem, "video": out.name, "onset": e.onset,
                           "offset": e.offset, "emotion": e.emotion}
                          for e in video.events if e.type == "micro"])
    return out, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="packaged model (model_all.pt)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from mepkg.metrics import evaluate
    from mepkg.spot import spot_video

    with tempfile.TemporaryDirectory() as tmp:
        video, truth = build_video(Path(tmp) / "clip.avi", args.seconds, args.fps, args.seed)
        t0 = time.perf_counter()
        found = spot_video(video, args.model, out_dir=Path(tmp) / "out", device="cpu")
        wall = time.perf_counter() - t0
    result = evaluate(found, truth, mode="strict")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"spot: {args.seconds:.0f} s video at {args.fps:.0f} fps, 640x480: {wall:.1f} s wall "
          f"({args.seconds / wall:.2f}x real time), peak RSS {rss:.0f} MB")
    print(f"spot: {len(found)} intervals for {len(truth)} injected MEs; strict spotting "
          f"TP {result['spotting']['tp']} FP {result['spotting']['fp']} "
          f"FN {result['spotting']['fn']}, F1 {result['spotting']['f1']:.3f}")


if __name__ == "__main__":
    main()
