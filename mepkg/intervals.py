"""Interval IoU and the neutral veto, each defined once (issue 13).

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
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
