"""The run's records (rules tabulate_metrics and summarise_run).

Reads   the per-mode metrics JSONs of ``mepkg evaluate`` / :func:`mepkg.metrics.run_evaluate`.
Writes  metrics.json (every mode, the headline mode at the top level),
        metrics.csv (:func:`mepkg.metrics.metrics_table`) and summary.json (a
        one-file record of the run: size, headline metrics, settings).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from mepkg.metrics import jsonable, metrics_table

log = logging.getLogger(__name__)


def tabulate_metrics(mode_files, headline: str, out_json, out_csv) -> dict:
    """Per-mode metrics JSONs -> metrics.json and metrics.csv (rule tabulate_metrics).

    metrics.json: the ``headline`` mode's result at the top level (plus
    ``headline_mode``), every mode under its name. metrics.csv: one row per
    mode x veto x scope (scope = pooled or a LOSO fold's subject).
    """
    from mepkg.atomic import atomic_output, write_csv

    results = {}
    for path in mode_files:
        result = json.loads(Path(path).read_text())
        results[result["mode"]] = result
    if headline not in results:
        raise ValueError(f"headline mode {headline!r}: no metrics among {sorted(results)}")
    combined = {**results[headline], "headline_mode": headline, **results}
    with atomic_output(out_json) as tmp:
        Path(tmp).write_text(json.dumps(combined, indent=2) + "\n")
    write_csv(metrics_table(results), out_csv)
    for mode, m in results.items():
        log.info("%s: STRS %.4f (without veto %.4f)", mode, m["strs"], m["without_veto"]["strs"])
    return combined


def summarise_run(metrics_json, labels_csv, out, *, run: str, folds: Sequence[str],
                  n_videos: int, settings: dict, features: Sequence = (),
                  quality: dict | None = None) -> dict:
    """A one-file record of a run (rule summarise_run): size, headline metrics, settings,
    and each video's share of usable windows (``features`` files, ``quality`` policy;
    a warning for each video below ``quality.warn_below``)."""
    import numpy as np

    import mepkg
    from mepkg.atomic import atomic_output
    from mepkg.quality import QualityPolicy, analysed_shares

    metrics = json.loads(Path(metrics_json).read_text())
    labels = pd.read_csv(labels_csv, dtype={"subject": str, "video": str})
    summary = {
        "run": run,
        "mepkg_version": mepkg.__version__,
        "folds": len(folds),
        "videos": int(n_videos),
        "micro_events": int((labels["type"] == "micro").sum()),
        "headline_mode": metrics["headline_mode"],
        "strs": metrics["strs"],
        "strs_interval": [metrics["bootstrap"]["low"], metrics["bootstrap"]["high"]],
        "spot_f1": metrics["spotting"]["f1"],
        "recog_f1": metrics["recognition"]["f1"],
        "strs_without_veto": metrics["without_veto"]["strs"],
        "strict_strs": metrics["strict"]["strs"],
        "release_strs": metrics["release"]["strs"],
        "config": settings,
    }
    if features:
        policy = QualityPolicy.from_dict(quality)
        analysed = analysed_shares(features, policy)
        summary["analysed"] = {
            "usable_share": round(float(np.mean([v["usable_share"] for v in analysed.values()])),
                                  4),
            "videos_below_warn": sorted(v for v, a in analysed.items()
                                        if a["usable_share"] < policy.warn_below),
            "videos": analysed}
    with atomic_output(out) as tmp:
        Path(tmp).write_text(json.dumps(jsonable(summary), indent=2) + "\n")
    log.info("run %s: STRS %.4f over %d folds", run, summary["strs"], summary["folds"])
    return summary
