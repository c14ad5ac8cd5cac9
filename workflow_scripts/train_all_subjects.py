"""Train one model on every subject, for `mepkg spot` (rule train_all_subjects).

Reads:  input.features (every planned video), input.labels, params.train, threads.
Writes: output.model and output.train_log in model_all/ (no held-out
        videos, so no scores); rule package_model adds the decoding priors.
"""

import logging
from pathlib import Path

from mepkg.train import TrainConfig, run_fold

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

config = TrainConfig(**snakemake.params.train, threads=snakemake.threads)
features = [Path(p) for p in snakemake.input.features]
run_fold(features_dir=features[0].parent, labels=snakemake.input.labels, subject="all",
         out_dir=Path(snakemake.output.model).parent, config=config, videos=features)
