"""Score curve of one held-out video (rule plot_curves).

Reads:  input.scores (its fold's scores.h5), input.intervals (its fold's
        decoded intervals), input.labels (ground truth).
Writes: output.figure (PNG: spot score, labelled MEs shaded, decoded
        intervals as bars, vetoed ones hatched).
"""

import logging

import pandas as pd

from mepkg.h5io import read_scores
from mepkg.plots import plot_score_curve

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

vid = snakemake.wildcards.video_id
video = next((v for v in read_scores(snakemake.input.scores) if v.video_id == vid), None)
if video is None:
    raise ValueError(f"{snakemake.input.scores}: no score curve for video {vid}; re-run its fold")
read = lambda path: pd.read_csv(path, dtype={"subject": str, "video": str})
labels, pred = read(snakemake.input.labels), read(snakemake.input.intervals)
gt = labels[(labels.subject == video.subject) & (labels.video == video.video) & (labels.type == "micro")]
pred = pred[(pred.subject == video.subject) & (pred.video == video.video)]
plot_score_curve(video.spot, gt, pred, frame_skip=video.frame_skip, fps=video.fps,
                 path=snakemake.output.figure, title=f"{vid} (held out in fold {video.subject})")
logging.info("%s: %d labelled MEs, %d decoded intervals", vid, len(gt), len(pred))
