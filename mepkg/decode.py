"""Prior-guided decoding: per-frame scores -> ME intervals with an emotion (docs/method.md §6).

Decoding is kept apart from the model (as pyannote's ``Binarize``): every
number it uses is a field of :class:`DecodePriors`, so tuning a prior re-runs
this stage and the evaluation only, never the model.

Entry points (docs/architecture.md):

- ``DecodePriors.of``: the priors from a config group, a priors file's
  mapping or a model file's record (the one constructor from a mapping).
- ``resolve_k_prime``: the duration prior k' a decoding uses (the one place
  that chooses between a fixed k' and the labels' estimate);
  ``estimate_k_prime`` / ``k_prime_from_labels`` / ``fold_k_primes``.
- ``decode_intervals(curve, k_p, **priors)``: one spot-score curve -> intervals
  (steps 1-5 of docs/method.md §6), at the sampled rate.
- ``frame_classes`` / ``recognise``: per-frame classes and the interval vote
  (step 6).
- ``decode_videos(videos, priors, k_p) -> DataFrame``: every video, output in
  original 0-based frames (step 7).
- ``run_decode(scores_files, out, priors_file, labels)``: the ``mepkg decode``
  stage.
- ``megc_submission`` / ``write_megc_submission``: the MEGC submission CSV
  (vetoed rows dropped, frames 1-based; or the authors' own rows;
  docs/method.md §9.3).
- ``threshold_sweep``: decode saved curves at each threshold p and score them.

The release's ablation switches and its MEGC test-set settings are fields of
:class:`DecodePriors` too (docs/method.md §9): ``interval`` (prior | fixed |
samm_test), ``synergy`` (0 | 1 | 2), the presets ``megc_samm`` /
``megc_casme3`` and the submission rows (mepkg | release).

The neutral veto (step 6) is recorded, not applied: the output keeps every
interval and marks the ones the recognition head rejects in the boolean
column ``vetoed`` (True only where the vote is neutral *and* the veto is on:
``drop_neutral``, which by default follows the release's reporting, on under
synergy 1 and off under 0 and 2; :attr:`DecodePriors.veto`). Scoring the rows
with ``vetoed == False`` gives the result with the veto, scoring all rows the
result without it; both come from one decode output
(``mepkg.metrics.evaluate(..., veto=...)``). The column is read through
:func:`mepkg.intervals.vetoed_mask` everywhere; use
:func:`mepkg.intervals.apply_veto` before handing a CSV to an external
evaluator.

Decisions where the method leaves room (docs/method.md §6.9): ME durations
for k' are measured on sampled label indices (``offset // skip - onset //
skip``); k' is at least 1; a constant curve gives no interval; a curve
shorter than the smoothing width keeps its length (centred slice of the full
convolution).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from mepkg import __version__
from mepkg.constants import CLASS_NAMES, NEGATIVE_INDEX, NEUTRAL_INDEX
from mepkg.intervals import (apply_veto, check_frame_skip, interval_iou, to_original, to_sampled,
                             vetoed_mask)
from mepkg.metrics import DEFAULT_EMOTIONS, EvaluateSettings, evaluate
from mepkg.quality import QualityPolicy, analysed_frames

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ["subject", "video", "onset", "offset", "emotion",
                  "apex", "score", "vote", "vetoed", "frame_skip"]
MEGC_COLUMNS = ["subject", "video", "onset", "offset", "emotion"]   # 1-based frames (§9.3)
K_RULES = ("train", "dataset")
INTERVAL_STRATEGIES = ("prior", "fixed", "samm_test")   # docs/method.md §9.1, §9.3
SYNERGY_LEVELS = (0, 1, 2)                     # docs/method.md §9.2
SUBMISSION_ROWS = ("mepkg", "release")         # docs/method.md §9.3

# The release's MEGC test-set settings (docs/method.md §9.3). A preset replaces
# the fields it names; every other field keeps its configured value. Its names
# are mepkg.constants.DECODE_PRESET_NAMES (tests/test_defaults.py checks).
DECODE_PRESETS: dict[str, dict] = {
    # SAMM test set: p 0.65; the release's SAMM boundary search on the smoothed
    # curve with levels 0.2 (within k' of the peak) and 0.8 (k' to 2k'), no
    # suppression; negative logit - 1; the vote leaves `negative` only when more
    # than 20% of the span is not negative; k' 6.
    "megc_samm": {"p": 0.65, "interval": "samm_test", "t1_level": 0.2, "t2_level": 0.8,
                  "synergy": 1, "negative_penalty": 1.0, "non_negative_share": 0.2,
                  "k_prime": 6},
    # CAS(ME)^3 test set: p 0.55; fixed windows peak +- k' (no suppression) with
    # k' 6; per-frame class over the 4 emotions (synergy 2); plain vote.
    "megc_casme3": {"p": 0.55, "interval": "fixed", "synergy": 2, "negative_penalty": 0.0,
                    "non_negative_share": None, "k_prime": 6},
}


@dataclass(frozen=True)
class DecodePriors:
    """Every prior of the decoding (docs/method.md §6, §9); ``config.yaml``'s ``decode`` group.

    k' comes from the labels (``k_rule``) unless ``k_prime`` fixes it (or it
    is given explicitly to :func:`decode_videos` / in the priors YAML).
    ``preset`` names the test-set preset the priors were built from:
    :meth:`from_dict` (the config / priors-file path) and :func:`apply_preset`
    overwrite the fields named in ``DECODE_PRESETS[preset]``; the constructor
    and ``dataclasses.replace`` do not, so a field changed afterwards (the
    threshold sweep's p) stays changed.
    """

    p: float = 0.55                # §6.2: threshold = mean + p (max - mean) of the smoothed curve
    smooth_factor: int = 2         # §6.1: moving-average width = 2 k'
    t1_divisor: float = 1.5        # §6.4: onset/offset search level t1 = mean(raw) / 1.5
    t2_factor: float = 1.0         # §6.4: extension level t2 = mean(raw) (x 1.0)
    extend_factor: int = 5         # §6.4: extensions walk at most 5 k' from the peak
    iou_threshold: float = 0.2     # §6.5: keep only if IoU < 0.2 with every kept interval
    apex_factor: float = 1.0       # §6.5: ... and apexes more than 1 x k' apart
    drop_neutral: bool | None = None  # §6.6: synergy veto, intervals voted neutral are
                                   # removed; None: as the release reports, on under synergy 1,
                                   # off under 0 and 2 (§9.2; :attr:`veto`)
    k_rule: str = "train"          # §6.8: k' from the fold's training subjects ('train')
                                   # or the whole dataset ('dataset', the release's test-label leak)
    interval: str = "prior"        # §9.1 ablation: 'prior' (step 4 boundary search),
                                   # 'fixed' (peak +- k', the release's fixed-window baseline)
                                   # or 'samm_test' (the release's SAMM test-set search, §9.3)
    synergy: int = 1               # §9.2 ablation, per-frame class: 1 neutral logit set to 0,
                                   # then argmax over 5 (paper); 0 plain argmax over the 5 raw
                                   # logits (train with train.neutral_factor 0); 2 argmax over
                                   # the 4 emotions
    t1_level: float | None = None  # §9.3: fixed onset/offset search level instead of
                                   # mean / t1_divisor (None: from the curve mean); samm_test:
                                   # its near level (megc_samm: 0.2)
    t2_level: float | None = None  # §9.3: fixed extension level instead of t2_factor x mean
                                   # (None: from the curve mean); samm_test: its far level
                                   # (megc_samm: 0.8)
    suppression: bool = True       # §6.5 on/off; applies to interval 'prior' only, as in the
                                   # release (fixed and samm_test windows are never suppressed)
    negative_penalty: float = 0.0  # §9.3: subtracted from the negative logit before the
                                   # per-frame argmax (megc_samm: 1)
    non_negative_share: float | None = None  # §9.3: vote leaves `negative` only when more
                                   # than this share of the span is not negative, then the majority
                                   # of those frames wins (None: plain majority; megc_samm: 0.2)
    k_prime: int | None = None     # §9.3: fixed k' (None: from the labels by k_rule;
                                   # megc_casme3: 6)
    preset: str = ""               # §9.3: '' (none), 'megc_samm' or 'megc_casme3'
    submission: str = "mepkg"      # §9.3: MEGC submission rows: 'mepkg' (1-based original
                                   # frames, vetoed rows dropped) or 'release' (the authors' rows)

    def __post_init__(self):
        checks = [
            ("preset", self.preset == "" or self.preset in DECODE_PRESETS,
             f"'' or one of {sorted(DECODE_PRESETS)}"),
            ("p", 0.0 <= self.p <= 1.0, "a number in [0, 1]"),
            ("smooth_factor", self.smooth_factor >= 1, "at least 1"),
            ("t1_divisor", self.t1_divisor > 0, "positive"),
            ("t2_factor", self.t2_factor >= 0, "non-negative"),
            ("extend_factor", self.extend_factor >= 0, "non-negative"),
            ("iou_threshold", 0.0 < self.iou_threshold <= 1.0, "in (0, 1]"),
            ("apex_factor", self.apex_factor >= 0, "non-negative"),
            ("k_rule", self.k_rule in K_RULES, f"one of {K_RULES}"),
            ("interval", self.interval in INTERVAL_STRATEGIES, f"one of {INTERVAL_STRATEGIES}"),
            ("drop_neutral", self.drop_neutral is None or isinstance(self.drop_neutral, bool),
             "true, false or null (as the release reports: on under synergy 1 only)"),
            ("submission", self.submission in SUBMISSION_ROWS, f"one of {SUBMISSION_ROWS}"),
            ("synergy", not isinstance(self.synergy, bool) and self.synergy in SYNERGY_LEVELS,
             f"one of {SYNERGY_LEVELS}"),
            ("t1_level", self.t1_level is None or self.t1_level >= 0, "None or >= 0"),
            ("t2_level", self.t2_level is None or self.t2_level >= 0, "None or >= 0"),
            ("negative_penalty", self.negative_penalty >= 0, "non-negative"),
            ("non_negative_share", self.non_negative_share is None
             or 0.0 <= self.non_negative_share < 1.0, "None or in [0, 1)"),
            ("k_prime", self.k_prime is None or (not isinstance(self.k_prime, bool)
                                                 and int(self.k_prime) == self.k_prime
                                                 and self.k_prime >= 1),
             "None or an integer >= 1"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"decode prior {name}={getattr(self, name)!r}: "
                                 f"expected {expected}")
        if self.interval == "samm_test" and (self.t1_level is None or self.t2_level is None):
            raise ValueError("decode prior interval='samm_test' needs t1_level and t2_level "
                             "(its near and far levels; the megc_samm preset sets 0.2 and 0.8)")

    @property
    def veto(self) -> bool:
        """Whether intervals voted neutral are vetoed: ``drop_neutral``, or when it is None
        the release's reporting (main.py reports the vetoed result under synergy 1 only)."""
        return self.synergy == 1 if self.drop_neutral is None else self.drop_neutral

    def interval_kwargs(self) -> dict:
        """The keyword arguments of :func:`decode_intervals` (steps 1-5)."""
        return {k: getattr(self, k) for k in ("p", "smooth_factor", "t1_divisor", "t2_factor",
                                              "extend_factor", "iou_threshold", "apex_factor",
                                              "interval", "t1_level", "t2_level", "suppression")}

    @classmethod
    def from_dict(cls, values: dict, source: str = "priors") -> "DecodePriors":
        """Build from a mapping, its ``preset`` applied; an unknown key is an error naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown decode prior(s) {unknown}; "
                             f"known: {sorted(known)}")
        try:
            return apply_preset(cls(**values), values.get("preset") or "")
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from err

    @classmethod
    def of(cls, priors: "DecodePriors | Mapping | None",
           source: str = "config.yaml decode") -> "DecodePriors":
        """The priors ``priors`` stands for: itself, :meth:`from_dict` of a mapping (a
        config group, a priors file, a model file's record; ``source`` names it in
        errors), or the defaults for None."""
        if isinstance(priors, cls):
            return priors
        return cls.from_dict(dict(priors or {}), source=source)

    def to_dict(self) -> dict:
        return asdict(self)


# The defaults of the step functions below: the paper's priors, declared once in DecodePriors.
PAPER_PRIORS = DecodePriors()


def apply_preset(priors: DecodePriors, preset: str) -> DecodePriors:
    """``priors`` with the fields of ``DECODE_PRESETS[preset]`` overwritten
    (docs/method.md §9.3); ``preset`` '' returns ``priors`` unchanged."""
    if not preset:
        return priors
    if preset not in DECODE_PRESETS:
        raise ValueError(f"decode prior preset={preset!r}: expected '' or one of "
                         f"{sorted(DECODE_PRESETS)}")
    return replace(priors, preset=preset, **DECODE_PRESETS[preset])


# ---------------------------------------------------------------- k' (duration prior)
def estimate_k_prime(durations: Iterable[int]) -> int:
    """k' = floor((median + 1) / 2), median = sorted(durations)[n // 2] (docs/method.md §6.8).

    ``durations`` are ``offset - onset`` in sampled frames.
    """
    values = sorted(int(d) for d in durations)
    if not values:
        raise ValueError("no micro-expression durations to estimate k' from: "
                         "give k_prime in the priors file or labels with micro events")
    if values[0] < 0:
        raise ValueError(f"negative ME duration {values[0]} (offset before onset) in the labels")
    return max(1, (values[len(values) // 2] + 1) // 2)


def k_prime_from_labels(labels: pd.DataFrame, frame_skip: int,
                        subjects: Sequence[str] | None = None) -> int:
    """k' from the micro events of ``subjects`` (all subjects when None).

    Durations are taken at the sampled rate on sampled label indices:
    ``offset // frame_skip - onset // frame_skip`` (sampled index =
    floor(original / frame_skip)), which is how the model sees an ME (§1). On the
    real CAS(ME)^3 sheet (frame_skip 1) this gives k' = 11 as the reference.
    """
    check_frame_skip(frame_skip)
    missing = [c for c in ("subject", "onset", "offset") if c not in labels.columns]
    if missing:
        raise ValueError(f"labels lack column(s) {missing} needed for k'")
    rows = labels
    if "type" in rows.columns:
        rows = rows[rows["type"].astype(str) == "micro"]
    if subjects is not None:
        rows = rows[rows["subject"].astype(str).isin([str(s) for s in subjects])]
    onset = to_sampled(rows["onset"].to_numpy(np.int64), frame_skip)
    offset = to_sampled(rows["offset"].to_numpy(np.int64), frame_skip)
    return estimate_k_prime(offset - onset)


def resolve_k_prime(priors: DecodePriors, k_p: int | None = None,
                    labels: pd.DataFrame | None = None, frame_skip: int | None = None,
                    held_out: Iterable[str] = (), source="labels") -> int:
    """The k' a decoding uses (docs/method.md §6.8), the first of:

    1. ``priors.k_prime``, when fixed (a preset, a priors file, a fold's record);
    2. ``k_p``, when given (a fold's k' from :func:`fold_k_primes`, a packaged model's);
    3. estimated from the micro events of ``labels`` at ``frame_skip``: by
       ``priors.k_rule`` "train" those of the subjects not in ``held_out``
       (leak-free), by "dataset" (the release's rule) every subject's.

    ``source`` names the labels in the message when they hold no micro event
    to estimate from.
    """
    if priors.k_prime is not None:
        return int(priors.k_prime)
    if k_p is not None:
        return int(k_p)
    if labels is None:
        raise ValueError("k' is needed: set the k_prime prior, or give labels.csv (--labels) "
                         "to estimate it from")
    from mepkg.inputs import InputError

    micro = labels["type"].astype(str) == "micro"
    if not micro.any():
        raise InputError(f"{source}: no micro-expression row (type micro) to estimate k' "
                         f"from; give the labels.csv of the training subjects")
    subjects = None
    if priors.k_rule == "train":
        held_out = {str(s) for s in held_out}
        subjects = sorted(set(labels["subject"].astype(str)) - held_out)
        if not micro[labels["subject"].astype(str).isin(subjects)].any():
            raise InputError(f"{source}: no micro-expression row of a subject other than "
                             f"the held-out {', '.join(sorted(held_out))}; k' comes from "
                             f"the training subjects (k_rule train): give their labels, "
                             f"k_prime in the priors file, or k_rule: dataset")
    return k_prime_from_labels(labels, frame_skip, subjects)


def fold_k_primes(labels: pd.DataFrame, frame_skip: int, folds: Sequence[str],
                  priors: DecodePriors) -> dict[str, int]:
    """k' of each LOSO fold: held-out subject -> :func:`resolve_k_prime` with it held out."""
    return {str(f): resolve_k_prime(priors, labels=labels, frame_skip=frame_skip, held_out=[f])
            for f in folds}


# ---------------------------------------------------------------- steps 1-5
def smooth(curve: np.ndarray, width: int) -> np.ndarray:
    """Moving average of ``width`` frames, same length as ``curve`` (step 1).

    Equals ``np.convolve(curve, ones(width) / width, 'same')`` (zero padding)
    when ``len(curve) >= width``; for a shorter curve numpy would return
    ``width`` values, here the same centred slice of the full convolution
    keeps ``len(curve)``.
    """
    kernel = np.full(width, 1.0 / width)
    full = np.convolve(curve, kernel, mode="full")   # n + width - 1
    start = (width - 1) // 2
    return full[start:start + len(curve)]


def segment_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """IoU of two half-open intervals, lengths ``end - start`` (step 5, as the release).

    Built on :func:`mepkg.intervals.interval_iou`: ``[start, end)`` is the
    inclusive ``[start, end - 1]``.
    """
    return interval_iou((a[0], a[1] - 1), (b[0], b[1] - 1))


def _validate_curve(curve) -> np.ndarray:
    s = np.asarray(curve, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"score curve must be 1-D (n sampled frames,), got shape {s.shape}")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise ValueError(f"score curve is not finite at sampled frame {int(bad[0])} "
                         f"(value {s[bad[0]]}); {bad.size} such frame(s)")
    return s


def detect_peaks(curve, k_p: int, p: float = PAPER_PRIORS.p,
                 smooth_factor: int = PAPER_PRIORS.smooth_factor, mask=None,
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Steps 1-3: ``(peaks, smoothed curve, threshold)`` of a validated curve.

    ``mask`` (bool, True = analysed; docs/method.md §6.10): masked frames
    enter the smoothing as 0 (like the padding beyond the curve's ends), stay
    out of the threshold's mean and max, and hold no peak; a peak needs an
    analysed frame on each side, as it needs a frame on each side at the ends.
    """
    s = np.asarray(curve, dtype=np.float64)
    if mask is not None:
        s = np.where(mask, s, 0.0)
    # 1. smooth: moving average of width 2k'
    sm = smooth(s, smooth_factor * k_p)                          # (n,)
    # 2. threshold on the smoothed curve: mean + p (max - mean)
    stats = sm if mask is None else sm[mask]
    mean_sm = float(stats.mean())
    thr = mean_sm + p * (float(stats.max()) - mean_sm)
    # 3. peaks of the smoothed curve above it, at least k' apart
    if mask is None:
        peaks, _ = find_peaks(sm, height=thr, distance=k_p)
    else:
        peaks, _ = find_peaks(np.where(mask, sm, -np.inf), height=thr, distance=k_p)
        inner = np.zeros(len(mask), bool)
        inner[1:-1] = mask[:-2] & mask[2:]
        peaks = peaks[inner[peaks]]
    return peaks, sm, thr


def analysed_run(mask: np.ndarray, frame: int) -> tuple[int, int]:
    """First and last frame (inclusive) of the stretch of analysed frames holding ``frame``."""
    masked = np.flatnonzero(~mask)
    before, after = masked[masked < frame], masked[masked > frame]
    return (int(before[-1]) + 1 if before.size else 0,
            int(after[0]) - 1 if after.size else len(mask) - 1)


def _validate_mask(mask, n: int) -> np.ndarray | None:
    """Bool (n,) analysed-frame mask; None when there is none or nothing is masked."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != (n,) or m.dtype != bool:
        raise ValueError(f"analysed-frame mask must be bool of shape ({n},) like the score "
                         f"curve, got {m.dtype} {m.shape}")
    return None if m.all() else m


def onset_offset(s: np.ndarray, peak: int, k_p: int, t1: float, t2: float,
                 extend_factor: int = PAPER_PRIORS.extend_factor) -> tuple[int, int]:
    """Step 4 for one peak, on the raw curve: ``(start, end)``, inclusive."""
    n = len(s)
    l0, r0 = max(0, peak - k_p), min(n - 1, peak + k_p)
    # 4a. start: first rise above t1 walking right from l0 (-> the frame before it)
    start = l0
    for i in range(l0 + 1, peak):
        if s[i] > s[i - 1] and s[i] > t1:
            start = i - 1
            break
    # 4b. end: first fall above t1 walking left from r0 (-> the frame after it)
    end = r0
    for i in range(r0 - 1, peak, -1):
        if s[i] > s[i + 1] and s[i] > t1:
            end = i + 1
            break
    # 4c. extend left, at most to peak - 5k': stop at two consecutive frames below t2
    for i in range(start - 1, max(0, peak - extend_factor * k_p) - 1, -1):
        if i > 0 and s[i] < t2 and s[i - 1] < t2:
            start = i + 1
            break
    # 4d. extend right, at most to peak + 5k': likewise
    for j in range(end + 1, min(n - 1, peak + extend_factor * k_p) + 1):
        if j < n - 1 and s[j] < t2 and s[j + 1] < t2:
            end = j - 1
            break
    return start, end


def samm_test_bounds(sm: np.ndarray, peak: int, k_p: int, near_level: float,
                     far_level: float) -> tuple[int, int]:
    """The release's SAMM test-set boundaries of one peak, on the *smoothed* curve
    (docs/method.md §9.3; training_utils.py:53-84): ``(start, end)``, inclusive.

    Defaults ``peak -+ 2k'`` (clipped). Walking out from the peak within k', the
    first frame ``i`` where ``sm[i]`` and its outer neighbour are both below
    ``near_level`` sets the boundary (start ``i``; end ``i + 1``); failing
    that, the same test with ``far_level`` walking from k' + 1 out to 2k' - 1
    frames from the peak on the right, and from k' + 1 to 2k' on the left. The
    frame at exactly ``peak + k'`` is never tested.
    """
    n = len(sm)
    start, end = max(0, peak - 2 * k_p), min(n - 1, peak + 2 * k_p)
    near_start = max(0, peak - k_p)
    for i in range(peak - 1, near_start - 1, -1):
        if i > 0 and sm[i] < near_level and sm[i - 1] < near_level:
            start = i
            break
    else:
        for i in range(near_start - 1, max(0, peak - 2 * k_p) - 1, -1):
            if i > 0 and sm[i] < far_level and sm[i - 1] < far_level:
                start = i
                break
    near_end = min(n - 1, peak + k_p)
    for i in range(peak + 1, near_end):
        if i + 1 < n and sm[i] < near_level and sm[i + 1] < near_level:
            end = i + 1
            break
    else:
        for i in range(near_end + 1, min(n - 1, peak + 2 * k_p)):
            if i + 1 < n and sm[i] < far_level and sm[i + 1] < far_level:
                end = i + 1
                break
    return start, end


def suppress(candidates, k_p: int, iou_threshold: float = PAPER_PRIORS.iou_threshold,
             apex_factor: float = PAPER_PRIORS.apex_factor) -> list[tuple[int, int, int]]:
    """Step 5: sort by start; keep an interval only if, against every kept one,
    IoU < ``iou_threshold`` and the apexes are more than ``apex_factor`` k' apart."""
    kept: list[tuple[int, int, int]] = []
    for cand in sorted(candidates, key=lambda c: c[0]):
        if all(segment_iou(cand[:2], k[:2]) < iou_threshold
               and abs(cand[2] - k[2]) > apex_factor * k_p for k in kept):
            kept.append(tuple(cand))
    return kept


def decode_intervals(curve, k_p: int, p: float = PAPER_PRIORS.p,
                     smooth_factor: int = PAPER_PRIORS.smooth_factor,
                     t1_divisor: float = PAPER_PRIORS.t1_divisor,
                     t2_factor: float = PAPER_PRIORS.t2_factor,
                     extend_factor: int = PAPER_PRIORS.extend_factor,
                     iou_threshold: float = PAPER_PRIORS.iou_threshold,
                     apex_factor: float = PAPER_PRIORS.apex_factor,
                     interval: str = PAPER_PRIORS.interval,
                     t1_level: float | None = PAPER_PRIORS.t1_level,
                     t2_level: float | None = PAPER_PRIORS.t2_level,
                     suppression: bool = PAPER_PRIORS.suppression,
                     mask=None) -> list[tuple[int, int, int]]:
    """One spot-score curve -> ``[(start, end, apex), ...]`` (§6, steps 1-5).

    Sorted by start, except ``samm_test`` intervals, which stay in peak order
    as the release writes them.

    Indices are sampled frames, inclusive. A constant curve (max == min)
    carries no evidence and gives no interval (a literal run would find one
    plateau peak in the zero-padded smoothed curve of a constant c > 0).
    Interval strategies (docs/method.md §9): ``prior`` is steps 4-5, with
    ``t1_level`` / ``t2_level`` replacing the mean-based levels of step 4 and
    ``suppression=False`` skipping step 5; ``fixed`` is ``[peak - k', peak +
    k']`` clipped to the curve, apex = the peak (the recognition vote runs over
    the unclipped window, :func:`decode_videos`); ``samm_test`` is
    :func:`samm_test_bounds` with the levels ``t1_level`` / ``t2_level``,
    apex = the first maximum of the smoothed curve on the interval. As in the
    release, only ``prior`` intervals are suppressed.
    ``mask`` (bool, True = analysed frame; docs/method.md §6.10): masked frames
    hold no peak, enter no statistic, and no interval reaches into them (each
    interval stays in the analysed stretch of its peak, as at the curve's ends).
    """
    if interval not in INTERVAL_STRATEGIES:
        raise ValueError(f"interval must be one of {INTERVAL_STRATEGIES}, got {interval!r}")
    s = _validate_curve(curve)                                   # (n,)
    if isinstance(k_p, bool) or int(k_p) != k_p or k_p < 1:
        raise ValueError(f"k' must be an integer >= 1, got {k_p!r}")
    k_p = int(k_p)
    if interval == "samm_test" and (t1_level is None or t2_level is None):
        raise ValueError("interval 'samm_test' needs t1_level and t2_level (e.g. 0.2 and 0.8)")
    analysed = _validate_mask(mask, len(s))
    values = s if analysed is None else s[analysed]
    if len(values) == 0 or values.max() == values.min():
        return []
    # 1-3. smooth, threshold, peaks
    peaks, sm, _ = detect_peaks(s, k_p, p=p, smooth_factor=smooth_factor, mask=analysed)
    n = len(s)

    def stretch(peak: int) -> tuple[int, int]:
        """The analysed stretch of a peak (the whole curve when nothing is masked)."""
        return (0, n - 1) if analysed is None else analysed_run(analysed, peak)

    if interval == "fixed":
        # peak +- k' clipped, apex = the peak, never suppressed (the release suppresses
        # interval_strategy 1 only); the vote runs to peak + k' (decode_videos)
        out = []
        for pk in map(int, peaks):
            lo, hi = stretch(pk)
            out.append((max(lo, pk - k_p), min(hi, pk + k_p), pk))
        return out
    if interval == "samm_test":
        out = []
        for pk in map(int, peaks):
            lo, hi = stretch(pk)
            start, end = samm_test_bounds(sm, pk, k_p, float(t1_level), float(t2_level))
            start, end = max(lo, start), min(hi, end)
            out.append((start, end, start + int(np.argmax(sm[start:end + 1]))))
        return out
    # 4. onset/offset on the raw curve with mean m: t1 = m / 1.5, t2 = m
    #    (fixed levels when given)
    m = float(values.mean())
    t1 = m / t1_divisor if t1_level is None else float(t1_level)
    t2 = m * t2_factor if t2_level is None else float(t2_level)
    candidates = []
    for peak in peaks:
        lo, hi = stretch(int(peak))
        start, end = onset_offset(s[lo:hi + 1], int(peak) - lo, k_p, t1, t2, extend_factor)
        start, end = start + lo, end + lo
        apex = start + int(np.argmax(s[start:end + 1]))          # first maximum
        candidates.append((start, end, apex))
    # 5. suppression by IoU and apex distance
    if not suppression:
        return sorted(candidates, key=lambda c: c[0])
    return suppress(candidates, k_p, iou_threshold, apex_factor)


# ---------------------------------------------------------------- step 6: recognition
def frame_classes(logits, synergy: int = PAPER_PRIORS.synergy,
                  negative_penalty: float = PAPER_PRIORS.negative_penalty) -> np.ndarray:
    """Class index per frame from ``(n, 5)`` logits (docs/method.md §5.5, §9.2).

    ``synergy`` 1 (the paper): the neutral logit is set to 0 (not removed),
    then argmax over all 5; 0: plain argmax over the 5 raw logits; 2: argmax
    over the 4 emotions only (never neutral, so the veto never fires).
    ``negative_penalty`` is subtracted from the negative logit first (§9.3).
    Ties go to the lower class index (numpy's argmax).
    """
    if synergy not in SYNERGY_LEVELS:
        raise ValueError(f"synergy must be one of {SYNERGY_LEVELS}, got {synergy!r}")
    z = np.array(logits, dtype=np.float64, copy=True)            # (n, 5)
    if z.ndim != 2 or z.shape[1] != len(CLASS_NAMES):
        raise ValueError(f"class logits must have shape (n, {len(CLASS_NAMES)}), got {z.shape}")
    bad = np.flatnonzero(~np.isfinite(z).all(axis=1))
    if bad.size:
        raise ValueError(f"class logits are not finite at sampled frame {int(bad[0])}")
    z[:, NEGATIVE_INDEX] -= negative_penalty
    if synergy == 1:
        z[:, NEUTRAL_INDEX] = 0.0
    elif synergy == 2:
        z = z[:, :NEUTRAL_INDEX]                                 # the 4 emotions only
    return np.argmax(z, axis=1)


def recognise(classes: np.ndarray, start: int, end: int,
              non_negative_share: float | None = None) -> tuple[int, float]:
    """Majority vote of ``classes[start+1 .. end-2]`` (docs/method.md §6.6).

    Ties go to the class met first in the span; an empty span votes neutral.
    ``end`` may lie past the curve's end (the unclipped window of
    ``interval: fixed``): the span then stops at the last frame, as a Python
    slice does; ``start`` must be >= 0.
    Returns ``(class_index, vote)`` with ``vote`` the fraction of the span's
    frames that voted for the winner (0.0 for an empty span).
    ``non_negative_share`` (the release's SAMM test vote, §9.3): the winner is
    ``negative`` unless more than this share of the span's frames are not
    negative; then the majority of those frames wins (same tie rule).
    """
    span = np.asarray(classes[start + 1:end - 1])
    if span.size == 0:
        return NEUTRAL_INDEX, 0.0
    if non_negative_share is not None:
        others = span[span != NEGATIVE_INDEX]
        if not others.size / span.size > non_negative_share:    # the release's test
            return NEGATIVE_INDEX, float((span == NEGATIVE_INDEX).sum() / span.size)
        winner, _ = recognise(others, -1, others.size + 1)       # plain vote over all of them
        return winner, float((span == winner).sum() / span.size)
    counts = np.bincount(span, minlength=len(CLASS_NAMES))
    tied = np.flatnonzero(counts == counts.max())
    winner = next(int(c) for c in span if c in tied)          # first met among the tied
    return winner, float(counts[winner] / span.size)


# ---------------------------------------------------------------- step 7: all videos
def decode_videos(videos, priors: DecodePriors, k_p: int | None,
                  quality: QualityPolicy | None = None) -> pd.DataFrame:
    """Decode every video; one row per interval in original 0-based frames.

    A video's window ``quality`` flags (when its scores carry them) mask the
    frames of its unusable windows by the ``quality`` policy (default:
    :class:`mepkg.quality.QualityPolicy`; docs/method.md §2.10, §6.10).

    Columns: ``OUTPUT_COLUMNS``. ``score`` is the maximum raw spot score in
    the interval, ``vote`` the winning class's share of the vote, ``vetoed``
    True where the vote is neutral and the veto is on (``priors.veto``),
    ``frame_skip`` the sampling of the curve the interval comes from (the
    release-mode scoring converts at it). The vote of an ``interval: fixed``
    window runs to its unclipped end (docs/method.md §9.1). k' is
    :func:`resolve_k_prime` of ``priors`` and ``k_p``.
    """
    k_p = resolve_k_prime(priors, k_p)
    rows = []
    for v in videos:
        mask = analysed_frames(v, quality)
        try:
            intervals = decode_intervals(v.spot, k_p, **priors.interval_kwargs(), mask=mask)
        except ValueError as err:
            raise ValueError(f"video {v.video_id} (subject {v.subject}): {err}") from err
        spot = np.asarray(v.spot, dtype=np.float64)
        if len(v.logits) != len(spot):
            raise ValueError(f"video {v.video_id}: {len(v.logits)} logit rows for "
                             f"{len(spot)} spot scores; re-run prediction for this fold")
        try:
            classes = frame_classes(v.logits, priors.synergy, priors.negative_penalty)
        except ValueError as err:
            raise ValueError(f"video {v.video_id} (subject {v.subject}): {err}") from err
        skip = int(v.frame_skip)
        for start, end, apex in intervals:
            # a fixed window votes up to its unclipped end peak + k' (apex = peak), as the
            # release slices the per-frame classes (training_utils.py, recognition)
            vote_end = apex + k_p if priors.interval == "fixed" else end
            cls, vote = recognise(classes, start, vote_end, priors.non_negative_share)
            rows.append({
                "subject": str(v.subject), "video": str(v.video),
                "onset": to_original(start, skip), "offset": to_original(end, skip),
                "emotion": CLASS_NAMES[cls], "apex": to_original(apex, skip),
                "score": float(spot[start:end + 1].max()), "vote": vote,
                "vetoed": bool(priors.veto and cls == NEUTRAL_INDEX),
                "frame_skip": skip,
            })
    return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)


def megc_submission(intervals: pd.DataFrame, rows: str = "mepkg", frame_skip: int | None = None,
                    fixed_k_prime: int | None = None) -> pd.DataFrame:
    """The MEGC submission table of decoded intervals (docs/method.md §9.3).

    Columns ``subject, video, onset, offset, emotion`` in file order;
    ``apex``, ``score``, ``vote`` are left out.

    ``rows="mepkg"`` (default): the rows the neutral veto keeps
    (:func:`apply_veto`; ``others`` stays), onset and offset **1-based**
    original frames (0-based + 1), the numbering of the MEGC label sheets.

    ``rows="release"``: exactly the authors' rows (train.py ``out_excel``):
    every row voted ``others`` or ``neutral`` dropped (their class >= 3 filter),
    whatever ``vetoed`` says; frames ``x * frame_skip - frame_skip + 1`` of
    the sampled index ``x`` (SAMM: one sample early; CAS(ME)^3, frame_skip 1:
    the 0-based index); ``fixed_k_prime`` given (the intervals are
    ``interval: fixed`` windows, apex = peak): the unclipped window
    ``peak -+ k'``, negative or past the video's end where the release writes so.
    ``frame_skip`` None: each row's own, from the ``frame_skip`` column that
    decoding writes (the artefact's, not the config's).
    """
    if rows not in SUBMISSION_ROWS:
        raise ValueError(f"submission rows {rows!r}: expected one of {SUBMISSION_ROWS}")
    needed = MEGC_COLUMNS + (["apex"] if rows == "release" and fixed_k_prime else [])
    missing = [c for c in needed if c not in intervals.columns]
    if missing:
        raise ValueError(f"intervals lack column(s) {missing} for a MEGC submission")
    if rows == "mepkg":
        out = apply_veto(intervals)[MEGC_COLUMNS].copy()
        out["onset"] = out["onset"].astype(np.int64) + 1
        out["offset"] = out["offset"].astype(np.int64) + 1
        return out.reset_index(drop=True)
    kept = intervals[~intervals["emotion"].astype(str).isin(
        [CLASS_NAMES[i] for i in range(3, len(CLASS_NAMES))])]           # class >= 3
    if frame_skip is None:
        if "frame_skip" not in kept.columns:
            raise ValueError("intervals lack the frame_skip column for the release's "
                             "submission rows; give the frame_skip they were decoded at")
        skip = kept["frame_skip"].to_numpy(np.int64)
        for value in np.unique(skip):
            check_frame_skip(int(value))
        skip = skip[:, None]
    else:
        skip = check_frame_skip(frame_skip)
    frames = ["onset", "offset"] + (["apex"] if fixed_k_prime else [])
    values = kept[frames].to_numpy(np.int64)
    off_grid = np.flatnonzero((values % skip != 0).any(axis=1))
    if off_grid.size:
        row = kept.iloc[off_grid[0]]
        row_skip = int(np.broadcast_to(skip, values.shape)[off_grid[0], 0])
        raise ValueError(f"interval {row['subject']}/{row['video']} frames "
                         f"{dict(zip(frames, values[off_grid[0]].tolist()))}: not multiples of "
                         f"frame_skip {row_skip}; give the frame_skip the intervals were "
                         f"decoded at")
    sampled = values // skip
    if fixed_k_prime:
        on, off = sampled[:, 2] - int(fixed_k_prime), sampled[:, 2] + int(fixed_k_prime)
    else:
        on, off = sampled[:, 0], sampled[:, 1]
    out = kept[MEGC_COLUMNS].copy()
    skip = np.ravel(skip) if np.ndim(skip) else skip
    out["onset"] = on * skip - skip + 1
    out["offset"] = off * skip - skip + 1
    return out.reset_index(drop=True)


def write_megc_submission(intervals: pd.DataFrame | str | os.PathLike,
                          out: str | os.PathLike, priors: DecodePriors | dict | None = None,
                          frame_skip: int | None = None, k_prime: int | None = None) -> Path:
    """Write :func:`megc_submission` of a table or an intervals/predictions CSV (atomic).

    ``priors`` (the decode priors the intervals were made with; default the
    defaults) choose the rows (``priors.submission``); for the release's rows
    of ``interval: fixed`` windows the window's k' is ``k_prime`` or else
    ``priors.k_prime``. ``frame_skip`` (release rows only): by default each row's
    ``frame_skip`` column, as decoding writes it.
    """
    from mepkg.atomic import write_csv

    if priors is None:
        priors = DecodePriors()
    elif not isinstance(priors, DecodePriors):
        priors = DecodePriors.from_dict(dict(priors), source="config.yaml decode")
    fixed_k_prime = None
    if priors.submission == "release" and priors.interval == "fixed":
        fixed_k_prime = k_prime or priors.k_prime
        if fixed_k_prime is None:
            raise ValueError("the release's submission rows of interval 'fixed' windows are "
                             "peak -+ k' with one k': set decode.k_prime (the megc_casme3 "
                             "preset sets 6)")
    if not isinstance(intervals, pd.DataFrame):
        path = Path(intervals)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such intervals CSV")
        intervals = pd.read_csv(path, dtype={"subject": str, "video": str})
    table = megc_submission(intervals, priors.submission, frame_skip, fixed_k_prime)
    write_csv(table, out)
    log.info("%s: MEGC submission, %d intervals (%s)", out, len(table),
             "1-based frames" if priors.submission == "mepkg" else
             "the release's rows and frame numbers")
    return Path(out)


# ---------------------------------------------------------------- threshold sweep
def threshold_sweep(videos, k_p: int | Mapping[str, int], gt: pd.DataFrame,
                    p_values: Sequence[float], priors: DecodePriors | None = None,
                    mode: str = EvaluateSettings.mode, emotions: Sequence[str] = DEFAULT_EMOTIONS,
                    quality: QualityPolicy | None = None) -> pd.DataFrame:
    """Decode saved curves at each threshold prior p and score them (no model).

    ``k_p``: one k' for every video, or a mapping subject -> k' (each fold's
    own, as decode_fold uses). Returns one row per p: p, n_intervals, spot
    precision/recall/F1, recognition F1 and STRS (with the neutral veto of
    ``priors``). ``quality``: the policy masking unusable windows, as decode_fold.
    """
    priors = DecodePriors.of(priors)
    if isinstance(k_p, Mapping):
        missing = sorted({str(v.subject) for v in videos} - set(map(str, k_p)))
        if missing:
            raise ValueError(f"threshold_sweep: no k' for subject(s) {missing}")
    rows = []
    for p in p_values:
        at_p = replace(priors, p=float(p))
        if isinstance(k_p, Mapping):
            pred = pd.concat([decode_videos([v], at_p, int(k_p[str(v.subject)]), quality)
                              for v in videos] or [decode_videos([], at_p, 1)],
                             ignore_index=True)
        else:
            pred = decode_videos(videos, at_p, k_p, quality)
        r = evaluate(pred, gt, mode=mode, emotions=emotions, veto=True)
        rows.append({"p": float(p), "n_intervals": int((~vetoed_mask(pred)).sum()),
                     "spot_precision": r["spotting"]["precision"],
                     "spot_recall": r["spotting"]["recall"], "spot_f1": r["spotting"]["f1"],
                     "recog_f1": r["recognition"]["f1"], "strs": r["strs"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the stage
def _check_prior_types(values: dict, path) -> None:
    """ValueError naming the key when a prior's value has the wrong type (``p: abc``)."""
    defaults = {f.name: f.default for f in fields(DecodePriors)}
    for key, value in values.items():
        default = defaults.get(key)
        if isinstance(default, bool) or default is None:
            ok = isinstance(value, bool) if isinstance(default, bool) else True
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ValueError(f"{path}: prior {key}: {value!r} is not a "
                             f"{type(default).__name__}; e.g. `{key}: {default}`")


def read_priors(path: str | os.PathLike | None) -> tuple[DecodePriors, int | None]:
    """Priors YAML (keys = DecodePriors fields) -> ``(priors, priors.k_prime)``."""
    if path is None:
        return DecodePriors(), None
    import yaml

    from mepkg.datasets.common import require_file

    path = require_file(path, "priors", "YAML")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ValueError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', None) or err}); "
                         f"a priors file holds lines like `p: 0.55`") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a priors file is a mapping of prior: value, "
                         f"got {type(values).__name__}")
    _check_prior_types(values, path)
    k_prime = values.get("k_prime")
    if k_prime is not None and (isinstance(k_prime, bool) or not isinstance(k_prime, (int, float))
                                or not math.isfinite(k_prime) or int(k_prime) != k_prime
                                or k_prime < 1):
        raise ValueError(f"{path}: k_prime must be an integer >= 1, got {k_prime!r}")
    priors = DecodePriors.from_dict(values, source=str(path))
    return priors, priors.k_prime


def run_decode(scores_files, out, priors_file=None, labels=None, preset: str | None = None,
               megc_out=None, quality: QualityPolicy | None = None) -> Path:
    """``mepkg decode``: scores.h5 file(s) -> intervals CSV (atomic).

    ``preset`` (``megc_samm`` | ``megc_casme3``) applies a test-set preset on
    top of the priors; ``megc_out`` also writes the MEGC submission CSV.

    k' is ``k_prime`` from the priors file when given; otherwise it is
    estimated from ``labels`` (labels.csv): with ``k_rule: train`` over the
    subjects *not* held out in ``scores_files``, with ``dataset`` over all.
    """
    from mepkg.atomic import write_csv
    from mepkg.h5io import read_scores

    from mepkg.inputs import InputError, read_labels_table

    if isinstance(scores_files, (str, os.PathLike)):
        scores_files = [scores_files]
    if megc_out is not None and Path(megc_out).resolve() == Path(out).resolve():
        raise InputError(f"--megc-out {megc_out} is the intervals file --out {out}; give the "
                         f"MEGC submission another name")
    priors, _ = read_priors(priors_file)
    if preset:
        priors = apply_preset(priors, preset)
    videos, source = [], {}
    for path in scores_files:
        for v in read_scores(path):
            if v.video_id in source:
                raise InputError(f"{path}: video {v.video_id} is also in {source[v.video_id]} "
                                 f"(the same scores file given twice?); give each video's "
                                 f"scores once")
            source[v.video_id] = path
            videos.append(v)
    if not videos:
        raise InputError(f"{', '.join(map(str, scores_files))}: no video's scores in it; give "
                         f"the scores.h5 of a LOSO fold (`mepkg train-fold --subject S`)")
    skips = {int(v.frame_skip) for v in videos}
    if len(skips) > 1:
        raise ValueError(f"scores files {list(map(str, scores_files))} mix frame_skip "
                         f"values {sorted(skips)}; decode one dataset at a time")
    table = None
    if priors.k_prime is None and labels is not None:
        table = read_labels_table(labels)
    k_p = resolve_k_prime(priors, labels=table, frame_skip=next(iter(skips), 1),
                          held_out={str(v.subject) for v in videos}, source=labels)
    if table is not None:
        log.info("k' = %d from %s (%s subjects)", k_p, labels,
                 "training" if priors.k_rule == "train" else "all")
    result = decode_videos(videos, priors, k_p, quality)
    write_csv(result, out)
    if megc_out is not None:
        write_megc_submission(result, megc_out, priors, frame_skip=next(iter(skips), 1),
                              k_prime=k_p)
    log.info("%s: %d intervals in %d videos (%d vetoed as neutral), k'=%d",
             out, len(result), len(videos), int(vetoed_mask(result).sum()), k_p)
    return Path(out)


# ---------------------------------------------------------------- the workflow's fold
def decode_fold(scores_file, labels, priors: DecodePriors | dict, out, record,
                quality: QualityPolicy | dict | None = None) -> int:
    """Decode one LOSO fold's held-out videos (rule decode_fold); returns the k' used.

    k' is ``priors.k_prime`` when fixed, else it comes from ``labels`` by
    ``priors.k_rule`` (train: the subjects not held out in ``scores_file``). ``out``: the intervals CSV. ``record``: a
    priors YAML of exactly what was used, k_prime included (it is a valid
    ``mepkg decode --priors`` file, so the decoding can be replayed).
    ``quality``: the policy masking unusable windows' frames (docs/method.md §6.10).
    """
    import yaml

    from mepkg.atomic import atomic_output, write_csv
    from mepkg.h5io import read_scores

    priors = DecodePriors.of(priors)
    from mepkg.inputs import read_labels_table

    videos = read_scores(scores_file)
    table = read_labels_table(labels)
    held_out = {str(v.subject) for v in videos}
    frame_skip = int(videos[0].frame_skip) if videos else 1
    k_p = resolve_k_prime(priors, labels=table, frame_skip=frame_skip, held_out=held_out,
                          source=labels)
    if not isinstance(quality, QualityPolicy):
        quality = QualityPolicy.from_dict(quality)
    result = decode_videos(videos, priors, k_p, quality)
    write_csv(result, out)
    with atomic_output(record) as tmp:
        tmp.write_text(f"# decoding priors used, written by mepkg {__version__}\n"
                       + yaml.safe_dump({**priors.to_dict(), "k_prime": k_p}, sort_keys=False))
    log.info("fold %s: %d intervals in %d videos (%d vetoed as neutral), p=%.2f, k'=%d "
             "(%s subjects)", ",".join(sorted(held_out)), len(result), len(videos),
             int(vetoed_mask(result).sum()), priors.p, k_p,
             "training" if priors.k_rule == "train" else "all")
    return k_p


def pool_intervals(files, out) -> pd.DataFrame:
    """Concatenate the folds' interval CSVs, in the order given, into ``out`` (atomic)."""
    from mepkg.atomic import write_csv

    tables = [pd.read_csv(path, dtype={"subject": str, "video": str}) for path in files]
    pooled = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=OUTPUT_COLUMNS)
    write_csv(pooled, out)
    log.info("%d intervals from %d folds (%d vetoed as neutral)", len(pooled), len(tables),
             int(vetoed_mask(pooled).sum()))
    return pooled
