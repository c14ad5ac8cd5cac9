"""ROI optical-flow window features of a video, streamed (docs/method.md §2.2-§2.8).

For every window (k sampled frames, stride k/2) the reference frame fixes a
face crop (from its landmarks) and ROIs on it (:mod:`mepkg.roi`); every later
frame of the window is cropped the same way, the head motion is measured on
the nose bridge (and the crop re-aligned while it exceeds 1 px), and the
Farneback flow of each ROI gives 18 robust motions minus the head motion:
36 channels x k steps.

Frames are decoded once, in order, straight to gray (the flow and the
landmarks see gray only). Windows overlap by half, so each frame
serves at most two windows; a window keeps only its reference ROI patches,
so memory does not grow with video length. OpenCV runs single-threaded
(parallelism comes from running videos as separate jobs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterable

import cv2
import numpy as np
from tqdm import tqdm

from mepkg import __version__
from mepkg.constants import N_CHANNELS, N_LANDMARKS
from mepkg.datasets.frames import sampled_count
from mepkg.h5io import FeatureSet, LandmarkTrack, read_landmarks, write_features
from mepkg.inputs import InputError
from mepkg.landmarks import detect_video_landmarks, get_backend
from mepkg.quality import (ALIGNMENT_CAPPED, BOX_OUTSIDE, DRIFT_BOUNDED, NO_FACE,
                           REDETECT_FAILED, REUSED_CROP, flag_counts,
                           usable_share)
from mepkg.roi import (Roi, build_rois, crop_box_from_landmarks, crop_gray,
                       crop_scale, robust_motion, roi_motions, to_crop_coords)
from mepkg.targets import n_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureConfig:
    """Feature extraction settings; defaults are the paper's (docs/method.md §2 and its dataset table).

    The single source of these defaults: config.yaml's ``features`` group and
    rules/schemas/config.schema.yaml mirror them (tests/test_workflow_config.py
    checks), with the Farneback fields nested under ``flow`` there
    (:meth:`from_config`). The robust-motion constants (``FIXED``) are the
    method's, not settings, and have no config key.
    """

    FLOW: ClassVar[tuple[str, ...]] = ("pyr_scale", "levels", "winsize", "iterations", "poly_n",
                                       "poly_sigma")
    FIXED: ClassVar[tuple[str, ...]] = ("top_nose", "trim_nose", "top_region", "trim_region",
                                        "top_sub", "top_r3_sub", "top_lid", "trim_lid",
                                        "align_threshold")

    k: int = 30                 # window length in sampled frames (SAMM-LV; CAS(ME)^3: 50)
    frame_skip: int = 7         # every frame_skip-th original frame (SAMM-LV; CAS(ME)^3: 1)
    backend: str = "dlib"       # landmark backend (docs/method.md §2.1)
    crop_size: int = 320        # face crop side in pixels (docs/method.md §2.2)
    # Farneback flow (docs/method.md §2.4)
    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 5
    poly_n: int = 7
    poly_sigma: float = 1.5
    # robust motion: fraction of largest-magnitude pixels averaged, border trims (docs/method.md §2.5)
    top_nose: float = 0.7                          # nose bridge R2
    trim_nose: tuple[int, int, int, int] = (15, 10, 5, 5)   # top, bottom, left, right
    top_region: float = 0.3                        # whole R1 / R3 / R4
    trim_region: int = 10
    top_sub: float = 0.2                           # sub-patches
    top_r3_sub: float = 0.3                        # R3's sub-patches
    top_lid: float = 0.3                           # lower lids R6 / R7
    trim_lid: int = 5
    # head motion (docs/method.md §2.6)
    align_threshold: float = 1.0                   # nose-bridge px that trigger re-alignment
    max_realign: int = 3                           # re-alignments per frame at most
    max_drift: float = 0.25                        # crop shift from the reference, per axis, as a
                                                   # share of the crop box side (docs/method.md §2.6)
    # lighting flicker (docs/method.md §2.4): scale each crop to the reference crop's
    # mean brightness before the flow; off as in the paper
    match_brightness: bool = False

    def __post_init__(self):
        if self.k < 2 or self.k % 2:
            raise ValueError(f"features k={self.k}: must be an even number >= 2")
        if self.frame_skip < 1:
            raise ValueError(f"features frame_skip={self.frame_skip}: must be >= 1")
        if not 0.0 <= self.max_drift <= 1.0:
            raise ValueError(f"features max_drift={self.max_drift}: must be a share in [0, 1]")

    def settings(self) -> dict:
        """Every setting (all fields but the FIXED constants), flat: a model file's ``features``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in self.FIXED}

    def flow_params(self) -> dict:
        return {f: getattr(self, f) for f in self.FLOW}

    @classmethod
    def from_config(cls, group: dict) -> "FeatureConfig":
        """From config.yaml's ``features`` group (Farneback fields nested under ``flow``)."""
        group = dict(group)
        return cls(**group.pop("flow", {}), **group)


@dataclass
class Reference:
    """What a window fixes at its reference frame."""

    crop_box: tuple[int, int, int, int]   # frame pixels: top, bottom, left, right
    landmarks: np.ndarray                 # (68, 2) crop coordinates
    nose: Roi
    rois: tuple[Roi, ...]
    quality: int = 0


class _Window:
    """One window being filled: reference ROI patches and the (36, k) feature array."""

    def __init__(self, index: int, start: int, ref: Reference, crop: np.ndarray,
                 config: FeatureConfig):
        self.index, self.start, self.ref, self.config = index, start, ref, config
        self.box = list(ref.crop_box)   # moves with re-alignment, for the rest of the window
        self.quality = ref.quality
        self.ref_brightness = float(crop.mean()) if config.match_brightness else None
        crop = self._prepare(crop)
        self.ref_nose = ref.nose.take(crop).copy()
        self.ref_patches = [roi.take(crop).copy() for roi in ref.rois]
        self.features = np.zeros((N_CHANNELS, config.k), np.float32)   # C x k; step 0 stays 0
        top, bottom, left, right = ref.crop_box
        # docs/method.md §2.6: the crop moves at most max_drift of its side from the reference
        self.max_shift = (config.max_drift * (bottom - top), config.max_drift * (right - left))
        self.stopped = bool(ref.quality & BOX_OUTSIDE)

    def _flow(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        c = self.config
        return cv2.calcOpticalFlowFarneback(prev, cur, None, c.pyr_scale, c.levels, c.winsize,
                                            c.iterations, c.poly_n, c.poly_sigma, 0)

    def _head(self, crop: np.ndarray) -> np.ndarray:
        patch = self.ref.nose.patches[0]
        flow = self._flow(self.ref_nose, self.ref.nose.take(crop))
        return robust_motion(flow[patch.rows, patch.cols], patch.top_fraction)

    def step(self, frame: np.ndarray, t: int) -> None:
        """Motions of frame t (1..k-1 steps after the reference) into column t.

        A window whose crop box left the frame is flagged ``box_outside`` and
        stops (its later columns stay 0); a re-alignment that would move the
        crop further than ``max_drift`` from the reference is not made and the
        window is flagged ``drift_bounded`` (docs/method.md §2.6).
        """
        if self.stopped:
            return
        c = self.config
        crop = self._crop(frame, self.box)
        if crop is None:
            return
        head = self._head(crop)
        shifts = 0
        while math.hypot(*head) > c.align_threshold:   # docs/method.md §2.6
            if shifts == c.max_realign:
                self.quality |= ALIGNMENT_CAPPED
                break
            sx, sy = crop_scale(tuple(self.box), c.crop_size)
            dx, dy = round(head[0] / sx), round(head[1] / sy)   # crop px -> frame px
            if dx == 0 and dy == 0:   # under half a frame pixel: nothing to shift
                break
            box = [self.box[0] + dy, self.box[1] + dy, self.box[2] + dx, self.box[3] + dx]
            if (abs(box[0] - self.ref.crop_box[0]) > self.max_shift[0]
                    or abs(box[2] - self.ref.crop_box[2]) > self.max_shift[1]):
                self.quality |= DRIFT_BOUNDED   # following something that is not the head
                break
            crop = self._crop(frame, box)
            if crop is None:
                return
            self.box = box
            head = self._head(crop)
            shifts += 1
        motions = [roi_motions(self._flow(ref, roi.take(crop)), roi)
                   for ref, roi in zip(self.ref_patches, self.ref.rois)]
        self.features[:, t] = (np.concatenate(motions) - head).reshape(-1)   # 18 x (dx, dy)

    def _crop(self, frame: np.ndarray, box) -> np.ndarray | None:
        """The crop of ``box``; None (window flagged and stopped) when it lies outside the frame."""
        try:
            return self._prepare(crop_gray(frame, tuple(box), self.config.crop_size))
        except ValueError:
            self.quality |= BOX_OUTSIDE
            self.stopped = True
            return None

    def _prepare(self, crop: np.ndarray) -> np.ndarray:
        """``crop`` as the flow sees it (docs/method.md §2.4): as is (the paper), or with
        match_brightness float32, scaled to the reference crop's mean brightness."""
        if self.ref_brightness is None:
            return crop
        return crop.astype(np.float32) * np.float32(self.ref_brightness
                                                    / max(float(crop.mean()), 1.0))


# ---------------------------------------------------------------- reference frames
class _References:
    """Chooses crop and landmarks at each reference frame (docs/method.md §2 steps 2, 8)."""

    def __init__(self, track: LandmarkTrack, config: FeatureConfig, name: str):
        self.track, self.config, self.name = track, config, name
        self.last_good: Reference | None = None
        self._backend = None

    def _fallback(self, i: int) -> Reference:
        if self.last_good is not None:
            return dataclasses.replace(self.last_good, quality=REUSED_CROP)
        size = self.config.crop_size
        for j in range(i + 1, len(self.track.detected)):   # no good one yet: the next one
            if not self.track.detected[j]:
                continue
            try:
                box = crop_box_from_landmarks(self.track.landmarks[j])
                points = to_crop_coords(self.track.landmarks[j], box, size)
                nose, rois = build_rois(points, self.config)
            except ValueError:
                continue
            return Reference(box, points, nose, rois, REUSED_CROP)
        n = len(self.track.detected)
        raise ValueError(f"{self.name}: no window can be analysed: none of its {n} windows has a "
                         f"usable face at its reference frame (a face was found at "
                         f"{int(self.track.detected.sum())}, without usable landmarks); check "
                         f"the video shows a frontal face")

    def reference(self, i: int, frame: np.ndarray) -> tuple[Reference, np.ndarray]:
        """Reference of window i and its crop of ``frame``."""
        size = self.config.crop_size
        if self.track.detected[i]:
            try:
                box = crop_box_from_landmarks(self.track.landmarks[i])
                crop = crop_gray(frame, box, size)
                quality = 0
                if self._backend is None:
                    self._backend = get_backend(self.config.backend)
                found = self._backend.detect(crop)   # docs/method.md §2.2: re-detect on the crop
                if found is None:
                    points = to_crop_coords(self.track.landmarks[i], box, size)
                    quality = REDETECT_FAILED
                else:
                    points = found[1]
                nose, rois = build_rois(points, self.config)
                self.last_good = Reference(box, points, nose, rois, quality)
                return self.last_good, crop
            except ValueError as err:
                log.debug("%s: window %d: %s", self.name, i, err)
        ref = self._fallback(i)
        try:
            return ref, crop_gray(frame, ref.crop_box, size)
        except ValueError:   # another window's crop is not in this frame (it changed size)
            return (dataclasses.replace(ref, quality=ref.quality | BOX_OUTSIDE),
                    np.zeros((size, size), np.uint8))


# ---------------------------------------------------------------- videos
def _check_track(track: LandmarkTrack, config: FeatureConfig, name: str) -> None:
    half = config.k // 2
    for key in ("k", "frame_skip"):
        if key in track.attrs and int(track.attrs[key]) != getattr(config, key):
            raise ValueError(f"{name}: landmarks were detected with {key}={track.attrs[key]}, "
                             f"features asked for {key}={getattr(config, key)}; re-run landmarks")
    expected = np.arange(len(track.ref_frame)) * half * config.frame_skip
    if not np.array_equal(track.ref_frame, expected):
        raise ValueError(f"{name}: landmark reference frames are not every "
                         f"{half * config.frame_skip}th frame; the landmarks file belongs to "
                         f"other settings")
    if len(track.detected) and not track.detected.any():
        raise ValueError(f"{name}: no face was found in any reference frame; "
                         f"check the video shows a frontal face")


def extract_features(source: str | os.PathLike | Iterable[tuple[int, np.ndarray]],
                     track: LandmarkTrack, config: FeatureConfig = FeatureConfig(),
                     progress: bool = False, debug_figure: str | os.PathLike | None = None,
                     fps: float | None = None) -> FeatureSet:
    """Window features of one video from its reference-frame landmarks.

    ``source``: a video file or frame folder (streamed with
    :func:`mepkg.datasets.frames.open_frames`) or any iterable of
    ``(original_index, frame)`` at the sampled rate. ``track``: from
    :func:`mepkg.landmarks.detect_video_landmarks`. ``debug_figure``: PNG of
    the first window's reference frame with crop, landmarks and ROIs. ``fps``:
    the frame rate where a frame folder cannot tell it (metadata only).
    """
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
    else:
        name = str(getattr(source, "path", None) or track.attrs.get("video")
                   or "<frames in memory>")
    _check_track(track, config, name)
    cv2.setNumThreads(1)
    k, half, skip = config.k, config.k // 2, config.frame_skip
    n_win = len(track.ref_frame)
    fps = float(fps or track.attrs.get("fps", 0.0) or 0.0)
    n_frames = int(track.attrs.get("n_frames", 0))
    if isinstance(source, (str, os.PathLike)):
        from mepkg.datasets.frames import check_long_enough, open_frames

        frames = open_frames(source, frame_skip=skip, fps=fps or None, gray=True)
        fps = float(frames.fps or fps)
        detected_on = int(track.attrs.get("n_frames", 0))
        if detected_on and detected_on != frames.n_frames:
            raise InputError(f"{name}: {frames.n_frames} frames, but the landmarks were "
                             f"detected on a video of {detected_on} frames "
                             f"({track.attrs.get('video', '?')}); give this video's landmarks")
        n_frames = int(frames.n_frames)
        check_long_enough(name, n_frames, k, skip, fps)
    else:
        frames = source
    n_needed = (n_win + 1) * half   # sampled frames the last window reaches
    expected = n_windows(sampled_count(n_frames, skip), k) if n_frames else n_win
    if n_win != expected:
        raise ValueError(f"{name}: {n_frames} frames give {expected} "
                         f"windows but the landmarks have {n_win}; they belong to another video")

    refs = _References(track, config, name)
    features = np.zeros((n_win, N_CHANNELS, k), np.float32)
    crop_boxes = np.zeros((n_win, 4), np.int32)
    landmarks = np.zeros((n_win, N_LANDMARKS, 2), np.float32)
    quality = np.zeros(n_win, np.uint8)
    active: list[_Window] = []
    seen = 0
    t0 = time.perf_counter()
    bar = tqdm(total=n_needed, desc=f"features {Path(name).name}", unit="frame",
               disable=not progress)
    for index, frame in frames:
        if index % skip:
            raise ValueError(f"{name}: frame {index} is not a multiple of frame_skip={skip}")
        s = index // skip
        if s >= n_needed:
            break
        if frame is None or frame.size == 0:
            raise ValueError(f"{name}: frame {index} could not be decoded")
        seen += 1
        shown = frame
        if frame.ndim == 3:   # once per frame, not once per window
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for win in active:
            win.step(frame, s - win.start)
        if s % half == 0 and s // half < n_win:
            i = s // half
            ref, crop = refs.reference(i, frame)
            active.append(_Window(i, s, ref, crop, config))
            if debug_figure is not None and i == 0:
                t_fig = time.perf_counter()
                from mepkg.plots import plot_feature_debug

                plot_feature_debug(shown, ref.crop_box, ref.landmarks, (ref.nose,) + ref.rois,
                                   debug_figure, crop_size=config.crop_size)
                t0 += time.perf_counter() - t_fig   # not part of the throughput
        for win in [w for w in active if s - w.start == k - 1]:   # window complete
            i = win.index
            features[i], crop_boxes[i] = win.features, win.ref.crop_box
            landmarks[i], quality[i] = win.ref.landmarks, win.quality
            active.remove(win)
        bar.update()
    bar.close()
    if seen < n_needed:
        raise ValueError(f"{name}: only {seen} sampled frames could be read, {n_needed} needed "
                         f"for {n_win} windows; the video is truncated")
    no_face = (quality & NO_FACE) != 0
    if n_win and no_face.all():
        counts = flag_counts(quality)
        raise ValueError(f"{name}: no window can be analysed: all {n_win} windows lack a face "
                         f"({counts['reused_crop']} without a face at the reference frame, "
                         f"{counts['box_outside']} with the crop outside the frame); check the "
                         f"video shows a frontal face")
    elapsed = time.perf_counter() - t0
    attrs = {"video": name, "fps": fps, "frame_skip": skip, "k": k, "n_frames": n_frames,
             "landmark_backend": str(track.attrs.get("backend", config.backend)),
             "landmark_backend_version": str(track.attrs.get("backend_version", "")),
             "flow_params": json.dumps(config.flow_params()),
             "feature_config": json.dumps(dataclasses.asdict(config)),
             "mepkg_version": __version__}
    log.debug("%s: %d sampled frames in %.1f s (%.1f frames/s)", name, seen, elapsed,
              seen / max(elapsed, 1e-9))
    return FeatureSet(features=features, window_start=np.arange(n_win, dtype=np.int64) * half,
                      landmarks=landmarks, crop_box=crop_boxes, quality=quality, attrs=attrs)


def run_features(input: str | os.PathLike, out: str | os.PathLike,
                 config: FeatureConfig = FeatureConfig(),
                 landmarks: str | os.PathLike | LandmarkTrack | None = None,
                 debug_figure: str | os.PathLike | None = None, progress: bool = True, *,
                 video_id: str | None = None, subject: str = "", video: str = "",
                 fps: float | None = None) -> FeatureSet:
    """Video -> features/<video_id>.h5. Detects landmarks itself when ``landmarks`` is None.

    ``video_id`` (default: the file or folder name), ``subject`` and ``video``
    are written as attributes; ``fps`` is the rate of a frame folder.
    """
    if landmarks is None:
        track = detect_video_landmarks(input, k=config.k, frame_skip=config.frame_skip,
                                       backend=config.backend, progress=progress, fps=fps)
    elif isinstance(landmarks, LandmarkTrack):
        track = landmarks
    else:
        track = read_landmarks(landmarks)
        made_for = str(track.attrs.get("video_id") or "")
        if made_for and video_id and made_for != video_id:
            raise InputError(f"{landmarks}: landmarks of video {made_for}, not of {video_id} "
                             f"({input}); give this video's landmarks file")
    t0 = time.perf_counter()
    fs = extract_features(input, track, config, progress=progress, debug_figure=debug_figure,
                          fps=fps)
    rate = (fs.n_windows + 1) * config.k // 2 / (time.perf_counter() - t0)
    fs.attrs.update({"video_id": video_id or Path(input).stem, "subject": subject,
                     "video": video or Path(input).name})
    write_features(out, fs)
    flagged = int((fs.quality != 0).sum())
    log.info("%s: %d windows, %.0f%% usable by the default quality policy, %d flagged (%s), "
             "%.1f sampled frames/s -> %s", input, fs.n_windows, 100 * usable_share(fs.quality),
             flagged, ", ".join(f"{name} {n}" for name, n in flag_counts(fs.quality).items()),
             rate, out)
    return fs
