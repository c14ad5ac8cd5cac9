"""STRS per LOSO fold (rule plot_fold_strs).

Reads:  input.metrics (metrics.json: the headline mode's per-subject and
        pooled STRS and its bootstrap interval).
Writes: output.figure (PNG).
"""

import json
import logging
from pathlib import Path

from mepkg.plots import plot_fold_strs

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

metrics = json.loads(Path(snakemake.input.metrics).read_text())
boot = metrics["bootstrap"]
plot_fold_strs(metrics["per_subject"], pooled=metrics["strs"],
               interval=(boot["low"], boot["high"]) if boot["n"] else None,
               path=snakemake.output.figure, title=f"STRS per LOSO fold ({metrics['mode']})")
logging.info("%d folds plotted, pooled STRS %.4f", len(metrics["per_subject"]), metrics["strs"])
