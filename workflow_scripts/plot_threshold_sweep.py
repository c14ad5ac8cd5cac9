"""Pooled scores against the decoding threshold p (rule plot_threshold_sweep).

Reads:  input.scores (every fold's score curves), input.labels,
        params.decode (the other priors), params.evaluate (mode, emotions, sweep_p).
Writes: output.table (CSV: one row per p) and output.figure (PNG).
Decodes saved curves only: no model is run.
"""

import logging

import pandas as pd

from mepkg.atomic import write_csv
from mepkg.decode import DecodePriors, k_prime_from_labels
from mepkg.h5io import read_scores
from mepkg.plots import plot_threshold_sweep, threshold_sweep

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

ev = snakemake.params.evaluate
priors = DecodePriors.from_dict(dict(snakemake.params.decode), source="config.yaml decode")
videos = [v for path in snakemake.input.scores for v in read_scores(path)]
labels = pd.read_csv(snakemake.input.labels, dtype={"subject": str, "video": str})
# one k' for the pooled sweep: over every subject (threshold_sweep takes a single k')
k_p = k_prime_from_labels(labels, videos[0].frame_skip)
sweep = threshold_sweep(videos, k_p, labels, ev["sweep_p"], priors=priors, mode=ev["mode"],
                        emotions=ev["emotions"])
write_csv(sweep, snakemake.output.table)
plot_threshold_sweep(sweep, snakemake.output.figure, chosen=priors.p,
                     title=f"threshold sweep ({ev['mode']}, k' = {k_p} from all subjects)")
logging.info("swept p over %s with k' = %d", list(ev["sweep_p"]), k_p)
