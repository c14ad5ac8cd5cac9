"""Do the trained folds spot their held-out MEs? Score-curve contrast per video.

For every LOSO fold of a finished workflow run, reads the held-out videos'
spot curves (folds/<subject>/scores.h5) and the labels, and prints the mean
spot score inside the labelled micro-expressions (sampled frames onset+1 ..
offset-1, the training target of docs/method.md §3) over the mean outside them:

    python benchmarks/fold_curves.py results/synthetic-small-sammlv

A ratio well above 1 means the model, never having seen the subject,
scores its MEs higher than the rest of its videos (the target is > 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from mepkg.h5io import read_scores
from mepkg.targets import frame_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="results/<run> folder of a finished workflow run")
    run = Path(parser.parse_args().run)
    labels = pd.read_csv(run / "labels.csv", dtype={"subject": str, "video": str})
    ratios = []
    for scores in sorted(run.glob("folds/*/scores.h5")):
        for v in read_scores(scores):
            events = labels[(labels.subject == v.subject) & (labels.video == v.video)]
            target, _ = frame_targets(len(v.spot), events, v.frame_skip)
            inside = target > 0
            if not inside.any():
                continue
            ratio = v.spot[inside].mean() / max(v.spot[~inside].mean(), 1e-9)
            ratios.append(ratio)
            print(f"fold {v.subject:>8s}  video {v.video_id:>12s}: mean spot inside MEs "
                  f"{v.spot[inside].mean():.3f}, outside {v.spot[~inside].mean():.3f}, "
                  f"ratio {ratio:.1f}")
    if not ratios:
        raise SystemExit(f"{run}: no held-out video with a labelled ME")
    print(f"{len(ratios)} held-out videos: inside/outside ratio median {np.median(ratios):.1f}, "
          f"min {min(ratios):.1f} (target > 2)")


if __name__ == "__main__":
    main()
