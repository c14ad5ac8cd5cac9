"""Face crop and ROI geometry on the crop, and robust ROI motion (docs/method.md §2, steps 2-5).

Coordinates: points are (x, y) = (column, row). Boxes are half-open pixel
ranges ``(top, bottom, left, right)``: rows ``top:bottom``, columns
``left:right``, the order of ``features/<video>.h5`` ``crop_box``.

The ROI table (docs/method.md §2.3) lives in :data:`ROI_TABLE`; the motions measured
inside each ROI (the whole ROI and its sub-patches) come out in the channel
order of docs/method.md §2.7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Expansion of a landmark bounding box, in crop pixels: (top, bottom, left, right).
# Sub-patches: (centre landmark, rows before, rows after, cols before, cols after).
# All numbers: docs/method.md §2.3.
ROI_TABLE: dict[str, dict] = {
    "R1": {"landmarks": range(17, 22), "expand": (15, 5, 5, 0),          # left brow
           "subs": [(20, 10, 10, 10, 10), (19, 10, 10, 10, 10), (18, 10, 10, 10, 10)]},
    "R3": {"landmarks": range(22, 27), "expand": (15, 5, 0, 0),          # right brow
           "subs": [(23, 10, 10, 10, 10), (24, 10, 10, 10, 10), (25, 10, 10, 10, 10)]},
    "R4": {"landmarks": range(48, 67), "expand": (15, 10, 20, 20),       # mouth
           "subs": [(48, 10, 10, 10, 20), (54, 10, 10, 20, 10), (51, 10, 10, 10, 10),
                    (57, 10, 10, 10, 10), (62, 10, 10, 10, 10)]},
    "R5": {"landmarks": range(30, 36), "expand": (20, 5, 30, 30),        # nose wings
           "subs": [(31, 20, 5, 20, 10), (35, 20, 5, 10, 20)]},
    "R6": {"landmarks": range(36, 42), "lid": True},                      # left lower lid
    "R7": {"landmarks": range(42, 48), "lid": True},                      # right lower lid
    "R2": {"landmarks": range(29, 31), "expand": (13, 13, 13, 13)},      # nose bridge
}
# Channel order of docs/method.md §2.7 (whole ROI first, then its sub-patches); R2 is head motion.
FEATURE_ROIS: tuple[str, ...] = ("R1", "R3", "R4", "R5", "R6", "R7")
MOTION_NAMES: tuple[str, ...] = (
    "R1", "R1/20", "R1/19", "R1/18", "R3", "R3/23", "R3/24", "R3/25",
    "R4", "R4/48", "R4/54", "R4/51", "R4/57", "R4/62", "R5/31", "R5/35", "R6", "R7")
MIN_ROI_SIDE = 8  # smaller boxes cannot carry a 3-level Farneback pyramid: geometry rejected


@dataclass(frozen=True)
class Patch:
    """A region of an ROI's flow field whose robust motion is one feature motion."""

    name: str
    rows: slice           # rows of the ROI flow field
    cols: slice
    top_fraction: float   # fraction of largest-magnitude pixels averaged


@dataclass(frozen=True)
class Roi:
    """One ROI on the crop: where the flow is computed, and what is measured in it."""

    name: str
    box: tuple[int, int, int, int]   # top, bottom, left, right in crop pixels
    patches: tuple[Patch, ...]

    def take(self, image: np.ndarray) -> np.ndarray:
        top, bottom, left, right = self.box
        return image[top:bottom, left:right]


# ---------------------------------------------------------------- crop
def crop_box_from_landmarks(points: np.ndarray) -> tuple[int, int, int, int]:
    """Face crop box (top, bottom, left, right) in frame pixels from 68 landmarks.

    docs/method.md §2.2: g = half the inner-eye-corner distance (x42 - x39) / 2,
    centre = midpoint of landmarks 39 and 42, rows [cy - 3.5g, cy + 5.5g],
    columns [cx - 4.5g, cx + 4.5g], clipped at 0. Bottom and right may lie
    outside the frame (:func:`crop_gray` pads).
    """
    points = np.asarray(points, dtype=np.float64)
    g = (points[42, 0] - points[39, 0]) / 2.0
    if not np.isfinite(g) or g < 2.0:
        raise ValueError(f"inner eye corners 39/42 at x={points[39, 0]:.1f}/{points[42, 0]:.1f}: "
                         f"no usable face geometry")
    cx, cy = (points[39] + points[42]) / 2.0
    top = max(0, math.floor(cy - 3.5 * g))
    left = max(0, math.floor(cx - 4.5 * g))
    bottom = math.floor(cy + 5.5 * g)
    right = math.floor(cx + 4.5 * g)
    return top, bottom, left, right


def crop_gray(frame: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Crop ``box`` out of a BGR or gray frame, resize to ``size`` x ``size`` gray (uint8).

    Parts of the box outside the frame (after alignment shifts) are filled by
    replicating the border, so the crop keeps its scale.
    """
    top, bottom, left, right = box
    h, w = frame.shape[:2]
    t, b, l, r = max(top, 0), min(bottom, h), max(left, 0), min(right, w)
    if b <= t or r <= l:
        raise ValueError(f"crop box {box} lies outside the {w}x{h} frame")
    region = frame[t:b, l:r]
    if region.ndim == 3:
        region = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    if (t, b, l, r) != (top, bottom, left, right):
        region = cv2.copyMakeBorder(region, t - top, bottom - b, l - left, right - r,
                                    cv2.BORDER_REPLICATE)
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_LINEAR)


def crop_scale(box: tuple[int, int, int, int], size: int) -> tuple[float, float]:
    """(x, y) crop pixels per frame pixel."""
    top, bottom, left, right = box
    return size / (right - left), size / (bottom - top)


def to_crop_coords(points: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Map frame-pixel points into crop coordinates."""
    sx, sy = crop_scale(box, size)
    out = np.asarray(points, dtype=np.float32).copy()
    out[:, 0] = (out[:, 0] - box[2]) * sx
    out[:, 1] = (out[:, 1] - box[0]) * sy
    return out


def to_frame_coords(points: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Map crop-coordinate points back into frame pixels."""
    sx, sy = crop_scale(box, size)
    out = np.asarray(points, dtype=np.float32).copy()
    out[:, 0] = out[:, 0] / sx + box[2]
    out[:, 1] = out[:, 1] / sy + box[0]
    return out


# ---------------------------------------------------------------- ROIs
def _clip_box(box, size):
    top, bottom, left, right = (int(v) for v in box)
    return max(top, 0), min(bottom, size), max(left, 0), min(right, size)


def _trimmed(shape, trim: tuple[int, int, int, int], name: str, fraction: float) -> Patch:
    """The whole ROI less a border (top, bottom, left, right); whole ROI if nothing is left."""
    h, w = shape
    t, b, l, r = trim
    if h - t - b < 1 or w - l - r < 1:
        t = b = l = r = 0
    return Patch(name, slice(t, h - b), slice(l, w - r), fraction)


def build_rois(points: np.ndarray, config) -> tuple[Roi, tuple[Roi, ...]]:
    """Nose-bridge ROI and the six feature ROIs on the crop (docs/method.md §2.3).

    ``points`` are 68 landmarks in crop coordinates (rounded to whole pixels
    here); ``config`` is a :class:`mepkg.features.FeatureConfig` (crop size,
    top fractions and trims of docs/method.md §2.5). Raises ``ValueError`` when a
    box ends up smaller than :data:`MIN_ROI_SIDE` inside the crop.
    """
    pts = np.rint(np.asarray(points, dtype=np.float64)).astype(int)
    size = config.crop_size
    rois: dict[str, Roi] = {}
    for name, spec in ROI_TABLE.items():
        sel = pts[list(spec["landmarks"])]
        (x0, y0), (x1, y1) = sel.min(axis=0), sel.max(axis=0)
        if spec.get("lid"):
            w = x1 - x0
            cy = (y0 + y1) / 2.0
            box = (int(cy + w / 4), int(cy + 3 * w / 4), x0, x1)
        else:
            et, eb, el, er = spec["expand"]
            box = (y0 - et, y1 + eb, x0 - el, x1 + er)
        box = _clip_box(box, size)
        h, w = box[1] - box[0], box[3] - box[2]
        if h < MIN_ROI_SIDE or w < MIN_ROI_SIDE:
            raise ValueError(f"ROI {name} box {box} is smaller than {MIN_ROI_SIDE} px "
                             f"inside the {size}x{size} crop")
        patches = []
        if name == "R2":
            patches.append(_trimmed((h, w), config.trim_nose, name, config.top_nose))
        elif spec.get("lid"):
            patches.append(_trimmed((h, w), (config.trim_lid,) * 4, name, config.top_lid))
        else:
            if name != "R5":   # R5 contributes its two sub-patches only
                patches.append(_trimmed((h, w), (config.trim_region,) * 4, name,
                                        config.top_region))
            sub_top = config.top_r3_sub if name == "R3" else config.top_sub
            for centre, before_r, after_r, before_c, after_c in spec["subs"]:
                x, y = (int(v) for v in pts[centre] - (box[2], box[0]))
                rows = slice(max(y - before_r, 0), max(min(y + after_r, h), 1))
                cols = slice(max(x - before_c, 0), max(min(x + after_c, w), 1))
                if rows.stop <= rows.start or cols.stop <= cols.start:
                    raise ValueError(f"sub-patch {name}/{centre} lies outside ROI {name}")
                patches.append(Patch(f"{name}/{centre}", rows, cols, sub_top))
        rois[name] = Roi(name, box, tuple(patches))
    return rois["R2"], tuple(rois[n] for n in FEATURE_ROIS)


# ---------------------------------------------------------------- motion
def robust_motion(flow: np.ndarray, top_fraction: float) -> np.ndarray:
    """Mean (dx, dy) over the largest-magnitude ``top_fraction`` of a flow patch.

    Same count as the reference: n - int(n * (1 - top_fraction)) pixels,
    chosen with ``np.argpartition`` (no full sort).
    """
    return _top_mean(flow, flow[..., 0] * flow[..., 0] + flow[..., 1] * flow[..., 1],
                     top_fraction)


def _top_mean(flow: np.ndarray, magnitude2: np.ndarray, top_fraction: float) -> np.ndarray:
    """robust_motion given the squared magnitudes (h x w) of the flow patch (h x w x 2)."""
    dx, dy = flow[..., 0].ravel(), flow[..., 1].ravel()
    n = dx.size
    n_top = n - int(n * (1.0 - top_fraction))
    if n_top < n:
        top = np.argpartition(magnitude2.ravel(), n - n_top)[n - n_top:]
        dx, dy = dx[top], dy[top]
    return np.array([dx.sum(dtype=np.float64) / n_top, dy.sum(dtype=np.float64) / n_top])


def roi_motions(flow: np.ndarray, roi: Roi) -> np.ndarray:
    """Robust motions (len(roi.patches), 2) of every patch of one ROI flow field
    (squared magnitudes computed once for the ROI: its patches overlap)."""
    magnitude2 = flow[..., 0] * flow[..., 0] + flow[..., 1] * flow[..., 1]     # h x w
    return np.array([_top_mean(flow[p.rows, p.cols], magnitude2[p.rows, p.cols], p.top_fraction)
                     for p in roi.patches])
