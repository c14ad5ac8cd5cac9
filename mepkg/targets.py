"""Windows, per-frame training targets, background down-sampling, curve stitching (docs/method.md §3, 5).

numpy only. All frame indices here are *sampled* indices (original // frame_skip)
except the event onsets/offsets handed in, which are original 0-based frames
as in labels.csv.

Windows: length k, stride k/2; window i covers sampled frames [i k/2, i k/2 + k);
n sampled frames give floor(n / (k/2)) - 1 windows.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping

import numpy as np

from mepkg.constants import CLASS_INDEX, CLASS_NAMES, NEUTRAL_INDEX
from mepkg.intervals import check_frame_skip, to_sampled

log = logging.getLogger(__name__)

# Class target of an ME frame whose emotion is not one of CLASS_NAMES: ignored by the loss.
NO_CLASS = -1


def _half(k: int) -> int:
    if k < 2 or k % 2:
        raise ValueError(f"window length k must be even and >= 2 (stride k/2), got {k}")
    return k // 2


def n_windows(n_sampled: int, k: int) -> int:
    """Windows of a video of ``n_sampled`` sampled frames: floor(n / (k/2)) - 1, at least 0."""
    return max(0, n_sampled // _half(k) - 1)


def window_starts(n_sampled: int, k: int) -> np.ndarray:
    """Sampled index of each window's first (reference) frame: i * k/2, shape (W,) int64."""
    return np.arange(n_windows(n_sampled, k), dtype=np.int64) * _half(k)


def _events_rows(events) -> list[Mapping]:
    if events is None:
        return []
    if hasattr(events, "to_dict"):          # pandas DataFrame
        return events.to_dict("records")
    return [e if isinstance(e, Mapping) else vars(e) for e in events]


def frame_targets(n_sampled: int, events: Iterable, frame_skip: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per sampled frame: spot target (n,) float32 and class target (n,) int64 (docs/method.md §3).

    ``events``: rows of labels.csv (a DataFrame, dicts or ``Event`` objects) with
    onset, offset (original 0-based frames), type and emotion. Only
    ``type == "micro"`` counts. Frames onset+1 .. offset-1 (sampled) of each ME get
    spot 1 and the ME's class index; every other frame 0 and neutral (4). An ME
    whose emotion is not a known class gets spot 1 and class ``NO_CLASS`` (-1).
    """
    check_frame_skip(frame_skip)
    spot = np.zeros(n_sampled, np.float32)
    cls = np.full(n_sampled, NEUTRAL_INDEX, np.int64)
    for row in _events_rows(events):
        if str(row.get("type", "micro")) != "micro":
            continue
        onset, offset = to_sampled(int(row["onset"]), frame_skip), to_sampled(int(row["offset"]),
                                                                              frame_skip)
        if offset < onset:
            raise ValueError(f"event {row.get('subject', '')} {row.get('video', '')} onset "
                             f"{row['onset']} > offset {row['offset']}: fix labels.csv")
        emotion = row.get("emotion")
        index = CLASS_INDEX.get(emotion if isinstance(emotion, str) else "", NO_CLASS)
        if index == NO_CLASS or index == NEUTRAL_INDEX:
            log.warning("ME %s %s at %s-%s has emotion %r, not one of %s: spotting target only",
                        row.get("subject", ""), row.get("video", ""), row["onset"],
                        row["offset"], emotion, CLASS_NAMES[:-1])
            index = NO_CLASS
        lo, hi = max(onset + 1, 0), min(offset, n_sampled)       # onset+1 .. offset-1
        spot[lo:hi] = 1.0
        cls[lo:hi] = index
    return spot, cls


def window_targets(n_sampled: int, events: Iterable, k: int, frame_skip: int,
                   starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Targets of every window: spot (W, k) float32, class (W, k) int64.

    ``starts``: each window's first sampled frame (a features file's
    ``window_start``); default ``window_starts(n_sampled, k)``.
    """
    starts = window_starts(n_sampled, k) if starts is None else np.asarray(starts, np.int64)
    if len(starts) and (starts.min() < 0 or starts.max() + k > n_sampled):
        raise ValueError(f"windows starting at {starts.min()}..{starts.max()} with k={k} do not "
                         f"fit in {n_sampled} sampled frames")
    spot, cls = frame_targets(n_sampled, events, frame_skip)
    index = starts[:, None] + np.arange(k)[None, :]                      # W x k
    return spot[index], cls[index]


def select_training_windows(spot_w: np.ndarray, ratio: float, rng: np.random.Generator
                            ) -> np.ndarray:
    """Indices (sorted) of every window holding a positive frame plus ratio x as many
    all-background windows drawn at random (docs/method.md §5); fewer if there are not that many."""
    spot_w = np.asarray(spot_w)
    has_me = (spot_w > 0).any(axis=1)
    positive = np.flatnonzero(has_me)
    background = np.flatnonzero(~has_me)
    n_background = min(int(len(positive) * ratio), len(background))
    chosen = rng.choice(background, size=n_background, replace=False)
    return np.sort(np.concatenate([positive, chosen]).astype(np.int64))


def class_weights(cls_targets: np.ndarray, neutral_factor: float,
                  n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """'Balanced' class weights n / (n_classes x count_c) over the frames (docs/method.md §5).

    The neutral weight is then multiplied by ``neutral_factor`` (the paper's 6).

    A class absent from ``cls_targets`` gets weight 0 (it cannot be learned from
    this fold; sklearn's 'balanced' would raise). Negative targets (``NO_CLASS``)
    are not counted. Returns (n_classes,) float32.
    """
    cls = np.asarray(cls_targets).ravel()
    cls = cls[cls >= 0]
    if cls.size and cls.max() >= n_classes:
        raise ValueError(f"class target {cls.max()} out of range for {n_classes} classes")
    counts = np.bincount(cls, minlength=n_classes).astype(np.float64)
    weights = np.zeros(n_classes)
    present = counts > 0
    weights[present] = cls.size / (n_classes * counts[present])
    weights[NEUTRAL_INDEX] *= neutral_factor
    absent = [CLASS_NAMES[i] for i in np.flatnonzero(~present)]
    if absent:
        log.warning("classes absent from the training frames, weight 0: %s", ", ".join(absent))
    return weights.astype(np.float32)


def stitch_curve(per_window: np.ndarray, k: int) -> np.ndarray:
    """Per-window outputs (W, k, ...) -> per-frame curve ((W+1) k/2, ...) (docs/method.md §5).

    Window 0 gives frames [0, k); each later window i its second half,
    frames [(i+1) k/2, (i+2) k/2).
    """
    per_window = np.asarray(per_window)
    half = _half(k)
    if per_window.ndim < 2 or per_window.shape[1] != k:
        raise ValueError(f"per-window outputs must be (n_windows, k={k}, ...), "
                         f"got {per_window.shape}")
    if len(per_window) == 0:
        return per_window.reshape((0,) + per_window.shape[2:])
    tails = per_window[1:, half:].reshape((-1,) + per_window.shape[2:])
    return np.concatenate([per_window[0], tails], axis=0)
