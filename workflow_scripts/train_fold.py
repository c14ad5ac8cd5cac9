"""Train one leave-one-subject-out fold (rule train_fold).

Reads:  input.features (features/<video_id>.h5 of every planned video),
        input.labels, params.train (TrainConfig fields), params.quality
        (QualityPolicy fields: the unusable windows left out), threads,
        resources.device and resources.cuda_graph (execution only: config group compute).
Writes: output.model (model.pt), output.scores (score curves of the held-out
        subject's videos), output.train_log (per-epoch losses), all in the
        fold's folder.
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
run_fold(features_dir=features[0].parent, labels=snakemake.input.labels,
         subject=snakemake.wildcards.subject, out_dir=Path(snakemake.output.model).parent,
         config=config, videos=features, quality=QualityPolicy.from_dict(snakemake.params.quality))
