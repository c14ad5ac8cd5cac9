"""Interval IoU, the neutral veto and the original <-> sampled frame conversion, each
defined once.

IoU convention: an interval is ``[onset, offset]`` of **inclusive** frames,
so it holds ``offset - onset + 1`` frames; IoU = shared frames / frames of
the union. ``[10, 70]`` vs ``[45, 85]``: 26 shared of 76 -> 0.342. An empty
union (both intervals empty) gives 0. Every IoU of the package is built on
:func:`iou_matrix`: :func:`interval_iou` for one pair, and decode's
``segment_iou``, whose ``(start, end)`` pairs are half-open (length
``end - start``, the release's suppression step), calls it with
``[start, end - 1]``.

Veto: decoding marks an interval ``vetoed`` where its vote is neutral and the
synergy veto is on; :func:`vetoed_mask` reads that column (bool, or text
``True``/``1`` from a CSV) and :func:`apply_veto` keeps the other rows.

Frames: intervals are in original 0-based frames outside the model stages;
the model sees every frame_skip-th frame. :func:`to_sampled` (original ->
sampled index, ``f // frame_skip``) and :func:`to_original` (sampled index
``i`` -> original frame ``i * frame_skip``) are the one conversion, and
:func:`check_frame_skip` the one check of a frame_skip value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_frame_skip(frame_skip) -> int:
    """``frame_skip`` as an int; ValueError unless it is an integer >= 1."""
    if (frame_skip is None or isinstance(frame_skip, bool)
            or not isinstance(frame_skip, (int, np.integer, float))
            or int(frame_skip) != frame_skip or frame_skip < 1):
        raise ValueError(f"frame_skip must be >= 1, got {frame_skip!r}")
    return int(frame_skip)


def to_sampled(frames, frame_skip):
    """Original 0-based frame(s) -> sampled index(es): ``frames // frame_skip`` (floor)."""
    if isinstance(frames, (int, np.integer)):
        return int(frames) // check_frame_skip(frame_skip)
    return np.asarray(frames, dtype=np.int64) // check_frame_skip(frame_skip)


def to_original(sampled, frame_skip):
    """Sampled index(es) -> original 0-based frame(s): ``sampled * frame_skip``."""
    if isinstance(sampled, (int, np.integer)):
        return int(sampled) * check_frame_skip(frame_skip)
    return np.asarray(sampled, dtype=np.int64) * check_frame_skip(frame_skip)


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every pair of inclusive intervals: a (P, 2), b (G, 2) of onset, offset -> (P, G)."""
    p = np.asarray(a, dtype=np.int64).reshape(-1, 1, 2)   # P x 1 x 2
    g = np.asarray(b, dtype=np.int64).reshape(1, -1, 2)   # 1 x G x 2
    inter = np.clip(np.minimum(p[..., 1], g[..., 1]) - np.maximum(p[..., 0], g[..., 0]) + 1, 0, None)
    union = (p[..., 1] - p[..., 0] + 1) + (g[..., 1] - g[..., 0] + 1) - inter
    return np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)


def interval_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """IoU of two inclusive intervals ``[onset, offset]`` (see the module docstring)."""
    return float(iou_matrix([a], [b])[0, 0])


def vetoed_mask(intervals: pd.DataFrame) -> np.ndarray:
    """Boolean array: rows the neutral veto removes (none without a ``vetoed`` column).

    A bool column is taken as it is; anything else (text from a CSV) is
    vetoed where it reads ``true`` or ``1`` (case and surrounding space ignored).
    """
    if "vetoed" not in intervals.columns:
        return np.zeros(len(intervals), dtype=bool)
    col = intervals["vetoed"]
    if col.dtype == bool:
        return col.to_numpy()
    return col.astype(str).str.strip().str.lower().isin(["true", "1"]).to_numpy()


def apply_veto(intervals: pd.DataFrame) -> pd.DataFrame:
    """The rows the neutral (synergy) veto keeps (all rows when there is no ``vetoed`` column)."""
    if "vetoed" not in intervals.columns:
        return intervals
    return intervals[~vetoed_mask(intervals)].reset_index(drop=True)
