"""Reference-frame face boxes and 68 landmarks of one video (rule detect_landmarks).

Reads:  input.manifest (where video wildcards.video_id lies), params.features
        (k, frame_skip, backend).
Writes: output.landmarks (landmarks HDF5, mepkg.h5io schema).
"""

import logging

import pandas as pd

from mepkg.h5io import write_landmarks
from mepkg.landmarks import detect_video_landmarks

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

manifest = pd.read_csv(snakemake.input.manifest, dtype=str).set_index("video_id")
vid = snakemake.wildcards.video_id
if vid not in manifest.index:
    raise FileNotFoundError(f"video {vid} is labelled but not on disk ({snakemake.input.manifest}); "
                            f"check dataset.data_root")
feat = snakemake.params.features
track = detect_video_landmarks(manifest.loc[vid, "path"], k=feat["k"],
                               frame_skip=feat["frame_skip"], backend=feat["backend"],
                               progress=True, fps=float(manifest.loc[vid, "fps"]))
write_landmarks(snakemake.output.landmarks, track)
logging.info("%s: %d windows, %d with a face", vid, len(track.detected), int(track.detected.sum()))
