"""Combine the per-mode metrics into the run's tables (rule tabulate_metrics).

Reads:  input.modes (metrics/<mode>.json for official, strict and release),
        params.evaluate (mode = the headline mode).
Writes: output.metrics (metrics.json: the headline mode's result at the top
        level, every mode under its name) and output.table (metrics.csv: one
        row per mode x veto x scope, scope = pooled or a LOSO fold's subject).
"""

import json
import logging
from pathlib import Path

from mepkg.atomic import atomic_output, write_csv
from mepkg.metrics import metrics_table

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")


results = {}
for path in snakemake.input.modes:
    result = json.loads(Path(path).read_text())
    results[result["mode"]] = result
headline = snakemake.params.evaluate["mode"]
with atomic_output(snakemake.output.metrics) as tmp:
    tmp.write_text(json.dumps({**results[headline], "headline_mode": headline, **results},
                              indent=2) + "\n")
write_csv(metrics_table(results), snakemake.output.table)
for mode, m in results.items():
    logging.info("%s: STRS %.4f (without veto %.4f)", mode, m["strs"], m["without_veto"]["strs"])
