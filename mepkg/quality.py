"""Window quality flags, and which windows and frames the pipeline trusts (docs/method.md §2.10).

The features stage flags every window it could not analyse as the method
assumes (``features/<video>.h5`` ``quality``, one byte of bit flags per
window). :class:`QualityPolicy` (config.yaml's ``quality`` group) says which
flags make a window *unusable*; an unusable window is left out of training,
and the frames it covers are masked in decoding: no interval is placed on a
masked frame, and masked frames do not enter the threshold statistics.

numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Bit flags of features/<video>.h5 `quality` (0 = ok).
REUSED_CROP = 1        # no usable face at the reference frame: crop/landmarks of another window
REDETECT_FAILED = 2    # no face on the crop: frame landmarks mapped into crop coordinates
ALIGNMENT_CAPPED = 4   # nose bridge still moved > threshold after the last re-alignment
DRIFT_BOUNDED = 8      # re-alignment would move the crop further than features.max_drift
BOX_OUTSIDE = 16       # the crop box left the frame entirely: the window stops there
QUALITY_FLAGS = {"reused_crop": REUSED_CROP, "redetect_failed": REDETECT_FAILED,
                 "alignment_capped": ALIGNMENT_CAPPED, "drift_bounded": DRIFT_BOUNDED,
                 "box_outside": BOX_OUTSIDE}
# A window with one of these never looked at a face: never usable, whatever the policy.
NO_FACE = REUSED_CROP | BOX_OUTSIDE


@dataclass(frozen=True)
class QualityPolicy:
    """What the pipeline does with flagged windows (docs/method.md §2.10).

    The single source of these defaults: config.yaml's ``quality`` group and
    the schema mirror them (tests/test_workflow_config.py checks).
    """

    # flags that make a window unusable (names of QUALITY_FLAGS); docs/method.md §2.10
    # gives the reason for each choice
    unusable: tuple[str, ...] = ("reused_crop", "drift_bounded", "box_outside")
    warn_below: float = 0.9    # the workflow warns for a video with a smaller usable share

    def __post_init__(self):
        object.__setattr__(self, "unusable", tuple(str(f) for f in self.unusable))
        unknown = sorted(set(self.unusable) - set(QUALITY_FLAGS))
        if unknown:
            raise ValueError(f"quality unusable: unknown flag(s) {unknown}; "
                             f"known: {list(QUALITY_FLAGS)}")
        missing = [name for name, bit in QUALITY_FLAGS.items()
                   if bit & NO_FACE and name not in self.unusable]
        if missing:
            raise ValueError(f"quality unusable: {missing} must be listed (such a window "
                             f"never saw a face)")
        if not 0.0 <= self.warn_below <= 1.0:
            raise ValueError(f"quality warn_below={self.warn_below}: expected a share in [0, 1]")

    @property
    def bits(self) -> int:
        """The unusable flags as one bit mask."""
        return int(sum(QUALITY_FLAGS[name] for name in self.unusable))

    @classmethod
    def from_dict(cls, values: dict | None) -> "QualityPolicy":
        """From config.yaml's ``quality`` group or a model file's record; None: the defaults."""
        values = dict(values or {})
        unknown = sorted(set(values) - {"unusable", "warn_below"})
        if unknown:
            raise ValueError(f"quality: unknown setting(s) {unknown}; known: unusable, "
                             f"warn_below")
        return cls(**values)

    def to_dict(self) -> dict:
        return {"unusable": list(self.unusable), "warn_below": float(self.warn_below)}


def usable_windows(quality, policy: QualityPolicy | None = None) -> np.ndarray:
    """(W,) bool: windows whose flags the policy accepts (default policy when None)."""
    policy = policy or QualityPolicy()
    return (np.asarray(quality, np.int64) & policy.bits) == 0


def frame_mask(quality, k: int, policy: QualityPolicy | None = None) -> np.ndarray:
    """Analysed sampled frames ((W+1) k/2,) bool of a video's window flags.

    Window ``i`` covers sampled frames ``[i k/2, i k/2 + k)``. A frame is
    analysed when no unusable window covers it. Windows overlap by half, so
    each frame lies in two windows (the stitched curve takes its value from
    one of them, docs/method.md §5.5): one unusable window masks all ``k``
    of its frames, not only the ``k/2`` the curve takes from it, because the
    reason it is unusable (the face left, the crop lost the head) concerns
    the frames it shares with its neighbours too. A window without a face at
    its reference frame (``reused_crop``) also masks the ``k/2`` frames
    before it: the face was there at the previous reference and vanished
    somewhere in between.
    """
    quality = np.asarray(quality)
    half = k // 2
    n = (len(quality) + 1) * half if len(quality) else 0
    covered = np.zeros(n + 1, np.int64)          # difference array of unusable coverage
    for i in np.flatnonzero(~usable_windows(quality, policy)):
        first = i * half - (half if quality[i] & REUSED_CROP else 0)
        covered[max(first, 0)] += 1
        covered[min(i * half + k, n)] -= 1
    return np.cumsum(covered[:n]) == 0


def analysed_frames(scores, policy: QualityPolicy | None = None) -> np.ndarray | None:
    """:func:`frame_mask` of a video's score curve (a ``VideoScores``: its window
    ``quality`` flags and ``k``); None when the scores carry no flags (nothing masked)."""
    flags = getattr(scores, "quality", None)
    return None if flags is None else frame_mask(flags, int(scores.k), policy)


def usable_share(quality, policy: QualityPolicy | None = None) -> float:
    """Share of a video's windows that are usable (1.0 for a video without windows)."""
    usable = usable_windows(quality, policy)
    return float(usable.mean()) if usable.size else 1.0


def flag_counts(quality) -> dict[str, int]:
    """Windows carrying each flag: name -> count."""
    quality = np.asarray(quality, np.int64)
    return {name: int((quality & bit != 0).sum()) for name, bit in QUALITY_FLAGS.items()}


def analysed_shares(feature_files, policy: QualityPolicy | None = None) -> dict[str, dict]:
    """Per video (id from its features file): usable share and flag counts, for the run
    summary; logs a warning for each video below ``policy.warn_below``."""
    import logging

    from mepkg.h5io import read_features

    policy = policy or QualityPolicy()
    out = {}
    for path in feature_files:
        fs = read_features(path)
        vid = str(fs.attrs.get("video_id") or path)
        share = usable_share(fs.quality, policy)
        out[vid] = {"usable_share": round(share, 4), "windows": int(fs.n_windows),
                    **{k: n for k, n in flag_counts(fs.quality).items() if n}}
        if share < policy.warn_below:
            logging.getLogger(__name__).warning(
                "video %s: only %.0f%% of its windows are usable (quality.warn_below %.0f%%): "
                "%s; its unusable stretches are left out of training and decoding",
                vid, 100 * share, 100 * policy.warn_below,
                ", ".join(f"{n} {k}" for k, n in flag_counts(fs.quality).items() if n))
    return out
