"""Scan the dataset root (rule build_manifest).

Reads:  the dataset root (params.root, adapter params.adapter) and its label
        sheets (input.sheets, or their usual place under the root).
Writes: output.manifest (one row per video on disk) and output.labels (one
        row per event of the planned videos, params.videos, dropping micro
        events longer than dataset.max_duration when set).
"""

import logging

from mepkg.atomic import write_csv
from mepkg.datasets import scan_dataset
from mepkg.datasets.common import video_id

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

ds = snakemake.params.dataset
labels, manifest = scan_dataset(snakemake.params.adapter, snakemake.params.root,
                                label_files=list(snakemake.input.sheets) or None,
                                emotion_map=ds["emotion_map"] or None)
planned = set(snakemake.params.videos)
labels = labels[[video_id(s, v) in planned for s, v in zip(labels.subject, labels.video)]]
if ds["max_duration"]:
    too_long = (labels.type == "micro") & (labels.offset - labels.onset > ds["max_duration"])
    logging.info("dropping %d micro events longer than %d frames", too_long.sum(), ds["max_duration"])
    labels = labels[~too_long]
write_csv(manifest, snakemake.output.manifest)
write_csv(labels, snakemake.output.labels)
logging.info("%d videos on disk, %d planned; %d events written", len(manifest), len(planned),
             len(labels))
