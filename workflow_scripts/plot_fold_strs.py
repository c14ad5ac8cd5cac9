"""STRS per LOSO fold (rule plot_fold_strs).

Reads:  input.metrics (metrics.json: the headline mode's per-subject and
        pooled STRS and its bootstrap interval).
Writes: output.figure (PNG).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from mepkg.plots import plot_fold_strs  # noqa: E402

metrics = json.loads(Path(snakemake.input.metrics).read_text())
boot = metrics["bootstrap"]
plot_fold_strs(metrics["per_subject"], pooled=metrics["strs"],
               interval=(boot["low"], boot["high"]) if boot["n"] else None,
               path=snakemake.output.figure, title=f"STRS per LOSO fold ({metrics['mode']})")
