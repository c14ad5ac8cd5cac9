"""Pooled scores against the decoding threshold p (rule plot_threshold_sweep).

Reads:  input.scores (every fold's score curves), input.labels,
        params.decode (the other priors), params.evaluate (mode, emotions, sweep_p).
Writes: output.table (CSV: one row per p) and output.figure (PNG).
Decodes saved curves only: no model is run.
"""

import logging

import pandas as pd

from mepkg.atomic import write_csv
from mepkg.decode import DecodePriors, fold_k_primes
from mepkg.h5io import read_scores
from mepkg.plots import plot_threshold_sweep, threshold_sweep

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

ev = snakemake.params.evaluate
priors = DecodePriors.from_dict(dict(snakemake.params.decode), source="config.yaml decode")
videos = [v for path in snakemake.input.scores for v in read_scores(path)]
labels = pd.read_csv(snakemake.input.labels, dtype={"subject": str, "video": str})
# each fold's own k', as decode_fold uses (k_rule train: from its training subjects)
k_p = fold_k_primes(labels, videos[0].frame_skip, sorted({v.subject for v in videos}),
                    priors.k_rule)
sweep = threshold_sweep(videos, k_p, labels, ev["sweep_p"], priors=priors, mode=ev["mode"],
                        emotions=ev["emotions"])
write_csv(sweep, snakemake.output.table)
plot_threshold_sweep(sweep, snakemake.output.figure, chosen=priors.p,
                     title=f"threshold sweep ({ev['mode']}, k' per fold: "
                           f"{min(k_p.values())}-{max(k_p.values())})")
logging.info("swept p over %s with k' per fold %s", list(ev["sweep_p"]), k_p)
