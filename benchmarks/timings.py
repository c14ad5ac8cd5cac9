"""Timings of the package's fast paths (timings belong in benchmarks/, not in tests).

- ``plan_benchmark("standard", "sammlv")``: called at workflow parse time, so it
  should take well under 0.5 s.
- ``get_backend("face_alignment")`` offline with no cached weights: the error
  naming ``--backend dlib`` should come in seconds (one reachability probe).

    python benchmarks/timings.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from mepkg.synth import plan_benchmark

    t = best_of(lambda: plan_benchmark("standard", "sammlv", seed=3), args.repeats)
    print(f"plan_benchmark standard sammlv: {t * 1000:.1f} ms (target < 500 ms)")

    import importlib.util

    import mepkg.landmarks as lm

    if importlib.util.find_spec("face_alignment") is None:
        print("face_alignment offline error: skipped (face-alignment not installed)")
        return
    os.environ["TORCH_HOME"] = tempfile.mkdtemp()            # no cached weights
    lm._reachable = lambda host, timeout=3.0: False          # offline

    def offline():
        try:
            lm.get_backend("face_alignment")
        except RuntimeError:
            pass

    t = best_of(offline, 1)
    print(f"face_alignment offline error: {t:.2f} s (target < 5 s)")


if __name__ == "__main__":
    main()
