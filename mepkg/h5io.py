"""HDF5 schemas of the pipeline: read, write, validate.

Every writer writes atomically (temporary name, then rename), every reader
checks shapes, dtypes and attributes and rejects a truncated or foreign file
with a message naming it. Schemas:

landmarks/<video_id>.h5  reference-frame face boxes and 68 landmarks
features/<video_id>.h5   ROI optical-flow window features
folds/<subject>/scores.h5  per held-out video: spot curve and class logits

Every file records the mepkg version that wrote it (attribute ``mepkg_version``);
a features file names its 36 channels in order (``channel_names``), a scores
file the order of its logits (``class_names``), so other tools need no mepkg.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from mepkg import __version__
from mepkg.atomic import atomic_output
from mepkg.constants import CLASS_NAMES, N_CHANNELS, N_CLASSES, N_LANDMARKS



def _open_checked(path: str | os.PathLike, kind: str) -> h5py.File:
    """Open an HDF5 file for reading with an error naming it if it is not one."""
    import re

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {kind} file")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the HDF5 {kind} file itself")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        # HDF5's own text: keep its reason, not its buffer addresses and timestamps
        reason = re.search(r"error message = '([^']*)'", str(err))
        reason = reason.group(1) if reason else re.sub(r"^\[Errno \d+\] ", "", str(err))
        raise ValueError(f"{path}: not a readable HDF5 {kind} file ({reason}); "
                         f"delete it and re-run the stage that writes it") from None


def _write_h5(path, schema: str, attrs: dict, datasets: dict[str, np.ndarray],
              required: tuple = (), what: str = "") -> Path:
    """Write one HDF5 file atomically: schema tag, attributes, datasets.

    ``required``: attributes ``attrs`` must hold (ValueError naming ``what`` otherwise).
    """
    missing = [a for a in required if a not in attrs]
    if missing:
        raise ValueError(f"{path}: {what} lacks attribute(s) {', '.join(missing)}")
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["schema"] = schema
            h5.attrs.update(attrs)
            h5.attrs["mepkg_version"] = __version__
            for name, data in datasets.items():
                h5.create_dataset(name, data=data)
    return Path(path)


def _require(h5: h5py.File, name: str, kind: str, ndim: int, dtype_kind: str):
    if name not in h5:
        raise ValueError(f"{h5.file.filename}: {kind} file lacks dataset '{name}'; "
                         f"it was not written by mepkg or is truncated: re-run the stage")
    ds = h5[name]
    if ds.ndim != ndim or ds.dtype.kind != dtype_kind:
        raise ValueError(f"{h5.file.filename}: '{name}' has shape {ds.shape} dtype {ds.dtype}, "
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


LANDMARKS_SCHEMA = "mepkg.landmarks/1"
LANDMARK_ATTRS = ("backend", "backend_version", "k", "frame_skip", "n_frames", "fps", "video")


def _require_shape(h5: h5py.File, name: str, kind: str, shape: tuple, dtype) -> np.ndarray:
    """Dataset ``name`` read whole, checked against ``shape`` (None = any) and ``dtype``."""
    ds = _require(h5, name, kind, len(shape), np.dtype(dtype).kind)
    if ds.dtype != np.dtype(dtype) or any(s is not None and s != d
                                          for s, d in zip(shape, ds.shape)):
        want = "x".join("n" if s is None else str(s) for s in shape)
        raise ValueError(f"{h5.file.filename}: '{name}' has shape {ds.shape} dtype {ds.dtype}, "
                         f"expected {want} {np.dtype(dtype)}; re-run the stage that writes it")
    return ds[()]


def _check_schema(h5: h5py.File, schema: str, kind: str, attrs: tuple[str, ...]) -> dict:
    if h5.attrs.get("schema") != schema:
        raise ValueError(f"{h5.file.filename}: not a mepkg {kind} file (schema attribute "
                         f"{h5.attrs.get('schema')!r}, expected {schema!r}); re-run {kind}")
    missing = [a for a in attrs if a not in h5.attrs]
    if missing:
        raise ValueError(f"{h5.file.filename}: {kind} file lacks attribute(s) {', '.join(missing)}; "
                         f"re-run {kind}")
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h5.attrs.items()
            if k != "schema"}


def write_landmarks(path: str | os.PathLike, track: LandmarkTrack) -> Path:
    """Write a :class:`LandmarkTrack` to landmarks/<video_id>.h5 atomically."""
    w = len(track.ref_frame)
    if track.face_box.shape != (w, 4) or track.landmarks.shape != (w, N_LANDMARKS, 2) \
            or track.detected.shape != (w,):
        raise ValueError(f"{path}: inconsistent landmark track: ref_frame ({w},), face_box "
                         f"{track.face_box.shape}, landmarks {track.landmarks.shape}, "
                         f"detected {track.detected.shape}")
    return _write_h5(path, LANDMARKS_SCHEMA, track.attrs, {
        "ref_frame": np.asarray(track.ref_frame, np.int64),
        "face_box": np.asarray(track.face_box, np.float32),
        "landmarks": np.asarray(track.landmarks, np.float32),
        "detected": np.asarray(track.detected, bool)}, LANDMARK_ATTRS, "landmark track")


def read_landmarks(path: str | os.PathLike) -> LandmarkTrack:
    """Read and validate landmarks/<video_id>.h5."""
    with _open_checked(path, "landmarks") as h5:
        attrs = _check_schema(h5, LANDMARKS_SCHEMA, "landmarks", LANDMARK_ATTRS)
        ref = _require_shape(h5, "ref_frame", "landmarks", (None,), np.int64)
        w = len(ref)
        track = LandmarkTrack(
            ref_frame=ref,
            face_box=_require_shape(h5, "face_box", "landmarks", (w, 4), np.float32),
            landmarks=_require_shape(h5, "landmarks", "landmarks", (w, N_LANDMARKS, 2), np.float32),
            detected=_require_shape(h5, "detected", "landmarks", (w,), bool),
            attrs=attrs)
    bad = track.detected & ~np.isfinite(track.landmarks).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"{path}: landmarks of detected window {int(np.flatnonzero(bad)[0])} "
                         f"are not finite; re-run landmarks")
    return track


# ---------------------------------------------------------------- features
@dataclass
class FeatureSet:
    """ROI optical-flow window features of one video (docs/method.md §2)."""

    features: np.ndarray      # (W, 36, k) float32, channel order of docs/method.md §2.7
    window_start: np.ndarray  # (W,) int64, sampled index of each reference frame
    landmarks: np.ndarray     # (W, 68, 2) float32, reference-frame landmarks in crop coordinates
    crop_box: np.ndarray      # (W, 4) int32, top, bottom, left, right in frame pixels
    quality: np.ndarray       # (W,) uint8, 0 ok, bit flags (see mepkg.quality.QUALITY_FLAGS)
    attrs: dict = field(default_factory=dict)  # video_id, subject, video, fps, frame_skip, k, n_frames, ...

    @property
    def n_windows(self) -> int:
        return int(self.features.shape[0])

    @property
    def k(self) -> int:
        return int(self.features.shape[2])


FEATURES_SCHEMA = "mepkg.features/1"
FEATURE_ATTRS = ("video_id", "subject", "video", "fps", "frame_skip", "k", "n_frames",
                 "landmark_backend", "flow_params", "mepkg_version")


def channel_names() -> list[str]:
    """The feature channels in order: ``<motion>_dx``, ``<motion>_dy`` of each ROI motion
    of :data:`mepkg.roi.MOTION_NAMES` (docs/method.md §2.7)."""
    from mepkg.roi import MOTION_NAMES

    names = [f"{motion}_{axis}" for motion in MOTION_NAMES for axis in ("dx", "dy")]
    assert len(names) == N_CHANNELS
    return names


def write_features(path: str | os.PathLike, fs: FeatureSet) -> Path:
    """Write a :class:`FeatureSet` to features/<video_id>.h5 atomically (with its
    ``channel_names``)."""
    w = fs.features.shape[0]
    shapes = {"features": (fs.features.shape, (w, N_CHANNELS, fs.features.shape[-1])),
              "window_start": (fs.window_start.shape, (w,)),
              "landmarks": (fs.landmarks.shape, (w, N_LANDMARKS, 2)),
              "crop_box": (fs.crop_box.shape, (w, 4)), "quality": (fs.quality.shape, (w,))}
    for name, (got, want) in shapes.items():
        if tuple(got) != want or fs.features.ndim != 3:
            raise ValueError(f"{path}: feature set '{name}' has shape {got}, expected {want}")
    attrs = {**fs.attrs, "channel_names": channel_names()}
    return _write_h5(path, FEATURES_SCHEMA, attrs, {
        "features": np.asarray(fs.features, np.float32),
        "window_start": np.asarray(fs.window_start, np.int64),
        "landmarks": np.asarray(fs.landmarks, np.float32),
        "crop_box": np.asarray(fs.crop_box, np.int32),
        "quality": np.asarray(fs.quality, np.uint8)}, FEATURE_ATTRS, "feature set")


def read_features(path: str | os.PathLike) -> FeatureSet:
    """Read and validate features/<video_id>.h5."""
    with _open_checked(path, "features") as h5:
        attrs = _check_schema(h5, FEATURES_SCHEMA, "features", FEATURE_ATTRS)
        if "channel_names" in attrs:        # files written before it was recorded lack it
            attrs["channel_names"] = [str(c) for c in attrs["channel_names"]]
            if attrs["channel_names"] != channel_names():
                raise ValueError(f"{path}: its channels {attrs['channel_names'][:4]}... are not "
                                 f"in mepkg's order; re-run features for this video")
        k = int(attrs["k"])
        feats = _require_shape(h5, "features", "features", (None, N_CHANNELS, k),
                               np.float32)
        w = feats.shape[0]
        fs = FeatureSet(
            features=feats,
            window_start=_require_shape(h5, "window_start", "features", (w,), np.int64),
            landmarks=_require_shape(h5, "landmarks", "features", (w, N_LANDMARKS, 2), np.float32),
            crop_box=_require_shape(h5, "crop_box", "features", (w, 4), np.int32),
            quality=_require_shape(h5, "quality", "features", (w,), np.uint8),
            attrs=attrs)
    if not np.isfinite(fs.features).all():
        bad = int(np.flatnonzero(~np.isfinite(fs.features).all(axis=(1, 2)))[0])
        raise ValueError(f"{path}: features of window {bad} are not finite; re-run features")
    return fs


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
    quality: np.ndarray | None = None   # (W,) uint8 window flags of its features (mepkg.quality)


def write_scores(path: str | os.PathLike, videos: list[VideoScores], fold: str,
                 model_checksum: str = "") -> Path:
    """Write held-out score curves: one group per video (DESIGN schema)."""
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["schema"] = "mepkg.scores/1"
            h5.attrs["fold"] = str(fold)
            h5.attrs["model_checksum"] = model_checksum
            h5.attrs["class_names"] = list(CLASS_NAMES)    # the logits' column order
            h5.attrs["mepkg_version"] = __version__
            for v in videos:
                if v.logits.shape != (len(v.spot), N_CLASSES):
                    raise ValueError(f"{v.video_id}: logits shape {v.logits.shape}, "
                                     f"expected ({len(v.spot)}, {N_CLASSES})")
                g = h5.create_group(v.video_id)
                g.create_dataset("spot", data=np.asarray(v.spot, np.float32))
                g.create_dataset("logits", data=np.asarray(v.logits, np.float32))
                if v.quality is not None:
                    g.create_dataset("quality", data=np.asarray(v.quality, np.uint8))
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
            quality = g["quality"][()] if "quality" in g else None   # older files: none
            out.append(VideoScores(video_id=vid, subject=str(a.pop("subject")),
                                   video=str(a.pop("video")), spot=spot, logits=logits,
                                   frame_skip=int(a.pop("frame_skip")), k=int(a.pop("k")),
                                   fps=float(a.pop("fps", 0.0)),
                                   n_frames=int(a.pop("n_frames", 0)), attrs=a,
                                   quality=quality))
        return out
