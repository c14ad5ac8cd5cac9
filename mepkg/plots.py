"""Figures of the decoding and evaluation stages (matplotlib, Agg backend, PNG).

- ``plot_score_curve``: one video's spot score over time with the smoothed
  curve, the decoding threshold, ground truth shaded by emotion and the
  decoded intervals as bars with apex marks.
- ``plot_confusion``: recognition confusion on the spotting TPs.
- ``plot_fold_strs``: STRS per LOSO fold with the pooled value and its
  bootstrap interval.
- ``threshold_sweep`` / ``plot_threshold_sweep``: spotting F1, recognition F1
  and STRS against the threshold prior p, from saved curves (no model).

Each emotion has one colour in every figure (``EMOTION_COLOURS``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from mepkg.atomic import atomic_output  # noqa: E402
from mepkg.decode import DecodePriors, decode_videos, detect_peaks  # noqa: E402
from mepkg.metrics import DEFAULT_EMOTIONS, evaluate  # noqa: E402

EMOTION_COLOURS: dict[str, str] = {
    "negative": "#d62728",   # red
    "positive": "#2ca02c",   # green
    "surprise": "#ff7f0e",   # orange
    "others": "#9467bd",     # purple
    "neutral": "#7f7f7f",    # grey
}
OTHER_COLOUR = "#17becf"     # any label outside the five classes (raw emotions)


def emotion_colour(name: str) -> str:
    return EMOTION_COLOURS.get(str(name).lower(), OTHER_COLOUR)


def _save(fig, path) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _intervals(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows if rows is not None else [])
    for col in ("onset", "offset", "emotion"):
        if len(df) and col not in df.columns:
            raise ValueError(f"intervals need columns onset, offset, emotion; got {list(df.columns)}")
    return df


# ---------------------------------------------------------------- one video
def plot_score_curve(curve, gt_intervals, pred_intervals, frame_skip: int, fps: float,
                     path: str | os.PathLike, title: str = "", k_p: int | None = None,
                     priors: DecodePriors | None = None) -> Path:
    """Spot score vs time for one video.

    ``curve`` is at the sampled rate; ``gt_intervals`` / ``pred_intervals``
    are tables (or lists of dicts) with onset, offset, emotion (+ apex for
    predictions) in original 0-based frames. Time is in seconds when ``fps``
    is known, else in original frames. With ``k_p`` the smoothed curve and
    the step-2 threshold are drawn too.
    """
    s = np.asarray(curve, dtype=np.float64)
    scale = 1.0 / fps if fps and fps > 0 else 1.0               # original frame -> axis unit
    unit = "time (s)" if fps and fps > 0 else "original frame"
    t = np.arange(len(s)) * frame_skip * scale
    gt, pred = _intervals(gt_intervals), _intervals(pred_intervals)

    fig, ax = plt.subplots(figsize=(12, 4.2))
    handles = []
    for row in gt.itertuples():
        ax.axvspan(row.onset * scale, row.offset * scale, color=emotion_colour(row.emotion),
                   alpha=0.22, lw=0)
        ax.text((row.onset + row.offset) / 2 * scale, 1.03, str(row.emotion), ha="center",
                va="bottom", fontsize=8, color=emotion_colour(row.emotion),
                transform=ax.get_xaxis_transform())
    (line,) = ax.plot(t, s, color="black", lw=0.8, label="spot score")
    handles.append(line)
    if k_p is not None and len(s) > 0:
        priors = priors or DecodePriors()
        _, smoothed, thr = detect_peaks(s, k_p, p=priors.p, smooth_factor=priors.smooth_factor)
        (sm_line,) = ax.plot(t, smoothed, color="#1f77b4", lw=1.2, alpha=0.9,
                             label=f"smoothed (width {priors.smooth_factor * k_p})")
        thr_line = ax.axhline(thr, color="#1f77b4", ls="--", lw=1,
                              label=f"threshold (p={priors.p:g})")
        handles += [sm_line, thr_line]
    top = max(1.0, float(s.max()) if len(s) else 1.0)
    bar_y, bar_h = -0.13 * top, 0.07 * top
    for row in pred.itertuples():
        colour = emotion_colour(row.emotion)
        hatch = "//" if bool(getattr(row, "vetoed", False)) else None
        ax.broken_barh([(row.onset * scale, max(row.offset - row.onset, 1) * scale)],
                       (bar_y, bar_h), facecolors=colour, edgecolor="black", lw=0.5,
                       hatch=hatch)
        if hasattr(row, "apex") and pd.notna(row.apex):
            ax.plot(row.apex * scale, bar_y + bar_h, marker="v", color="black", ms=5)
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_ylim(bar_y - 0.03 * top, top * 1.05)
    ax.set_xlim(0, t[-1] if len(t) else 1)
    ax.set_xlabel(unit)
    ax.set_ylabel("spot score")
    ax.set_title(title or "spot score, ground truth (shaded) and decoded intervals (bars)",
                 pad=16)
    shown = sorted(set(gt["emotion"]) | set(pred["emotion"])) if len(gt) + len(pred) else []
    handles += [Patch(facecolor=emotion_colour(e), alpha=0.6, label=e) for e in shown]
    if len(pred):
        handles.append(Patch(facecolor="white", edgecolor="black", lw=0.5,
                             label="decoded (bar)"))
        if "vetoed" in pred.columns and pred["vetoed"].astype(bool).any():
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", lw=0.5,
                                 label="vetoed (neutral)"))
        handles.append(plt.Line2D([], [], marker="v", color="black", ls="", label="apex"))
    ax.legend(handles=handles, loc="upper right", fontsize=8, ncol=2, framealpha=0.9)
    return _save(fig, path)


# ---------------------------------------------------------------- recognition
def plot_confusion(pairs: Sequence[Sequence[str]], classes: Sequence[str],
                   path: str | os.PathLike, title: str = "") -> Path:
    """Confusion matrix of (ground truth, prediction) emotion pairs of the spotting TPs.

    Rows: ground truth; columns: prediction. Labels outside ``classes``
    (e.g. ``neutral`` without the veto) get their own row/column after them.
    Cells hold counts, shaded by the row share.
    """
    classes = list(classes)
    rows = classes + sorted({str(g) for g, _ in pairs} - set(classes))     # ground truth
    cols = classes + sorted({str(p) for _, p in pairs} - set(classes))     # prediction
    counts = np.zeros((len(rows), len(cols)), dtype=int)                   # gt x pred
    for g, p in pairs:
        counts[rows.index(str(g)), cols.index(str(p))] += 1
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(2.4 + 0.9 * len(cols), 1.2 + 0.9 * len(rows)))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=10)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for tick in list(ax.get_xticklabels()) + list(ax.get_yticklabels()):
        tick.set_color(emotion_colour(tick.get_text()))
    ax.set_xlabel("predicted emotion")
    ax.set_ylabel("ground-truth emotion")
    ax.set_title(title or f"recognition on spotted TPs (n = {len(pairs)})")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
    return _save(fig, path)


# ---------------------------------------------------------------- folds
def plot_fold_strs(per_fold: Mapping, pooled: float, interval: Sequence[float] | None,
                   path: str | os.PathLike, title: str = "") -> Path:
    """STRS per fold (bars), the pooled STRS (line) and its bootstrap interval (band).

    ``per_fold`` maps fold -> STRS, or is ``evaluate(...)["per_subject"]``.
    """
    names = sorted(per_fold, key=str)
    values = [float(v["strs"] if isinstance(v, Mapping) else v) for v in
              (per_fold[n] for n in names)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(names) + 2), 4))
    x = np.arange(len(names))
    ax.bar(x, values, color="#1f77b4", label="fold STRS", zorder=2)
    if len(names) <= 30:
        for xi, v in zip(x, values):
            ax.text(xi, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7, zorder=4)
    if interval is not None:
        ax.axhspan(interval[0], interval[1], color="#ff7f0e", alpha=0.15, zorder=0,
                   label=f"95% bootstrap [{interval[0]:.3f}, {interval[1]:.3f}]")
    ax.axhline(pooled, color="#ff7f0e", lw=2, zorder=3, label=f"pooled STRS {pooled:.3f}")
    ax.set_xticks(x, [str(n) for n in names], rotation=60 if len(names) > 8 else 0,
                  ha="right" if len(names) > 8 else "center", fontsize=8)
    ax.set_xlabel("held-out subject (LOSO fold)")
    ax.set_ylabel("STRS")
    ax.set_ylim(0, max(1e-3, max(values + [pooled] + list(interval or [0]))) * 1.35)
    ax.set_title(title or "STRS per fold")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


# ---------------------------------------------------------------- threshold sweep
def threshold_sweep(videos, k_p: int | Mapping[str, int], gt: pd.DataFrame,
                    p_values: Sequence[float], priors: DecodePriors | None = None,
                    mode: str = "official", emotions: Sequence[str] = DEFAULT_EMOTIONS,
                    ) -> pd.DataFrame:
    """Decode saved curves at each threshold prior p and score them (no model).

    ``k_p``: one k' for every video, or a mapping subject -> k' (each fold's
    own, as decode_fold uses). Returns one row per p: p, n_intervals, spot
    precision/recall/F1, recognition F1 and STRS (with the neutral veto of
    ``priors``).
    """
    priors = priors or DecodePriors()
    if isinstance(k_p, Mapping):
        missing = sorted({str(v.subject) for v in videos} - set(map(str, k_p)))
        if missing:
            raise ValueError(f"threshold_sweep: no k' for subject(s) {missing}")
    rows = []
    for p in p_values:
        at_p = dataclasses.replace(priors, p=float(p))
        if isinstance(k_p, Mapping):
            pred = pd.concat([decode_videos([v], at_p, int(k_p[str(v.subject)]))
                              for v in videos] or [decode_videos([], at_p, 1)],
                             ignore_index=True)
        else:
            pred = decode_videos(videos, at_p, k_p)
        r = evaluate(pred, gt, mode=mode, emotions=emotions, veto=True,
                     frame_skip=int(videos[0].frame_skip) if videos else 1)
        rows.append({"p": float(p), "n_intervals": int((~pred["vetoed"]).sum()),
                     "spot_precision": r["spotting"]["precision"],
                     "spot_recall": r["spotting"]["recall"], "spot_f1": r["spotting"]["f1"],
                     "recog_f1": r["recognition"]["f1"], "strs": r["strs"]})
    return pd.DataFrame(rows)


def plot_threshold_sweep(sweep: pd.DataFrame, path: str | os.PathLike,
                         chosen: float | None = 0.55, title: str = "") -> Path:
    """Spotting F1, recognition F1 and STRS against p (from ``threshold_sweep``)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    # STRS underneath: it equals spotting F1 whenever recognition is perfect
    ax.plot(sweep["p"], sweep["strs"], marker="D", ms=8, color="#d62728", lw=3, alpha=0.8,
            label="STRS", zorder=2)
    ax.plot(sweep["p"], sweep["spot_f1"], marker="o", color="#1f77b4", ls="--",
            label="spotting F1", zorder=3)
    ax.plot(sweep["p"], sweep["recog_f1"], marker="s", color="#2ca02c", ls=":",
            label="recognition F1", zorder=3)
    if chosen is not None:
        ax.axvline(chosen, color="0.4", ls="--", lw=1, label=f"prior p = {chosen:g}")
    if len(sweep):
        best = sweep.loc[sweep["strs"].idxmax()]
        ax.annotate(f"best STRS {best['strs']:.3f} at p={best['p']:g}",
                    (best["p"], best["strs"]), textcoords="offset points", xytext=(8, 10),
                    fontsize=8, arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.set_xlabel("threshold prior p (threshold = mean + p (max - mean))")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.08)
    ax.set_title(title or "decoding threshold sweep on saved score curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", framealpha=0.9)
    return _save(fig, path)
