"""HDF5 schemas of the pipeline: read, write, validate.

Every writer writes atomically (temporary name, then rename), every reader
checks shapes, dtypes and attributes and rejects a truncated or foreign file
with a message naming it. Schemas (DESIGN.md):

landmarks/<video_id>.h5  reference-frame face boxes and 68 landmarks
features/<video_id>.h5   ROI optical-flow window features
folds/<subject>/scores.h5  per held-out video: spot curve and class logits
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from mepkg.atomic import atomic_output

N_CLASSES = 5  # 4 emotions + neutral (SPEC 3)


def _open_checked(path: str | os.PathLike, kind: str) -> h5py.File:
    """Open an HDF5 file for reading with an error naming it if it is not one."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {kind} file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 {kind} file ({err}); "
                         f"delete it and re-run the stage that writes it") from err


def _require(h5: h5py.File, name: str, kind: str, ndim: int, dtype_kind: str):
    if name not in h5:
        raise ValueError(f"{h5.filename}: {kind} file lacks dataset '{name}'; "
                         f"it was not written by mepkg or is truncated: re-run the stage")
    ds = h5[name]
    if ds.ndim != ndim or ds.dtype.kind != dtype_kind:
        raise ValueError(f"{h5.filename}: '{name}' has shape {ds.shape} dtype {ds.dtype}, "
                         f"expected {ndim} dimensions of kind '{dtype_kind}'")
    return ds


# ---------------------------------------------------------------- landmarks
@dataclass
class LandmarkTrack:
    """Face boxes and 68 iBUG landmarks at each window's reference frame.

    Coordinates are (x, y) = (column, row) in frame pixels.
    """

    ref_frame: np.ndarray   # (W,) int64, original 0-based frame index of each reference frame
    face_box: np.ndarray    # (W, 4) float32, left, top, right, bottom
    landmarks: np.ndarray   # (W, 68, 2) float32
    detected: np.ndarray    # (W,) bool, False where no face was found (values then NaN)
    attrs: dict = field(default_factory=dict)  # backend, backend_version, k, frame_skip, n_frames, fps, video


# ---------------------------------------------------------------- features
@dataclass
class FeatureSet:
    """ROI optical-flow window features of one video (SPEC 2)."""

    features: np.ndarray      # (W, 36, k) float32, channel order of SPEC 2 step 7
    window_start: np.ndarray  # (W,) int64, sampled index of each reference frame
    landmarks: np.ndarray     # (W, 68, 2) float32, reference-frame landmarks in crop coordinates
    crop_box: np.ndarray      # (W, 4) int32, top, bottom, left, right in frame pixels
    quality: np.ndarray       # (W,) uint8, 0 ok, bit flags (see mepkg.features.QUALITY_FLAGS)
    attrs: dict = field(default_factory=dict)  # video_id, subject, video, fps, frame_skip, k, n_frames, ...

    @property
    def n_windows(self) -> int:
        return int(self.features.shape[0])

    @property
    def k(self) -> int:
        return int(self.features.shape[2])


# ---------------------------------------------------------------- scores
@dataclass
class VideoScores:
    """Model output for one video at the sampled rate."""

    video_id: str
    subject: str
    video: str
    spot: np.ndarray      # (n,) float32 in [0, 1]
    logits: np.ndarray    # (n, 5) float32
    frame_skip: int
    k: int
    fps: float = 0.0
    n_frames: int = 0     # original frames of the video
    attrs: dict = field(default_factory=dict)


def write_scores(path: str | os.PathLike, videos: list[VideoScores], fold: str,
                 model_checksum: str = "") -> Path:
    """Write held-out score curves: one group per video (DESIGN schema)."""
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["schema"] = "mepkg.scores/1"
            h5.attrs["fold"] = str(fold)
            h5.attrs["model_checksum"] = model_checksum
            for v in videos:
                if v.logits.shape != (len(v.spot), N_CLASSES):
                    raise ValueError(f"{v.video_id}: logits shape {v.logits.shape}, "
                                     f"expected ({len(v.spot)}, {N_CLASSES})")
                g = h5.create_group(v.video_id)
                g.create_dataset("spot", data=np.asarray(v.spot, np.float32))
                g.create_dataset("logits", data=np.asarray(v.logits, np.float32))
                g.attrs.update({"subject": v.subject, "video": v.video,
                                "frame_skip": int(v.frame_skip), "k": int(v.k),
                                "fps": float(v.fps), "n_frames": int(v.n_frames),
                                "fold": str(fold), "model_checksum": model_checksum})
                g.attrs.update(v.attrs)
    return Path(path)


def read_scores(path: str | os.PathLike) -> list[VideoScores]:
    """Read every video of a scores.h5, validating shapes."""
    with _open_checked(path, "scores") as h5:
        if h5.attrs.get("schema") != "mepkg.scores/1":
            raise ValueError(f"{path}: not a mepkg scores file (schema attribute "
                             f"{h5.attrs.get('schema')!r}); re-run training for this fold")
        out = []
        for vid, g in h5.items():
            spot = _require(g, "spot", "scores", 1, "f")[()]
            logits = _require(g, "logits", "scores", 2, "f")[()]
            if logits.shape != (len(spot), N_CLASSES):
                raise ValueError(f"{path}: video {vid}: logits {logits.shape} do not match "
                                 f"spot ({len(spot)},)")
            if not np.isfinite(spot).all():
                bad = int(np.flatnonzero(~np.isfinite(spot))[0])
                raise ValueError(f"{path}: video {vid}: spot score is not finite at "
                                 f"sampled frame {bad}")
            a = dict(g.attrs)
            out.append(VideoScores(video_id=vid, subject=str(a.pop("subject")),
                                   video=str(a.pop("video")), spot=spot, logits=logits,
                                   frame_skip=int(a.pop("frame_skip")), k=int(a.pop("k")),
                                   fps=float(a.pop("fps", 0.0)),
                                   n_frames=int(a.pop("n_frames", 0)), attrs=a))
        return out
