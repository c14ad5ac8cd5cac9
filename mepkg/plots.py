"""Every figure of the package (matplotlib's object API, written atomically).

- ``plot_score_curve``: one video's spot score over time with the smoothed
  curve, the decoding threshold, ground truth shaded by emotion and the
  decoded intervals as bars with apex marks.
- ``plot_confusion``: recognition confusion on the spotting TPs.
- ``plot_fold_strs``: STRS per LOSO fold with the pooled value and its
  bootstrap interval.
- ``plot_threshold_sweep`` / ``run_threshold_sweep``: spotting F1, recognition
  F1 and STRS against the threshold prior p (``mepkg.decode.threshold_sweep``
  of saved curves, no model).
- ``plot_feature_debug``: ``mepkg features --debug-figure``, the reference
  frame with its crop box and landmarks, and the crop with its ROIs.
- ``plot_spot_timeline``: ``mepkg spot``'s timeline.png, the score curve with
  the spotted intervals and a face thumbnail at each apex.

Figures are ``matplotlib.figure.Figure`` objects saved with ``fig.savefig``, in
the format the file name says (png, pdf, svg; ``path`` may list several, the
workflow's ``plots.formats``):
no global figure state and no backend switch (``matplotlib.use``), so the
package never changes the backend of a program that imports it. Each emotion
has one colour in every figure (``EMOTION_COLOURS``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from mepkg.atomic import atomic_output
from mepkg.decode import DecodePriors, detect_peaks, threshold_sweep
from mepkg.intervals import to_original, to_sampled, vetoed_mask
from mepkg.metrics import DEFAULT_EMOTIONS, EvaluateSettings

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


FIGURE_FORMATS = ("png", "pdf", "svg")


@dataclasses.dataclass(frozen=True)
class PlotSettings:
    """Config group ``plots``: how the workflow's figures are written."""

    # one file per format for every figure, e.g. (png, pdf) for a manuscript;
    # the first is the one `snakemake --report` shows
    formats: tuple[str, ...] = ("png",)

    def __post_init__(self):
        object.__setattr__(self, "formats", tuple(self.formats))
        bad = [f for f in self.formats if f not in FIGURE_FORMATS]
        if bad or not self.formats or len(set(self.formats)) != len(self.formats):
            raise ValueError(f"plots.formats {list(self.formats)}: give one or more of "
                             f"{', '.join(FIGURE_FORMATS)}, each once")


def _save(fig: Figure, path, **savefig) -> Path:
    """Write ``fig`` atomically to ``path``, or to each of several paths, in the format
    each file name ends with (png, pdf, svg; default 120 dpi, tight bounding box),
    with the mepkg version as the file's creator. Returns the first path."""
    from mepkg import __version__

    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    for target in paths:
        kind = target.suffix.lower().lstrip(".")
        if kind not in fig.canvas.get_supported_filetypes():
            raise ValueError(f"{target}: a figure file name ends with one of .png, .pdf, .svg")
        with atomic_output(target) as tmp:
            fig.savefig(tmp, format=kind, metadata={"Creator": f"mepkg {__version__}"},
                        **({"dpi": 120, "bbox_inches": "tight"} | savefig))
    return paths[0]


def _figure_axes(figsize, nrows: int = 1, ncols: int = 1):
    """A figure of its own (no global state) and its axes (``Figure.subplots``)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def _intervals(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows if rows is not None else [])
    for col in ("onset", "offset", "emotion"):
        if len(df) and col not in df.columns:
            raise ValueError(f"intervals need columns onset, offset, emotion; got {list(df.columns)}")
    return df


# ---------------------------------------------------------------- one video
def plot_score_curve(curve, gt_intervals, pred_intervals, frame_skip: int, fps: float,
                     path: str | os.PathLike, title: str = "", k_p: int | None = None,
                     priors: DecodePriors | None = None,
                     analysed: np.ndarray | None = None) -> Path:
    """Spot score vs time for one video.

    ``curve`` is at the sampled rate; ``gt_intervals`` / ``pred_intervals``
    are tables (or lists of dicts) with onset, offset, emotion (+ apex for
    predictions) in original 0-based frames. Time is in seconds when ``fps``
    is known, else in original frames. With ``k_p`` the smoothed curve and
    the step-2 threshold are drawn too, as decoding computes them.
    ``analysed``: bool per sampled frame (:func:`mepkg.quality.frame_mask`);
    the frames decoding masks are shaded grey and kept out of the smoothing.
    """
    s = np.asarray(curve, dtype=np.float64)
    scale = 1.0 / fps if fps and fps > 0 else 1.0               # original frame -> axis unit
    unit = "time (s)" if fps and fps > 0 else "original frame"
    t = to_original(np.arange(len(s)), frame_skip) * scale
    gt, pred = _intervals(gt_intervals), _intervals(pred_intervals)

    fig, ax = _figure_axes((12, 4.2))
    handles = []
    for row in gt.itertuples():
        ax.axvspan(row.onset * scale, row.offset * scale, color=emotion_colour(row.emotion),
                   alpha=0.22, lw=0)
        ax.text((row.onset + row.offset) / 2 * scale, 1.03, str(row.emotion), ha="center",
                va="bottom", fontsize=8, color=emotion_colour(row.emotion),
                transform=ax.get_xaxis_transform())
    (line,) = ax.plot(t, s, color="black", lw=0.8, label="spot score")
    handles.append(line)
    handles += _shade_not_analysed(ax, analysed, frame_skip * scale)
    if k_p is not None and len(s) > 0:
        priors = priors or DecodePriors()
        _, smoothed, thr = detect_peaks(s, k_p, p=priors.p, smooth_factor=priors.smooth_factor,
                                        mask=analysed)
        (sm_line,) = ax.plot(t, smoothed, color="#1f77b4", lw=1.2, alpha=0.9,
                             label=f"smoothed (width {priors.smooth_factor * k_p})")
        thr_line = ax.axhline(thr, color="#1f77b4", ls="--", lw=1,
                              label=f"threshold (p={priors.p:g})")
        handles += [sm_line, thr_line]
    top = max(1.0, float(s.max()) if len(s) else 1.0)
    bar_y, bar_h = -0.13 * top, 0.07 * top
    for row, vetoed in zip(pred.itertuples(), vetoed_mask(pred)):
        colour = emotion_colour(row.emotion)
        hatch = "//" if vetoed else None
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
        if vetoed_mask(pred).any():
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", lw=0.5,
                                 label="vetoed (neutral)"))
        handles.append(Line2D([], [], marker="v", color="black", ls="", label="apex"))
    ax.legend(handles=handles, loc="upper right", fontsize=8, ncol=2, framealpha=0.9)
    return _save(fig, path)


def _shade_not_analysed(ax, analysed: np.ndarray | None, step: float) -> list:
    """Shade the runs of sampled frames that are not ``analysed`` (``step``: axis units
    per sampled frame); the legend handle, if any were shaded."""
    if analysed is None or np.all(analysed):
        return []
    edges = np.flatnonzero(np.diff(np.r_[0, (~np.asarray(analysed, bool)).astype(int), 0]))
    for a, b in zip(edges[::2], edges[1::2]):                   # masked runs [a, b)
        ax.axvspan(a * step, b * step, color="0.6", alpha=0.35, lw=0)
    return [Patch(facecolor="0.6", alpha=0.35, label="not analysed (no usable face)")]


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
    fig, ax = _figure_axes((2.4 + 0.9 * len(cols), 1.2 + 0.9 * len(rows)))
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
    fig, ax = _figure_axes((max(6.0, 0.35 * len(names) + 2), 4))
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
def plot_threshold_sweep(sweep: pd.DataFrame, path: str | os.PathLike,
                         chosen: float | None = None, title: str = "") -> Path:
    """Spotting F1, recognition F1 and STRS against p (from ``threshold_sweep``)."""
    fig, ax = _figure_axes((7, 4))
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


# ---------------------------------------------------------------- features
ROI_COLOURS = {"R1": "red", "R3": "orange", "R4": "magenta", "R5": "lime", "R6": "deepskyblue",
               "R7": "blue", "R2": "yellow"}


def plot_feature_debug(frame: np.ndarray, crop_box, landmarks: np.ndarray, rois,
                       path: str | os.PathLike, crop_size: int) -> Path:
    """PNG: the frame with the crop box and landmarks (left), the crop with ROIs (right).

    ``landmarks`` and ``rois`` are in crop coordinates, ``crop_box`` in frame
    pixels (top, bottom, left, right); ``crop_size`` is the feature crop's side
    (``FeatureConfig.crop_size``).
    """
    from mepkg.roi import crop_gray, to_frame_coords

    size = crop_size
    top, bottom, left, right = (int(v) for v in crop_box)
    rgb = frame[..., ::-1] if frame.ndim == 3 else frame
    crop = crop_gray(frame, (top, bottom, left, right), size)
    fig, (a0, a1) = _figure_axes((10, 5), 1, 2)
    a0.imshow(rgb, cmap="gray")
    a0.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, ec="yellow"))
    pts = to_frame_coords(landmarks, (top, bottom, left, right), size)
    a0.plot(pts[:, 0], pts[:, 1], ".", ms=3, color="cyan")
    a0.set_title("reference frame: crop box, landmarks")
    a1.imshow(crop, cmap="gray", vmin=0, vmax=255)
    a1.plot(landmarks[:, 0], landmarks[:, 1], ".", ms=3, color="cyan")
    for roi in rois:
        t, b, l, r = roi.box
        col = ROI_COLOURS.get(roi.name, "white")
        a1.add_patch(Rectangle((l - .5, t - .5), r - l, b - t, fill=False, ec=col, lw=1.5))
        a1.text(l, t - 2, roi.name, color=col, fontsize=8)
        for p in roi.patches:
            if "/" in p.name:
                a1.add_patch(Rectangle((l + p.cols.start - .5, t + p.rows.start - .5),
                                       p.cols.stop - p.cols.start, p.rows.stop - p.rows.start,
                                       fill=False, ec=col, lw=0.7, ls="--"))
    a1.set_title(f"{size}x{size} crop: ROIs (dashed: sub-patches)")
    for a in (a0, a1):
        a.axis("off")
    fig.tight_layout()
    return _save(fig, path, dpi=100, bbox_inches=None)


# ---------------------------------------------------------------- spot
def plot_spot_timeline(video: str | os.PathLike, scores, intervals: pd.DataFrame,
                       crop_boxes: np.ndarray, k_p: int, priors: DecodePriors,
                       path: str | os.PathLike, analysed: np.ndarray | None = None) -> Path:
    """``mepkg spot``: score curve with the spotted intervals and a face thumbnail at each apex.

    ``scores``: the video's ``VideoScores``; ``intervals``: spot's table
    (onset_s, apex_s, offset_s in seconds, apex in original frames);
    ``crop_boxes``: the feature crop box of each window; ``analysed``: bool
    per sampled frame (mepkg.quality.frame_mask), the rest shaded grey.
    """
    from mepkg.datasets.frames import read_frame

    video = Path(video)
    fps, skip, half = scores.fps, scores.frame_skip, scores.k // 2
    thumbs = intervals.head(8)   # at most 8 thumbnails keep the figure readable
    n_thumbs = len(thumbs)
    fig = Figure(figsize=(12, 4.2 if n_thumbs else 3.2))
    grid = fig.add_gridspec(2 if n_thumbs else 1, max(n_thumbs, 1),
                            height_ratios=[2.2, 1] if n_thumbs else [1])
    ax = fig.add_subplot(grid[0, :])
    t = to_original(np.arange(len(scores.spot)), skip) / fps
    ax.plot(t, scores.spot, color="0.25", lw=1, label="spot score")
    shaded = _shade_not_analysed(ax, analysed, skip / fps)
    if shaded:
        ax.legend(handles=shaded, loc="upper right", fontsize=8)
    for row in intervals.itertuples():
        colour = emotion_colour(row.emotion)
        ax.axvspan(row.onset_s, row.offset_s, color=colour, alpha=0.3)
        ax.axvline(row.apex_s, color=colour, lw=1.2)
        ax.text(row.apex_s, 0.98, row.emotion, color=colour, ha="center", va="top",
                fontsize=8, transform=ax.get_xaxis_transform())
    ax.set(xlabel="time (s)", ylabel="spot score", xlim=(0, max(t[-1], 1e-3) if len(t) else 1),
           title=f"{video.name}: {len(intervals)} micro-expressions "
                 f"(k'={k_p}, p={priors.p:.2f})"
                 + ("" if analysed is None or np.all(analysed)
                    else f", {np.mean(analysed):.0%} of the frames analysed"))
    ax.set_ylim(-0.05, 1.2)   # room for the emotion labels above the scores
    for j, row in enumerate(thumbs.itertuples()):
        window = min(to_sampled(int(row.apex), skip) // half, len(crop_boxes) - 1)
        top, bottom, left, right = (int(v) for v in crop_boxes[max(window, 0)])
        frame = read_frame(video, int(row.apex))
        face = frame[top:bottom, left:right]
        tax = fig.add_subplot(grid[1, j])
        tax.imshow(face[..., ::-1] if face.ndim == 3 else face, cmap="gray")
        tax.set_title(f"{row.apex_s:.2f} s {row.emotion}", fontsize=8,
                      color=emotion_colour(row.emotion))
        tax.axis("off")
    fig.tight_layout()
    return _save(fig, path, dpi=110, bbox_inches=None)


# ---------------------------------------------------------------- the workflow's plots
def _read_table(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"subject": str, "video": str})


def plot_video_curve(scores_file, intervals_csv, labels_csv, video_id: str,
                     path: str | os.PathLike, quality: dict | None = None) -> Path:
    """Score curve of held-out video ``video_id`` from its fold's files (rule plot_curves);
    the frames that config's ``quality`` policy masks in decoding shaded."""
    import logging

    from mepkg.h5io import read_scores
    from mepkg.quality import QualityPolicy, analysed_frames

    video = next((v for v in read_scores(scores_file) if v.video_id == video_id), None)
    if video is None:
        raise ValueError(f"{scores_file}: no score curve for video {video_id}; re-run its fold")
    labels, pred = _read_table(labels_csv), _read_table(intervals_csv)
    same = lambda t: (t.subject == video.subject) & (t.video == video.video)  # noqa: E731
    gt = labels[same(labels) & (labels.type == "micro")]
    pred = pred[same(pred)]
    logging.getLogger(__name__).info("%s: %d labelled MEs, %d decoded intervals", video_id,
                                     len(gt), len(pred))
    return plot_score_curve(video.spot, gt, pred, frame_skip=video.frame_skip, fps=video.fps,
                            path=path, title=f"{video_id} (held out in fold {video.subject})",
                            analysed=analysed_frames(video, QualityPolicy.from_dict(quality)))


def run_threshold_sweep(scores_files, labels_csv, priors: DecodePriors | dict,
                        p_values: Sequence[float], table_out, figure_out,
                        mode: str = EvaluateSettings.mode,
                        emotions: Sequence[str] = DEFAULT_EMOTIONS,
                        quality: dict | None = None) -> pd.DataFrame:
    """Sweep p over every fold's saved curves, each with its fold's own k' and the
    ``quality`` policy as decode_fold uses; write the table (one row per p) and the figure."""
    from mepkg.quality import QualityPolicy

    from mepkg.atomic import write_csv
    from mepkg.decode import fold_k_primes
    from mepkg.h5io import read_scores

    priors = DecodePriors.of(priors)
    videos = [v for path in scores_files for v in read_scores(path)]
    labels = _read_table(labels_csv)
    k_p = fold_k_primes(labels, videos[0].frame_skip, sorted({v.subject for v in videos}),
                        priors)
    sweep = threshold_sweep(videos, k_p, labels, p_values, priors=priors, mode=mode,
                            emotions=emotions, quality=QualityPolicy.from_dict(quality))
    write_csv(sweep, table_out)
    plot_threshold_sweep(sweep, figure_out, chosen=priors.p,
                         title=f"threshold sweep ({mode}, k' per fold: "
                               f"{min(k_p.values())}-{max(k_p.values())})")
    return sweep
