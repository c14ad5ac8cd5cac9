"""Benchmark: prior-guided decoding of a one-hour 30 fps score curve.

Builds a realistic curve of 108,000 sampled frames (CAS(ME)^3 rate, frame_skip
1): low noise, a slow drift, and about 240 ME-like bumps of 10-40 frames,
then times ``decode_intervals`` (steps 1-5, k' = 11 as on CAS(ME)^3) and the
whole ``decode_videos`` (with the recognition vote). Target: < 50 ms for
``decode_intervals``. Prints one line per figure.

    python benchmarks/decode.py [--repeats 7] [--seed 0]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from mepkg.decode import DecodePriors, decode_intervals, decode_videos
from mepkg.h5io import VideoScores

FPS, HOURS, K_PRIME = 30, 1.0, 11


def make_curve(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Spot curve (n,) and class logits (n, 5) resembling a trained model's."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    drift = 0.05 + 0.03 * np.sin(2 * np.pi * t / (FPS * 97))     # slow head-motion drift
    curve = drift + np.abs(rng.normal(0, 0.03, n))                # frame noise
    logits = rng.normal(0, 1, (n, 5))
    for centre in rng.choice(n, size=int(n / (FPS * 15)), replace=False):   # one ME / 15 s
        half = int(rng.integers(5, 20))
        lo, hi = max(0, centre - half), min(n, centre + half + 1)
        bump = np.hanning(hi - lo + 2)[1:-1] * rng.uniform(0.3, 0.9)
        curve[lo:hi] += bump
        logits[lo:hi, rng.integers(4)] += 2.0
    return np.clip(curve, 0, 1).astype(np.float32), logits.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = int(HOURS * 3600 * FPS)
    curve, logits = make_curve(n, args.seed)
    video = VideoScores(video_id="bench", subject="bench", video="bench", spot=curve,
                        logits=logits, frame_skip=1, k=50, fps=FPS, n_frames=n)
    priors = DecodePriors()

    def best_of(fn):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), float(np.median(times)), out

    best, median, intervals = best_of(lambda: decode_intervals(curve, K_PRIME,
                                                               **priors.interval_kwargs()))
    vbest, vmedian, table = best_of(lambda: decode_videos([video], priors, K_PRIME))
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"curve: {n} sampled frames ({HOURS:g} h at {FPS} fps), k'={K_PRIME}, "
          f"{len(intervals)} intervals")
    print(f"decode_intervals: best {best * 1e3:.1f} ms, median {median * 1e3:.1f} ms "
          f"(target < 50 ms) over {args.repeats} runs")
    print(f"decode_videos (+ recognition vote): best {vbest * 1e3:.1f} ms, "
          f"median {vmedian * 1e3:.1f} ms; {int((~table.vetoed).sum())} kept after the veto")


if __name__ == "__main__":
    main()
