"""ROI optical-flow window features of one video (rule extract_features).

Reads:  input.manifest (path, subject, video, fps of wildcards.video_id),
        input.landmarks, params.features (the whole features group).
Writes: output.features (features HDF5, mepkg.h5io schema).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.features import FeatureConfig, run_features  # noqa: E402
from mepkg.manifest import manifest_row  # noqa: E402

vid = snakemake.wildcards.video_id
row = manifest_row(snakemake.input.manifest, vid)
run_features(row["path"], snakemake.output.features,
             config=FeatureConfig.from_config(snakemake.params.features),
             landmarks=snakemake.input.landmarks, progress=True,
             video_id=vid, subject=row["subject"], video=row["video"], fps=float(row["fps"]))
