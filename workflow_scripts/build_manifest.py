"""Scan the dataset root (rule build_manifest).

Reads:  the dataset root (params.root, adapter params.adapter) and its label
        sheets (input.sheets, or their usual place under the root).
Writes: output.manifest (one row per video on disk) and output.labels (one
        row per event of the planned videos, params.videos, dropping micro
        events longer than params.max_duration when set). params.folder_fps:
        the rate of a generic root's frame folders (the manifest's fps).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.manifest import build_manifest  # noqa: E402

build_manifest(snakemake.params.adapter, snakemake.params.root, snakemake.output.labels,
               snakemake.output.manifest, videos=snakemake.params.videos,
               label_files=snakemake.input.sheets, emotion_map=snakemake.params.emotion_map,
               max_duration=snakemake.params.max_duration,
               folder_fps=snakemake.params.folder_fps)
