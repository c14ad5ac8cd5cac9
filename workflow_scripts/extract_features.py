"""ROI optical-flow window features of one video (rule extract_features).

Reads:  input.manifest (path, subject, video of wildcards.video_id),
        input.landmarks, params.features (the whole features group).
Writes: output.features (features HDF5, mepkg.h5io schema).
"""

import logging

import pandas as pd

from mepkg.features import FeatureConfig, run_features

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

manifest = pd.read_csv(snakemake.input.manifest, dtype=str).set_index("video_id")
vid = snakemake.wildcards.video_id
row = manifest.loc[vid]
feat = dict(snakemake.params.features)
config = FeatureConfig(**{k: v for k, v in feat.items() if k != "flow"}, **feat["flow"])
run_features(row["path"], snakemake.output.features, config=config,
             landmarks=snakemake.input.landmarks, progress=True,
             video_id=vid, subject=row["subject"], video=row["video"], fps=float(row["fps"]))
