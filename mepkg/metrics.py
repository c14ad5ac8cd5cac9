"""Spot-then-recognise evaluation: official, strict and release STRS, UF1, UAR, bootstrap.

docs/method.md §7 (scoring) and §8 (the table of protocol differences).

Pure numpy/pandas, separate from the model (as ActionFormer's evaluation).
Intervals are ``subject, video, onset, offset, emotion`` in original 0-based
frames, inclusive; IoU counts frames (``onset..offset``).

Two modes:

``official`` (MEGC 2023-2025 evaluator, the default)
    Per video, predictions are walked in file order; each one takes every
    not yet matched ground truth with IoU >= 0.5 as a TP (one-to-many); a
    prediction matching none is an FP; unmatched ground truths are FNs. Only
    subjects present in the predictions and videos present in the ground
    truth are scored (predictions for other videos are ignored, with a
    warning). Recognition quirk: a class whose one-vs-rest vectors hold a
    single value across ground truth and prediction together scores P = R = 0.
``strict``
    One-to-one matching, greedy over all pairs of a video by IoU descending
    (ties: prediction row, then ground-truth row). Every ground-truth subject
    and video is scored (a subject without predictions: all FN), and a
    prediction for a video absent from the ground truth is an FP (a
    labels.csv lists events, so an event-free video is simply absent). No
    recognition quirk; a class with undefined P or R still scores 0 there.
``release`` (the authors' own scoring, which produced the published table)
    Frames converted to the sampled rate (``f // frame_skip``), only videos
    of the ground truth scored (every ground truth counts, a subject without
    predictions gives FNs), each prediction in file order looks only at its
    single best-IoU ground truth (ties: the later), the neutral veto applied
    after matching, and a class whose one-vs-rest vectors hold one value is
    left out of the class averages. See :func:`evaluate_release`.

In all three, recognition runs on the TP pairs whose ground-truth emotion is in
the analysed set; per class one-vs-rest TP/FP/FN give P and R (0 where
undefined); F1_recog = 2PR/(P+R) of the class-averaged P and R; UF1 = mean
per-class F1, UAR = mean per-class recall; STRS = F1_spot x F1_recog.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mepkg.intervals import iou_matrix, vetoed_mask

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ["subject", "video", "onset", "offset", "emotion"]
DEFAULT_EMOTIONS = ("negative", "positive", "surprise")   # docs/method.md §7: `others` excluded
IOU_THRESHOLD = 0.5                                       # docs/method.md §7
MODES = ("official", "strict", "release")                 # docs/method.md §8


# ---------------------------------------------------------------- input
def validate_intervals(df: pd.DataFrame, kind: str, source: str = "<DataFrame>") -> pd.DataFrame:
    """Check and normalise an interval table; errors name the 1-based data row.

    ``kind`` is ``"pred"`` or ``"gt"``. A ground truth holding a ``type``
    column (labels.csv) keeps its ``micro`` rows. Returns a copy with string
    subject/video/emotion, int64 onset/offset and the original row number in
    ``_row`` (1-based data row).
    """
    if kind not in ("pred", "gt"):
        raise ValueError(f"kind must be 'pred' or 'gt', got {kind!r}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: {kind} intervals lack column(s) {missing}; "
                         f"expected at least {REQUIRED_COLUMNS}")
    out = df.copy()
    first_pass = "_row" not in out.columns   # warnings once, not at every re-validation
    if first_pass:           # keep the numbering of an already validated table
        out["_row"] = np.arange(1, len(out) + 1)
    if kind == "gt" and "type" in out.columns:
        out = out[out["type"].astype(str) == "micro"]
    key_columns = ["subject", "video", "onset", "offset"] + (["emotion"] if kind == "pred" else [])
    for col in key_columns:
        bad = out[out[col].isna()]
        if len(bad):
            raise ValueError(f"{source}: data row {int(bad['_row'].iloc[0])}: {col} is empty "
                             f"or NaN; every {kind} interval needs {key_columns}")
    for col in ("onset", "offset"):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = out[values.isna() | (values != np.floor(values))]
        if len(bad):
            raise ValueError(f"{source}: data row {int(bad['_row'].iloc[0])}: {col} "
                             f"{bad[col].iloc[0]} is not a whole frame number")
        out[col] = values.astype(np.int64)
    bad = out[out["onset"] < 0]
    if len(bad) and kind == "pred":
        if first_pass:
            _warn_negative_onsets(bad, source)
    elif len(bad):
        raise ValueError(f"{source}: data row {int(bad['_row'].iloc[0])}: negative onset "
                         f"{int(bad['onset'].iloc[0])}; frames are 0-based and >= 0")
    bad = out[out["offset"] < out["onset"]]
    if len(bad):
        r = bad.iloc[0]
        raise ValueError(f"{source}: data row {int(r['_row'])}: reversed interval "
                         f"onset {int(r['onset'])} > offset {int(r['offset'])}")
    for col in ("subject", "video"):
        out[col] = out[col].astype(str)
    out["emotion"] = out["emotion"].fillna("").astype(str).str.strip().str.lower()
    return out.reset_index(drop=True)


def _warn_negative_onsets(bad: pd.DataFrame, source: str) -> None:
    """Predictions may start before frame 0: scored as given, as the MEGC evaluator does."""
    log.warning("%s: %d prediction(s) with a negative onset, first: data row %d onset %d; "
                "scored as given (as the MEGC evaluator does)", source, len(bad),
                int(bad["_row"].iloc[0]), int(bad["onset"].iloc[0]))


def read_intervals_csv(path: str | os.PathLike, kind: str) -> pd.DataFrame:
    """Read and validate a predictions or ground-truth CSV (labels.csv accepted)."""
    from mepkg.datasets.common import read_csv_file

    what = "predictions" if kind == "pred" else "ground-truth"
    df = read_csv_file(path, what, dtype={"subject": str, "video": str, "emotion": str})
    return validate_intervals(df, kind, source=str(path))


def check_matchable(pred: pd.DataFrame, gt: pd.DataFrame, emotions: Sequence[str],
                    pred_source: str = "predictions", gt_source: str = "ground truth") -> None:
    """Say, once and by name, what in ``pred`` and ``gt`` can never match.

    Warns about prediction emotions found neither in the ground truth nor in
    the analysed set, analysed emotions found on neither side, and subjects
    that differ only by zero-padding (``1`` vs ``001``). Raises ValueError
    when nothing can match at all: no prediction names a ground-truth video,
    no analysed emotion occurs in the ground truth, or no prediction emotion
    is known to either. Takes validated tables (``validate_intervals``).
    """
    emotions = [str(e).strip().lower() for e in emotions]
    gt_emotions, pred_emotions = set(gt["emotion"]) - {""}, set(pred["emotion"]) - {""}
    hint = (f"the ground truth has {', '.join(sorted(gt_emotions)) or 'none'}; "
            f"choose --emotions among them")
    if gt_emotions and not set(emotions) & gt_emotions:
        raise ValueError(f"{gt_source}: none of the analysed emotions "
                         f"{', '.join(emotions)} occurs in the ground truth: {hint}")
    unused = sorted(set(emotions) - gt_emotions - pred_emotions)
    if unused:
        log.warning("analysed emotion(s) %s occur in neither %s nor %s; %s",
                    ", ".join(unused), pred_source, gt_source, hint)
    foreign = sorted(pred_emotions - gt_emotions - set(emotions))
    if foreign and foreign == sorted(pred_emotions):
        raise ValueError(f"{pred_source}: prediction emotion(s) {', '.join(foreign)} occur "
                         f"neither in the ground truth nor in the analysed set, so no "
                         f"prediction can be recognised; {hint}, and name predictions alike")
    if foreign:
        log.warning("%s: prediction emotion(s) %s occur neither in the ground truth nor in "
                    "the analysed set; they never count as recognised (%s)", pred_source,
                    ", ".join(foreign), hint)
    gt_subjects, pred_subjects = set(gt["subject"]), set(pred["subject"])
    stripped = {s.lstrip("0") or "0": s for s in gt_subjects}
    padded = sorted(f"{s!r} vs {stripped[s.lstrip('0') or '0']!r}"
                    for s in pred_subjects - gt_subjects if (s.lstrip("0") or "0") in stripped)
    padding = (f"subject ids differ only by zero-padding ({', '.join(padded[:5])}); write "
               f"them alike in both files") if padded else ""
    keys = set(zip(gt["subject"], gt["video"]))
    if len(pred) and not any(k in keys for k in zip(pred["subject"], pred["video"])):
        raise ValueError(f"{pred_source}: no prediction names a (subject, video) of "
                         f"{gt_source}; " + (padding or "check the subject and video columns "
                                                        "of both files"))
    if padding:
        log.warning("%s: %s", pred_source, padding)


# ---------------------------------------------------------------- matching
def match_official(iou: np.ndarray, threshold: float = IOU_THRESHOLD) -> list[tuple[int, int]]:
    """Predictions in order; each takes every unmatched GT with IoU >= threshold."""
    taken = np.zeros(iou.shape[1], dtype=bool)
    pairs = []
    for i in range(iou.shape[0]):
        hits = np.flatnonzero((iou[i] >= threshold) & ~taken)
        taken[hits] = True
        pairs.extend((i, int(j)) for j in hits)
    return pairs


def match_strict(iou: np.ndarray, threshold: float = IOU_THRESHOLD) -> list[tuple[int, int]]:
    """One-to-one: greedy over all pairs by IoU descending (stable in row order)."""
    cand = np.argwhere(iou >= threshold)                       # K x 2, row-major order
    order = np.argsort(-iou[cand[:, 0], cand[:, 1]], kind="stable")
    used_p, used_g, pairs = set(), set(), []
    for i, j in cand[order]:
        if i not in used_p and j not in used_g:
            used_p.add(int(i))
            used_g.add(int(j))
            pairs.append((int(i), int(j)))
    return sorted(pairs)


# ---------------------------------------------------------------- scores from counts
def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else 0.0


def _f1(p: float, r: float) -> float:
    return _ratio(2 * p * r, p + r)


def spotting_scores(tp: int, fp: int, fn: int) -> dict:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "precision": precision,
            "recall": recall, "f1": _f1(precision, recall)}


def class_counts(pairs: Sequence[tuple[str, str]], emotions: Sequence[str]) -> np.ndarray:
    """One-vs-rest (TP, FP, FN) per analysed class over (gt, pred) pairs -> (C, 3)."""
    counts = np.zeros((len(emotions), 3), dtype=np.int64)
    for c, emo in enumerate(emotions):
        for g, p in pairs:
            counts[c] += (g == emo and p == emo, g != emo and p == emo, g == emo and p != emo)
    return counts


def recognition_scores(counts: np.ndarray, n_pairs: int, emotions: Sequence[str],
                       quirk: bool) -> dict:
    """P, R, F1 per class and overall from (C, 3) one-vs-rest counts.

    ``quirk`` (official): a class whose vectors hold one value across ground
    truth and prediction (no pair touches it, or every pair is it on both
    sides) scores P = R = 0.
    """
    per_class = {}
    for c, emo in enumerate(emotions):
        tp, fp, fn = (int(x) for x in counts[c])
        single_valued = (tp + fp + fn == 0) or (tp == n_pairs)
        if quirk and single_valued:
            p = r = 0.0
        else:
            p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        per_class[emo] = {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r,
                          "f1": _f1(p, r)}
    if not per_class:
        return {"per_class": {}, "precision": 0.0, "recall": 0.0, "f1": 0.0,
                "uf1": 0.0, "uar": 0.0, "n_pairs": int(n_pairs)}
    precision = float(np.mean([v["precision"] for v in per_class.values()]))
    recall = float(np.mean([v["recall"] for v in per_class.values()]))
    return {"per_class": per_class, "precision": precision, "recall": recall,
            "f1": _f1(precision, recall),
            "uf1": float(np.mean([v["f1"] for v in per_class.values()])),
            "uar": recall, "n_pairs": int(n_pairs)}


# ---------------------------------------------------------------- evaluation
def _prepare(pred: pd.DataFrame, gt: pd.DataFrame, mode: str, veto: bool):
    """Validate, apply the veto, restrict to what the mode scores and match.

    Returns ``(subjects, per_subject)``: the scored subjects and, per subject,
    its (tp, fp, fn) and the (gt emotion, pred emotion) TP pairs.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pred = validate_intervals(pred, "pred")       # idempotent: cheap to repeat
    gt = validate_intervals(gt, "gt")
    if veto:
        pred = pred[~vetoed_mask(pred)]
    gt_videos = set(zip(gt["subject"], gt["video"]))
    outside = np.array([k not in gt_videos for k in zip(pred["subject"], pred["video"])],
                       dtype=bool)
    if mode == "official":
        subjects = sorted(set(pred["subject"]))
        if outside.any():
            first = pred[outside].iloc[0]
            log.warning("%d prediction(s) for videos absent from the ground truth are ignored "
                        "(official mode), first: data row %d, subject %s video %s",
                        int(outside.sum()), int(first["_row"]), first["subject"], first["video"])
        pred = pred[~outside]
        gt = gt[gt["subject"].isin(subjects)]
        matcher = match_official
    else:
        subjects = sorted(set(gt["subject"]) | set(pred["subject"]))
        if outside.any():
            log.info("%d prediction(s) for videos absent from the ground truth count as FP "
                     "(strict mode)", int(outside.sum()))
        matcher = match_strict
    per_subject = {s: {"tp": 0, "fp": 0, "fn": 0, "pairs": []} for s in subjects}
    pred_groups = dict(list(pred.groupby(["subject", "video"], sort=False)))
    gt_groups = dict(list(gt.groupby(["subject", "video"], sort=False)))
    empty = pred.iloc[:0]
    for key in sorted(set(pred_groups) | set(gt_groups)):
        p, g = pred_groups.get(key, empty), gt_groups.get(key, empty)
        iou = iou_matrix(p[["onset", "offset"]].to_numpy(), g[["onset", "offset"]].to_numpy())
        pairs = matcher(iou)
        s = per_subject[key[0]]
        s["tp"] += len(pairs)
        s["fp"] += len(p) - len({i for i, _ in pairs})
        s["fn"] += len(g) - len(pairs)
        s["pairs"].extend((g["emotion"].iloc[j], p["emotion"].iloc[i]) for i, j in pairs)
    return subjects, per_subject


def _summary(counts: dict, emotions, quirk) -> dict:
    analysed = [(g, p) for g, p in counts["pairs"] if g in emotions]
    spot = spotting_scores(counts["tp"], counts["fp"], counts["fn"])
    recog = recognition_scores(class_counts(analysed, emotions), len(analysed), emotions, quirk)
    return {"spotting": spot, "recognition": recog, "strs": spot["f1"] * recog["f1"]}


def evaluate(pred: pd.DataFrame, gt: pd.DataFrame, mode: str = "official",
             emotions: Sequence[str] = DEFAULT_EMOTIONS, veto: bool = True,
             frame_skip: int | None = None) -> dict:
    """Spotting, recognition and STRS of ``pred`` against ``gt`` (docs/method.md §7).

    ``veto``: drop prediction rows whose ``vetoed`` column is True (decode's
    neutral veto); ``veto=False`` scores every row. Returns a dict with
    ``spotting`` {tp, fp, fn, precision, recall, f1}, ``recognition``
    {per_class, precision, recall, f1, uf1, uar, n_pairs}, ``strs``,
    ``pairs`` (every TP's [gt emotion, pred emotion], unfiltered) and
    ``per_subject`` (the same per subject: one LOSO fold each).
    ``frame_skip`` is needed by (and only used by) ``mode="release"``.
    """
    if mode == "release":
        return evaluate_release(pred, gt, frame_skip, emotions=emotions, veto=veto)
    emotions = tuple(str(e).strip().lower() for e in emotions)
    subjects, per_subject = _prepare(pred, gt, mode, veto)
    quirk = mode == "official"
    pooled = {"tp": sum(s["tp"] for s in per_subject.values()),
              "fp": sum(s["fp"] for s in per_subject.values()),
              "fn": sum(s["fn"] for s in per_subject.values()),
              "pairs": [pair for s in per_subject.values() for pair in s["pairs"]]}
    result = {"mode": mode, "emotions": list(emotions), "veto": veto,
              **_summary(pooled, emotions, quirk),
              "pairs": [list(p) for p in pooled["pairs"]], "per_subject": {}}
    for subject in subjects:
        sub = _summary(per_subject[subject], emotions, quirk)
        sub["recognition"] = {k: sub["recognition"][k]
                              for k in ("precision", "recall", "f1", "uf1", "uar", "n_pairs")}
        result["per_subject"][subject] = sub
    return result


def bootstrap_strs(pred: pd.DataFrame, gt: pd.DataFrame, n: int = 1000, seed: int = 0,
                   mode: str = "official", emotions: Sequence[str] = DEFAULT_EMOTIONS,
                   veto: bool = True, level: float = 0.95, frame_skip: int | None = None) -> dict:
    """Subject-level bootstrap interval of the pooled STRS.

    Resamples the scored subjects with replacement ``n`` times; spotting and
    one-vs-rest counts are additive over subjects, so each resample is a
    weighted sum of per-subject counts. Deterministic for a given ``seed``.
    Returns {n, seed, level, low, high}. ``frame_skip``: release mode only.
    """
    emotions = tuple(str(e).strip().lower() for e in emotions)
    if mode == "release":
        subjects, per_subject = _prepare_release(pred, gt, frame_skip, veto)

        def recog_f1(counts, n_pairs):
            return recognition_scores_release(counts, n_pairs, emotions)["f1"]
    else:
        subjects, per_subject = _prepare(pred, gt, mode, veto)

        def recog_f1(counts, n_pairs):
            return recognition_scores(counts, n_pairs, emotions, quirk=mode == "official")["f1"]
    return _bootstrap(subjects, per_subject, emotions, recog_f1, n, seed, level)


def _bootstrap(subjects, per_subject, emotions, recog_f1, n, seed, level) -> dict:
    """The resampling of :func:`bootstrap_strs`; ``recog_f1(counts (C, 3), n_pairs)``."""
    out = {"n": int(n), "seed": int(seed), "level": level, "low": 0.0, "high": 0.0}
    if not subjects or n < 1:
        return out
    # per-subject counts: spot S x 3, one-vs-rest S x C x 3, analysed pairs S
    spot = np.array([[per_subject[s][k] for k in ("tp", "fp", "fn")] for s in subjects],
                    dtype=np.float64)
    analysed = [[(g, p) for g, p in per_subject[s]["pairs"] if g in emotions] for s in subjects]
    cls = np.stack([class_counts(a, emotions) for a in analysed]).astype(np.float64)
    n_pairs = np.array([len(a) for a in analysed], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(subjects), size=(n, len(subjects)))               # n x S
    weights = np.stack([np.bincount(d, minlength=len(subjects)) for d in draws])  # n x S
    spot_b = weights @ spot                                                       # n x 3
    cls_b = np.einsum("bs,sck->bck", weights, cls)                                # n x C x 3
    pairs_b = weights @ n_pairs                                                   # n
    values = np.array([spotting_scores(*spot_b[b])["f1"] * recog_f1(cls_b[b], pairs_b[b])
                       for b in range(n)])
    alpha = (1.0 - level) / 2
    out["low"], out["high"] = (float(x) for x in np.quantile(values, [alpha, 1 - alpha]))
    return out


# ---------------------------------------------------------------- release mode
def match_release(iou: np.ndarray, threshold: float = IOU_THRESHOLD) -> list[tuple[int, int]]:
    """The release's matching: predictions in order, each sees one ground truth only.

    Prediction i looks at its best-IoU ground truth j (ties: the later one,
    the largest j). It is a TP with j when ``iou[i, j] >= threshold`` and j is
    not yet taken; otherwise it is an FP, even when another, free ground
    truth would qualify. A video without ground truth makes every prediction
    an FP. Returns the TP pairs ``(i, j)`` in prediction order.
    """
    taken = np.zeros(iou.shape[1], dtype=bool)
    pairs = []
    if iou.shape[1] == 0:
        return pairs
    last = iou.shape[1] - 1
    for i in range(iou.shape[0]):
        j = last - int(np.argmax(iou[i, ::-1]))       # the last maximum: ties go to the later GT
        if iou[i, j] >= threshold and not taken[j]:
            taken[j] = True
            pairs.append((i, int(j)))
    return pairs


def _prepare_release(pred: pd.DataFrame, gt: pd.DataFrame, frame_skip: int | None, veto: bool):
    """Release-mode counterpart of :func:`_prepare`: ``(subjects, per_subject)``.

    1. onset/offset of both tables -> sampled rate, ``f0 // frame_skip`` (the
       release's ``int((f - 1) / frame_skip)`` on 1-based frames);
    2. scored videos = the ground truth's (videos with >= 1 labelled ME);
       predictions for other videos are ignored; scored subjects = every
       ground-truth subject (one without predictions contributes its FNs);
    3. :func:`match_release` per video on every prediction, vetoed or not;
    4. the veto after matching (``veto=True``): a vetoed TP becomes an FN (its
       ground truth is not offered to another prediction), a vetoed FP is
       dropped.
    """
    if frame_skip is None or isinstance(frame_skip, bool) or int(frame_skip) != frame_skip \
            or frame_skip < 1:
        raise ValueError(f"release mode scores at the sampled rate and needs the dataset's "
                         f"frame_skip (an integer >= 1; SAMM-LV 7, CAS(ME)^3 1), got "
                         f"{frame_skip!r}")
    frame_skip = int(frame_skip)
    pred = validate_intervals(pred, "pred")
    gt = validate_intervals(gt, "gt")
    for table in (pred, gt):
        table["onset"] = table["onset"] // frame_skip
        table["offset"] = table["offset"] // frame_skip
    pred["_vetoed"] = vetoed_mask(pred)
    gt_videos = set(zip(gt["subject"], gt["video"]))
    outside = np.array([k not in gt_videos for k in zip(pred["subject"], pred["video"])],
                       dtype=bool)
    if outside.any():
        log.warning("%d prediction(s) for videos without a labelled ME are ignored "
                    "(release mode)", int(outside.sum()))
    pred = pred[~outside]
    subjects = sorted(set(gt["subject"]))
    per_subject = {s: {"tp": 0, "fp": 0, "fn": 0, "pairs": []} for s in subjects}
    pred_groups = dict(list(pred.groupby(["subject", "video"], sort=False)))
    empty = pred.iloc[:0]
    for key, g in gt.groupby(["subject", "video"], sort=True):
        p = pred_groups.get(key, empty)
        iou = iou_matrix(p[["onset", "offset"]].to_numpy(), g[["onset", "offset"]].to_numpy())
        pairs = match_release(iou)
        vetoed = p["_vetoed"].to_numpy() if veto else np.zeros(len(p), dtype=bool)
        matched = {i for i, _ in pairs}
        kept_pairs = [(i, j) for i, j in pairs if not vetoed[i]]
        s = per_subject[key[0]]
        s["tp"] += len(kept_pairs)
        s["fp"] += sum(1 for i in range(len(p)) if i not in matched and not vetoed[i])
        s["fn"] += len(g) - len(kept_pairs)
        s["pairs"].extend((g["emotion"].iloc[j], p["emotion"].iloc[i]) for i, j in kept_pairs)
    return subjects, per_subject


def recognition_scores_release(counts: np.ndarray, n_pairs: int,
                               emotions: Sequence[str]) -> dict:
    """The release's recognition scores from (C, 3) one-vs-rest counts.

    A class whose one-vs-rest vectors hold a single value across ground truth
    and prediction together (no pair touches it, or every pair is it on both
    sides) has no 2 x 2 confusion matrix in the release and is *skipped*: it
    is left out of every class average (``per_class[c]["skipped"]``). P or R
    with a zero denominator (a class predicted but absent, or present but
    never predicted) is 0 where the release would produce NaN. F1 = 2PR/(P+R)
    of the class-averaged P and R; UF1 = mean per-class F1; UAR = mean
    recall; every average over the scored classes, 0 when none is scored.
    """
    per_class, scored = {}, []
    for c, emo in enumerate(emotions):
        tp, fp, fn = (int(x) for x in counts[c])
        skipped = (tp + fp + fn == 0) or (tp == n_pairs)
        p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        per_class[emo] = {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r,
                          "f1": _f1(p, r), "skipped": bool(skipped)}
        if not skipped:
            scored.append(per_class[emo])
    if not scored:
        return {"per_class": per_class, "precision": 0.0, "recall": 0.0, "f1": 0.0,
                "uf1": 0.0, "uar": 0.0, "n_pairs": int(n_pairs), "n_classes_scored": 0}
    precision = float(np.mean([v["precision"] for v in scored]))
    recall = float(np.mean([v["recall"] for v in scored]))
    return {"per_class": per_class, "precision": precision, "recall": recall,
            "f1": _f1(precision, recall), "uf1": float(np.mean([v["f1"] for v in scored])),
            "uar": recall, "n_pairs": int(n_pairs), "n_classes_scored": len(scored)}


def _summary_release(counts: dict, emotions) -> dict:
    analysed = [(g, p) for g, p in counts["pairs"] if g in emotions]
    spot = spotting_scores(counts["tp"], counts["fp"], counts["fn"])
    recog = recognition_scores_release(class_counts(analysed, emotions), len(analysed), emotions)
    return {"spotting": spot, "recognition": recog, "strs": spot["f1"] * recog["f1"]}


def evaluate_release(pred: pd.DataFrame, gt: pd.DataFrame, frame_skip: int | None,
                     emotions: Sequence[str] = DEFAULT_EMOTIONS, veto: bool = True) -> dict:
    """STRS as the authors' release scores it (docs/method.md §7.3; ``evaluate(mode="release")``).

    Same layout as :func:`evaluate`'s result, plus ``frame_skip``. Pooled
    over every fold; ``per_subject`` scores each LOSO fold alone.
    """
    emotions = tuple(str(e).strip().lower() for e in emotions)
    subjects, per_subject = _prepare_release(pred, gt, frame_skip, veto)
    pooled = {"tp": sum(s["tp"] for s in per_subject.values()),
              "fp": sum(s["fp"] for s in per_subject.values()),
              "fn": sum(s["fn"] for s in per_subject.values()),
              "pairs": [pair for s in per_subject.values() for pair in s["pairs"]]}
    result = {"mode": "release", "emotions": list(emotions), "veto": veto,
              "frame_skip": int(frame_skip), **_summary_release(pooled, emotions),
              "pairs": [list(p) for p in pooled["pairs"]], "per_subject": {}}
    for subject in subjects:
        sub = _summary_release(per_subject[subject], emotions)
        sub["recognition"] = {k: sub["recognition"][k]
                              for k in ("precision", "recall", "f1", "uf1", "uar", "n_pairs")}
        result["per_subject"][subject] = sub
    return result


# ---------------------------------------------------------------- the stage
def metrics_row(result: dict, **keys) -> dict:
    """One flat table row of an ``evaluate`` result (spotting, recognition, STRS)."""
    sp, rc = result["spotting"], result["recognition"]
    return {**keys, "strs": result["strs"], "spot_f1": sp["f1"],
            "spot_precision": sp["precision"], "spot_recall": sp["recall"],
            "tp": sp["tp"], "fp": sp["fp"], "fn": sp["fn"], "recog_f1": rc["f1"],
            "uf1": rc["uf1"], "uar": rc["uar"], "n_pairs": rc["n_pairs"]}


def metrics_table(results: dict[str, dict]) -> pd.DataFrame:
    """``{mode: run_evaluate JSON}`` -> one row per mode x veto x scope.

    scope is ``pooled`` or a LOSO fold's held-out subject (with the veto).
    """
    rows = []
    for mode, m in results.items():
        rows.append(metrics_row(m, mode=mode, veto=True, scope="pooled"))
        rows.append(metrics_row(m["without_veto"], mode=mode, veto=False, scope="pooled"))
        rows += [metrics_row(s, mode=mode, veto=True, scope=subject)
                 for subject, s in m["per_subject"].items()]
    return pd.DataFrame(rows)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def run_evaluate(pred_csv, gt_csv, out_json, mode: str = "official",
                 emotions: Sequence[str] = DEFAULT_EMOTIONS, n_bootstrap: int = 1000,
                 seed: int = 0, frame_skip: int | None = None) -> dict:
    """``mepkg evaluate``: predictions + ground truth (labels.csv) -> metrics.json.

    The headline is with the neutral veto; ``without_veto`` scores every
    decoded interval; ``bootstrap`` is the subject-level STRS interval.
    ``frame_skip``: the dataset's, needed by ``mode="release"`` only.
    """
    from mepkg.atomic import atomic_output

    pred = read_intervals_csv(pred_csv, "pred")
    gt = read_intervals_csv(gt_csv, "gt")
    check_matchable(pred, gt, emotions, str(pred_csv), str(gt_csv))
    result = evaluate(pred, gt, mode=mode, emotions=emotions, veto=True, frame_skip=frame_skip)
    without = evaluate(pred, gt, mode=mode, emotions=emotions, veto=False, frame_skip=frame_skip)
    result["without_veto"] = {k: without[k] for k in ("spotting", "recognition", "strs")}
    result["bootstrap"] = {"strs": result["strs"], **bootstrap_strs(
        pred, gt, n=n_bootstrap, seed=seed, mode=mode, emotions=emotions, veto=True,
        frame_skip=frame_skip)}
    result["inputs"] = {"pred": str(pred_csv), "gt": str(gt_csv)}
    with atomic_output(out_json) as tmp:
        Path(tmp).write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    sp, rc, bs = result["spotting"], result["recognition"], result["bootstrap"]
    log.info("%s (%s): STRS %.4f [%.4f, %.4f] = spot F1 %.4f (TP %d FP %d FN %d) x "
             "recog F1 %.4f; UF1 %.4f UAR %.4f; without veto STRS %.4f",
             out_json, mode, result["strs"], bs["low"], bs["high"], sp["f1"], sp["tp"],
             sp["fp"], sp["fn"], rc["f1"], rc["uf1"], rc["uar"],
             result["without_veto"]["strs"])
    return result


# ---------------------------------------------------------------- the run's tables
@dataclass(frozen=True)
class EvaluateSettings:
    """config.yaml's ``evaluate`` group; the single source of its defaults (docs/method.md §7).

    The schema and config.yaml mirror these (tests/test_workflow_config.py checks).
    """

    mode: str = "official"                  # headline numbers: official (MEGC) | strict
    emotions: tuple[str, ...] = DEFAULT_EMOTIONS   # analysed classes (docs/method.md §7: `others` excluded)
    bootstrap: int = 1000                   # subject-level bootstrap resamples (0: none)
    seed: int = 0                           # bootstrap seed
    sweep_p: tuple[float, ...] = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
                                            # threshold-sweep plot's p values

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"evaluate mode={self.mode!r}: expected one of {MODES}")
        if self.bootstrap < 0 or self.seed < 0:
            raise ValueError(f"evaluate bootstrap={self.bootstrap}, seed={self.seed}: "
                             f"expected non-negative integers")
        if not self.sweep_p or not all(0.0 <= p <= 1.0 for p in self.sweep_p):
            raise ValueError(f"evaluate sweep_p={self.sweep_p}: expected values in [0, 1]")


def tabulate_metrics(mode_files, headline: str, out_json, out_csv) -> dict:
    """Per-mode metrics JSONs -> metrics.json and metrics.csv (rule tabulate_metrics).

    metrics.json: the ``headline`` mode's result at the top level (plus
    ``headline_mode``), every mode under its name. metrics.csv: one row per
    mode x veto x scope (scope = pooled or a LOSO fold's subject).
    """
    from mepkg.atomic import atomic_output, write_csv

    results = {}
    for path in mode_files:
        result = json.loads(Path(path).read_text())
        results[result["mode"]] = result
    if headline not in results:
        raise ValueError(f"headline mode {headline!r}: no metrics among {sorted(results)}")
    combined = {**results[headline], "headline_mode": headline, **results}
    with atomic_output(out_json) as tmp:
        Path(tmp).write_text(json.dumps(combined, indent=2) + "\n")
    write_csv(metrics_table(results), out_csv)
    for mode, m in results.items():
        log.info("%s: STRS %.4f (without veto %.4f)", mode, m["strs"], m["without_veto"]["strs"])
    return combined


def summarise_run(metrics_json, labels_csv, out, *, run: str, folds: Sequence[str],
                  n_videos: int, settings: dict, features: Sequence = (),
                  quality: dict | None = None) -> dict:
    """A one-file record of a run (rule summarise_run): size, headline metrics, settings,
    and each video's share of usable windows (``features`` files, ``quality`` policy;
    a warning for each video below ``quality.warn_below``)."""
    import mepkg
    from mepkg.atomic import atomic_output
    from mepkg.quality import QualityPolicy, analysed_shares

    metrics = json.loads(Path(metrics_json).read_text())
    labels = pd.read_csv(labels_csv, dtype={"subject": str, "video": str})
    summary = {
        "run": run,
        "mepkg_version": mepkg.__version__,
        "folds": len(folds),
        "videos": int(n_videos),
        "micro_events": int((labels["type"] == "micro").sum()),
        "headline_mode": metrics["headline_mode"],
        "strs": metrics["strs"],
        "strs_interval": [metrics["bootstrap"]["low"], metrics["bootstrap"]["high"]],
        "spot_f1": metrics["spotting"]["f1"],
        "recog_f1": metrics["recognition"]["f1"],
        "strs_without_veto": metrics["without_veto"]["strs"],
        "strict_strs": metrics["strict"]["strs"],
        "release_strs": metrics["release"]["strs"],
        "config": settings,
    }
    if features:
        policy = QualityPolicy.from_dict(quality)
        analysed = analysed_shares(features, policy)
        summary["analysed"] = {
            "usable_share": round(float(np.mean([v["usable_share"] for v in analysed.values()])),
                                  4),
            "videos_below_warn": sorted(v for v, a in analysed.items()
                                        if a["usable_share"] < policy.warn_below),
            "videos": analysed}
    with atomic_output(out) as tmp:
        Path(tmp).write_text(json.dumps(_jsonable(summary), indent=2) + "\n")
    log.info("run %s: STRS %.4f over %d folds", run, summary["strs"], summary["folds"])
    return summary
