"""Face detection and 68 iBUG landmarks at the reference frames (docs/method.md §2.1).

Backends share one interface, :class:`LandmarkBackend`: ``detect(image)``
returns the largest face as ``(box, points)`` (box = left, top, right,
bottom; points (68, 2) = (x, y) in image pixels) or ``None``.

- ``dlib`` (default): dlib's frontal HOG detector + the 68-point shape
  predictor shipped by ``face-recognition-models``; works offline.
- ``face_alignment``: the FAN network of the ``face-alignment`` package, on
  the GPU when torch sees one; its weights download on first use, so offline
  without them in torch's hub cache it fails at once with a message naming the
  dlib backend.

Backends are cached per process: models load once.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import os
import socket
from pathlib import Path
from typing import Iterable, Protocol
from urllib.parse import urlparse

import cv2
import numpy as np
from tqdm import tqdm

from mepkg.constants import LANDMARK_BACKENDS, N_LANDMARKS
from mepkg.datasets.frames import sampled_count
from mepkg.h5io import LandmarkTrack
from mepkg.targets import n_windows

log = logging.getLogger(__name__)


class BackendUnavailableError(RuntimeError, ValueError):
    """A landmark backend cannot run here (not installed, weights missing offline).

    A ``RuntimeError``; also a ``ValueError`` so that the CLI reports it as a
    one-line bad-option error.
    """


class LandmarkBackend(Protocol):
    name: str
    version: str
    gray: bool      # works on gray images: its frames can be decoded straight to gray

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Largest face of a gray or BGR uint8 image: (box (4,), points (68, 2)) or None."""


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


# ---------------------------------------------------------------- dlib
# dlib's frontal detector slides an 80-pixel window over an image pyramid, each level 5/6
# the size of the one before. The faces of these videos are far larger than 80 pixels, so
# the pyramid's largest levels, most of its cost, find none: the first pass runs on the
# image at the pyramid's own 4th level, (5/6)^4 = 0.48 of its size (a box keeps the size the
# full pyramid gives it), and only when it finds no face do the full image and then one
# upsampling follow (docs/method.md §2.1).
DETECT_SCALE = (5 / 6) ** 4
DETECT_WINDOW = 80


def dlib_predictor_path() -> Path:
    """The 68-point predictor shipped by face-recognition-models (not imported: its
    ``__init__`` needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package face-recognition-models is not installed; it ships the "
                                "dlib 68-point predictor: pip install face-recognition-models")
    path = (Path(spec.submodule_search_locations[0]) / "models"
            / "shape_predictor_68_face_landmarks.dat")
    if not path.exists():
        raise FileNotFoundError(f"{path}: dlib 68-point predictor missing; reinstall "
                                f"face-recognition-models")
    return path


def cache_dir() -> Path:
    """mepkg's cache of derived files: $XDG_CACHE_HOME/mepkg (default ~/.cache/mepkg)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mepkg"


def frontal_face_detector():
    """dlib's frontal face detector, loaded from a copy saved in :func:`cache_dir`.

    ``dlib.get_frontal_face_detector()`` unpacks a compressed copy built into dlib,
    0.25 s in every process (a features job's whole start-up otherwise); the saved
    file loads in ~1 ms. The copy is written once per dlib version, atomically;
    where the cache cannot be written or read, dlib's own copy is used.
    """
    import dlib

    from mepkg.atomic import atomic_output

    try:
        saved = cache_dir() / f"dlib-{dlib.__version__}-frontal_face_detector.svm"
    except RuntimeError:   # Path.home(): no home directory known
        return dlib.get_frontal_face_detector()
    try:
        if saved.is_file():
            return dlib.fhog_object_detector(str(saved))
    except (OSError, RuntimeError) as err:   # unreadable or damaged: written again
        log.debug("%s: %s", saved, err)
    detector = dlib.get_frontal_face_detector()
    try:
        with atomic_output(saved) as tmp:
            detector.save(str(tmp))
    except (OSError, RuntimeError) as err:
        log.debug("cannot save the face detector to %s: %s", saved, err)
    return detector


class DlibBackend:
    """dlib frontal face detector (at DETECT_SCALE of the image, then full size, then one
    upsampling, until a face is found) + 68 points on the full-size image."""

    name = "dlib"
    gray = True

    def __init__(self):
        import dlib

        self.version = str(dlib.__version__)
        self._detector = frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_predictor_path()))
        self._rect = dlib.rectangle

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        gray = np.ascontiguousarray(_gray(image))
        faces = self._faces(gray)
        if len(faces) == 0:
            return None
        face = max(faces, key=lambda r: r.width() * r.height())
        shape = self._predictor(gray, face)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        box = np.array([face.left(), face.top(), face.right(), face.bottom()], np.float32)
        return box, points

    def _faces(self, gray: np.ndarray) -> list:
        """Face rectangles in ``gray``'s pixels from the first pass that finds any."""
        h, w = gray.shape
        size = (round(w * DETECT_SCALE), round(h * DETECT_SCALE))
        if min(size) >= DETECT_WINDOW:
            small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
            sx, sy = w / size[0], h / size[1]
            faces = [self._rect(round(r.left() * sx), round(r.top() * sy),
                                round((r.right() + 1) * sx) - 1, round((r.bottom() + 1) * sy) - 1)
                     for r in self._detector(small, 0)]
            if faces:
                return faces
        for upsample in (0, 1):   # faces under ~170 pixels; then under 80 (4x slower)
            faces = list(self._detector(gray, upsample))
            if faces:
                return faces
        return []


# ---------------------------------------------------------------- face_alignment
# What face-alignment downloads for 2D landmarks with its default S3FD detector, for
# a release that does not expose its URLs (1.4 caches 2DFAN4-cd938726ad.zip, 1.5 the
# .pth.tar); normally the names are read from the installed package (fa_weight_files).
FA_WEIGHTS_FALLBACK = ("2DFAN4-11f355bf06.pth.tar", "2DFAN4-cd938726ad.zip",
                       "s3fd-619a316812.pth")
FA_HOST = "www.adrianbulat.com"


def _torch_hub_dir() -> Path:
    """Where torch.hub (and face-alignment's downloads) cache files: $TORCH_HOME/hub etc."""
    import torch.hub

    return Path(torch.hub.get_dir())


def _file_name(url: str) -> str:
    return Path(urlparse(url).path).name


def fa_weight_files() -> tuple[str, ...]:
    """File names the installed face-alignment caches under <torch hub>/checkpoints.

    Read from its download URLs: the 2D FAN network (1.5: ``api.models_urls``;
    1.4: per-torch-version ``models_urls`` with ``default_model_urls`` as fallback)
    and the S3FD detector. A release laid out otherwise: :data:`FA_WEIGHTS_FALLBACK`,
    any of whose FAN files counts.
    """
    try:
        import torch
        from face_alignment import api, utils
        from face_alignment.detection.sfd import sfd_detector

        torch_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
        for module in (api, utils):
            urls = getattr(module, "models_urls", None) or {}
            if "2DFAN-4" in urls:                                   # one flat table
                fan = urls["2DFAN-4"]
                break
            default = getattr(module, "default_model_urls", None)
            if default and "2DFAN-4" in default:                  # per torch version
                fan = urls.get(torch_minor, default)["2DFAN-4"]
                break
        else:
            raise KeyError("2DFAN-4")
        return _file_name(fan), _file_name(sfd_detector.models_urls["s3fd"])
    except (ImportError, AttributeError, KeyError, TypeError):
        return FA_WEIGHTS_FALLBACK


def _missing_weights(checkpoints: Path) -> list[str]:
    names = fa_weight_files()
    if names is FA_WEIGHTS_FALLBACK:      # unknown layout: one FAN file and the detector
        fan = [n for n in names if n.startswith("2DFAN4")]
        found_fan = any((checkpoints / n).exists() for n in fan)
        return [n for n in names if not n.startswith("2DFAN4") and not (checkpoints / n).exists()
                ] + ([] if found_fan else [" or ".join(fan)])
    return [n for n in names if not (checkpoints / n).exists()]


def _reachable(host: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class FaceAlignmentBackend:
    """FAN 2D landmarks with its S3FD detector, on the GPU when one is present.

    Install: ``pip install -e '.[face-alignment]' && pip install --no-deps face-alignment``
    (README). Offline, the weights must be in ``<torch hub dir>/checkpoints`` under the
    names the installed release uses (:func:`fa_weight_files`).
    """

    name = "face_alignment"
    gray = False

    def __init__(self, device: str | None = None):
        hint = "or use the offline default: --backend dlib"
        if importlib.util.find_spec("face_alignment") is None:
            raise BackendUnavailableError(
                f"landmark backend face_alignment is not installed: pip install -e "
                f"'.[face-alignment]' && pip install --no-deps face-alignment, {hint}")
        checkpoints = _torch_hub_dir() / "checkpoints"
        missing = _missing_weights(checkpoints)
        if missing and not _reachable(FA_HOST):
            raise BackendUnavailableError(
                f"face_alignment weights could not be downloaded: {', '.join(missing)} not in "
                f"{checkpoints} and {FA_HOST} is unreachable (offline?); copy them there, {hint}")
        try:
            import face_alignment
        except ImportError as err:
            raise BackendUnavailableError(
                f"face_alignment cannot be imported ({err}); {hint}") from err
        self.device = device or default_device()
        try:
            self._fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D,
                                                    device=self.device, flip_input=False)
        except OSError as err:   # URLError, HTTPError, connection resets
            raise BackendUnavailableError(
                f"face_alignment weights could not be downloaded ({err}); {hint}") from err
        self.version = importlib.metadata.version("face-alignment")
        log.info("face_alignment %s on %s", self.version, self.device)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB if image.ndim == 3 else cv2.COLOR_GRAY2RGB)
        result = self._fa.get_landmarks_from_image(rgb, return_bboxes=True)
        points, _, boxes = result if isinstance(result, tuple) else (result, None, None)
        if not points:
            return None
        areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes] if boxes else [0]
        i = int(np.argmax(areas))
        pts = np.asarray(points[i], dtype=np.float32)[:, :2]
        box = (np.asarray(boxes[i][:4], np.float32) if boxes
               else np.concatenate([pts.min(axis=0), pts.max(axis=0)]).astype(np.float32))
        return box, pts

@functools.lru_cache(maxsize=None)
def get_backend(name: str) -> LandmarkBackend:
    """The landmark backend ``name`` (``dlib`` or ``face_alignment``), loaded once per process."""
    if name == "dlib":
        return DlibBackend()
    if name == "face_alignment":
        return FaceAlignmentBackend()
    raise ValueError(f"unknown landmark backend {name!r}; choose one of {', '.join(LANDMARK_BACKENDS)}")


# ---------------------------------------------------------------- videos
def _video_name(source) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else getattr(
        source, "path", "<frames in memory>")


def detect_video_landmarks(source: str | os.PathLike | Iterable[tuple[int, np.ndarray]],
                           k: int, frame_skip: int, backend: str,
                           progress: bool = False, fps: float | None = None) -> LandmarkTrack:
    """Face box and 68 landmarks at the reference frame of every window.

    ``source`` is a video file or frame folder (read with
    :func:`mepkg.datasets.frames.open_frames`, decoding only the reference
    frames of a folder) or an iterable of ``(original_index, frame)`` at
    the sampled rate (original indices 0, frame_skip, 2*frame_skip, ...).
    Window i starts at sampled index i*k/2 = original frame i*k/2*frame_skip.
    ``fps`` overrides the rate a frame folder cannot tell (metadata only).
    Raises ``ValueError`` naming the video if no reference frame shows a face.
    """
    name = _video_name(source)
    half = k // 2
    n_windows(0, k)   # validates k
    det = get_backend(backend)
    if isinstance(source, (str, os.PathLike)):
        from mepkg.datasets.frames import check_long_enough, open_frames

        frames = open_frames(source, frame_skip=frame_skip * half, fps=fps,   # references only
                             gray=det.gray)
        n_frames, fps = int(frames.n_frames), float(frames.fps or fps or 0.0)
        check_long_enough(source, n_frames, k, frame_skip, fps)
        total = n_windows(sampled_count(n_frames, frame_skip), k)
    else:
        frames, n_frames = source, getattr(source, "n_frames", None)
        fps = float(fps or getattr(source, "fps", 0.0) or 0.0)
        total = None if n_frames is None else n_windows(sampled_count(n_frames, frame_skip), k)

    refs, boxes, points, found = [], [], [], []
    last = -1
    bar = tqdm(total=total, desc=f"landmarks {Path(name).name}", unit="ref",
               disable=not progress)
    for index, frame in frames:
        last = index
        if index % (frame_skip * half):
            continue
        if total is not None and len(refs) >= total:
            break
        result = det.detect(frame)
        refs.append(index)
        found.append(result is not None)
        boxes.append(result[0] if result else np.full(4, np.nan, np.float32))
        points.append(result[1] if result else np.full((N_LANDMARKS, 2), np.nan, np.float32))
        if result is None:
            log.debug("%s: no face at frame %d", name, index)
        bar.update()
    bar.close()
    if n_frames is None:
        n_frames = last + 1
    w = n_windows(sampled_count(n_frames, frame_skip), k)
    if len(refs) < w:
        raise ValueError(f"{name}: {len(refs)} reference frames read, {w} windows expected "
                         f"from {n_frames} frames; the video is truncated or unreadable")
    refs, boxes, points, found = refs[:w], boxes[:w], points[:w], found[:w]
    if w and not any(found):
        raise ValueError(f"{name}: no face found in any of its {w} reference frames "
                         f"(backend {backend}); check the video shows a frontal face")
    track = LandmarkTrack(
        ref_frame=np.asarray(refs, np.int64),
        face_box=np.asarray(boxes, np.float32).reshape(w, 4),
        landmarks=np.asarray(points, np.float32).reshape(w, N_LANDMARKS, 2),
        detected=np.asarray(found, bool),
        attrs={"backend": det.name, "backend_version": det.version, "k": int(k),
               "frame_skip": int(frame_skip), "n_frames": int(n_frames), "fps": fps,
               "video": str(name)})
    log.info("%s: %d windows, face found at %d of %d reference frames", name, w,
             int(track.detected.sum()), w)
    return track


def run_landmarks(source: str | os.PathLike, out: str | os.PathLike, k: int,
                  frame_skip: int, backend: str, fps: float | None = None,
                  progress: bool = True) -> LandmarkTrack:
    """Video -> landmarks/<video_id>.h5 (rule detect_landmarks; :func:`detect_video_landmarks`)."""
    from mepkg.h5io import write_landmarks

    track = detect_video_landmarks(source, k=k, frame_skip=frame_skip, backend=backend,
                                   progress=progress, fps=fps)
    write_landmarks(out, track)
    log.info("%s: %d windows, %d with a face -> %s", source, len(track.detected),
             int(track.detected.sum()), out)
    return track
