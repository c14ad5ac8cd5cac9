"""A one-file record of the run (rule summarise_run).

Reads:  input.metrics, input.labels, params.run / config (every group but
        compute) / folds / n_videos.
Writes: output.summary (summary.json: run, dataset size, headline metrics
        with and without the neutral veto, bootstrap interval, config used).
"""

import json
import logging
from pathlib import Path

import pandas as pd

import mepkg
from mepkg.atomic import atomic_output

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

metrics = json.loads(Path(snakemake.input.metrics).read_text())
labels = pd.read_csv(snakemake.input.labels, dtype={"subject": str, "video": str})
summary = {
    "run": snakemake.params.run,
    "mepkg_version": mepkg.__version__,
    "folds": len(snakemake.params.folds),
    "videos": snakemake.params.n_videos,
    "micro_events": int((labels.type == "micro").sum()),
    "headline_mode": metrics["headline_mode"],
    "strs": metrics["strs"],
    "strs_interval": [metrics["bootstrap"]["low"], metrics["bootstrap"]["high"]],
    "spot_f1": metrics["spotting"]["f1"],
    "recog_f1": metrics["recognition"]["f1"],
    "strs_without_veto": metrics["without_veto"]["strs"],
    "strict_strs": metrics["strict"]["strs"],
    "release_strs": metrics["release"]["strs"],
    "config": snakemake.params.config,
}
with atomic_output(snakemake.output.summary) as tmp:
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
logging.info("run %s: STRS %.4f over %d folds", summary["run"], summary["strs"], summary["folds"])
