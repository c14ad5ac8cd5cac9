"""Combine the per-mode metrics into the run's tables (rule tabulate_metrics).

Reads:  input.modes (metrics/<mode>.json for official and strict),
        params.evaluate (mode = the headline mode).
Writes: output.metrics (metrics.json: the headline mode's result at the top
        level, every mode under its name) and output.table (metrics.csv: one
        row per mode x veto x scope, scope = pooled or a LOSO fold's subject).
"""

import json
import logging
from pathlib import Path

import pandas as pd

from mepkg.atomic import atomic_output, write_csv

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def row(mode, veto, scope, m):
    sp, rc = m["spotting"], m["recognition"]
    return {"mode": mode, "veto": veto, "scope": scope, "strs": m["strs"],
            "spot_f1": sp["f1"], "spot_precision": sp["precision"], "spot_recall": sp["recall"],
            "tp": sp["tp"], "fp": sp["fp"], "fn": sp["fn"], "recog_f1": rc["f1"],
            "uf1": rc["uf1"], "uar": rc["uar"], "n_pairs": rc["n_pairs"]}


results = {json.loads(Path(p).read_text())["mode"]: json.loads(Path(p).read_text())
           for p in snakemake.input.modes}
rows = []
for mode, m in results.items():
    rows.append(row(mode, True, "pooled", m))
    rows.append(row(mode, False, "pooled", m["without_veto"]))
    rows += [row(mode, True, subject, s) for subject, s in m["per_subject"].items()]
headline = snakemake.params.evaluate["mode"]
with atomic_output(snakemake.output.metrics) as tmp:
    tmp.write_text(json.dumps({**results[headline], "headline_mode": headline, **results},
                              indent=2) + "\n")
write_csv(pd.DataFrame(rows), snakemake.output.table)
for mode, m in results.items():
    logging.info("%s: STRS %.4f (without veto %.4f)", mode, m["strs"], m["without_veto"]["strs"])
