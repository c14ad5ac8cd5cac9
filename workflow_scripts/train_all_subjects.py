"""Train one model on every subject, for `mepkg spot` (rule train_all_subjects).

Reads:  input.features (every planned video), input.labels, params.train,
        params.quality (QualityPolicy fields), params.trained_on (dataset, run,
        synthetic: recorded in the model file), threads, resources.device and
        resources.cuda_graph (execution only: config group compute).
Writes: output.model and output.train_log in model_all/ (no held-out
        videos, so no scores); rule package_model adds the decoding priors.
"""

from mepkg.jobs import setup_job

threads = setup_job(snakemake)

from pathlib import Path  # noqa: E402

from mepkg.quality import QualityPolicy  # noqa: E402
from mepkg.train import TrainConfig, run_fold  # noqa: E402

config = TrainConfig.from_config(snakemake.params.train, threads=threads,
                                 device=snakemake.resources.device,
                                 cuda_graph=bool(snakemake.resources.cuda_graph))
features = [Path(p) for p in snakemake.input.features]
run_fold(features_dir=features[0].parent, labels=snakemake.input.labels, subject="all",
         out_dir=Path(snakemake.output.model).parent, config=config, videos=features,
         quality=QualityPolicy.from_dict(snakemake.params.quality),
         trained_on=dict(snakemake.params.trained_on))
