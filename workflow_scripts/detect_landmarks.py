"""Reference-frame face boxes and 68 landmarks of one video (rule detect_landmarks).

Reads:  input.manifest (where video wildcards.video_id lies), params.features
        (k, frame_skip, backend).
Writes: output.landmarks (landmarks HDF5, mepkg.h5io schema).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.landmarks import run_landmarks  # noqa: E402
from mepkg.manifest import manifest_row  # noqa: E402

row = manifest_row(snakemake.input.manifest, snakemake.wildcards.video_id)
feat = snakemake.params.features
run_landmarks(row["path"], snakemake.output.landmarks, k=feat["k"], frame_skip=feat["frame_skip"],
              backend=feat["backend"], fps=float(row["fps"]))
