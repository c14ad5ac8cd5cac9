"""Train one leave-one-subject-out fold (rule train_fold).

Reads:  input.features (features/<video_id>.h5 of every planned video),
        input.labels, params.train (TrainConfig fields), threads.
Writes: output.model (model.pt), output.scores (score curves of the held-out
        subject's videos), output.train_log (per-epoch losses), all in the
        fold's folder.
"""

import logging
from pathlib import Path

from mepkg.train import TrainConfig, run_fold

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

config = TrainConfig(**snakemake.params.train, threads=snakemake.threads)
features = [Path(p) for p in snakemake.input.features]
run_fold(features_dir=features[0].parent, labels=snakemake.input.labels,
         subject=snakemake.wildcards.subject, out_dir=Path(snakemake.output.model).parent,
         config=config, videos=features)
