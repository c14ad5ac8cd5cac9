"""STRS of the pooled predictions in one mode (rule evaluate).

Reads:  input.predictions, input.labels (ground truth, micro rows), the
        mode wildcard (official | strict | release), params.evaluate,
        params.frame_skip (release mode scores at the sampled rate).
Writes: output.metrics (JSON: spotting, recognition, STRS per subject and
        pooled, with and without the neutral veto, bootstrap interval).
"""

import logging

from mepkg.metrics import run_evaluate

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

ev = snakemake.params.evaluate
run_evaluate(snakemake.input.predictions, snakemake.input.labels, snakemake.output.metrics,
             mode=snakemake.wildcards.mode, emotions=tuple(ev["emotions"]),
             n_bootstrap=ev["bootstrap"], seed=ev["seed"],
             frame_skip=snakemake.params.frame_skip)
