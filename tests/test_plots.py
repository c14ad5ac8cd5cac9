"""Figures: each writes a readable PNG; the sweep decodes saved curves at each p."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image

from mepkg.decode import DecodePriors, decode_videos, threshold_sweep
from mepkg.h5io import VideoScores
from mepkg.metrics import bootstrap_strs, evaluate
from mepkg.plots import (EMOTION_COLOURS, emotion_colour, plot_confusion, plot_fold_strs,
                         plot_score_curve, plot_threshold_sweep)

SKIP, FPS, K_P = 7, 200.0, 3


def synthetic_videos(n_subjects=3, seed=0):
    """Curves with a bump on each ground-truth ME (sampled rate) and a few false bumps."""
    rng = np.random.default_rng(seed)
    videos, gt = [], []
    emotions = ["negative", "positive", "surprise", "others"]
    for s in range(n_subjects):
        n = 300
        spot = np.abs(rng.normal(0.05, 0.03, n))
        logits = rng.normal(0, 0.5, (n, 5))
        for centre in (40, 120, 200, 260):
            emo = int(rng.integers(4))
            spot[centre - 4:centre + 5] += np.hanning(9) * rng.uniform(0.5, 0.9)
            logits[centre - 4:centre + 5, emo] += 2.0
            gt.append({"subject": f"s{s}", "video": f"s{s}_1", "onset": (centre - 3) * SKIP,
                       "offset": (centre + 3) * SKIP, "emotion": emotions[emo]})
        spot[80:86] += 0.5                                   # a false alarm
        videos.append(VideoScores(video_id=f"s{s}_1", subject=f"s{s}", video=f"s{s}_1",
                                  spot=np.clip(spot, 0, 1).astype(np.float32),
                                  logits=logits.astype(np.float32), frame_skip=SKIP, k=30,
                                  fps=FPS))
    return videos, pd.DataFrame(gt)


def _is_png(path):
    img = image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    return img


def test_emotion_colours_are_fixed():
    assert emotion_colour("Negative") == EMOTION_COLOURS["negative"]
    assert len(set(EMOTION_COLOURS.values())) == 5
    assert emotion_colour("repression") not in EMOTION_COLOURS.values()


def test_plot_score_curve(tmp_path):
    videos, gt = synthetic_videos(1)
    pred = decode_videos(videos, DecodePriors(), K_P)
    v = videos[0]
    path = plot_score_curve(v.spot, gt, pred, SKIP, FPS, tmp_path / "curve.png",
                            title="s0_1", k_p=K_P)
    _is_png(path)
    # no fps: axis in original frames; no intervals at all still plots
    _is_png(plot_score_curve(v.spot, [], None, SKIP, 0, tmp_path / "bare.png"))
    with pytest.raises(ValueError, match="onset, offset, emotion"):
        plot_score_curve(v.spot, [{"start": 1}], [], SKIP, FPS, tmp_path / "bad.png")


def test_plot_score_curve_shades_and_smooths_what_decoding_masks(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from mepkg import plots

    v = synthetic_videos(1)[0][0]
    analysed = np.ones(len(v.spot), bool)
    analysed[100:140] = analysed[250:] = False              # two masked runs
    ax = Figure().add_subplot()
    assert len(plots._shade_not_analysed(ax, analysed, SKIP / FPS)) == 1   # one legend entry
    assert len(ax.patches) == 2
    assert plots._shade_not_analysed(ax, np.ones(5, bool), 1.0) == []
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return detect_peaks(*args, **kwargs)

    detect_peaks = plots.detect_peaks
    monkeypatch.setattr(plots, "detect_peaks", spy)
    _is_png(plot_score_curve(v.spot, [], [], SKIP, FPS, tmp_path / "masked.png", k_p=K_P,
                             analysed=analysed))
    assert seen["mask"] is analysed     # the smoothed curve and threshold decoding uses


def test_plot_confusion_counts_and_extra_labels(tmp_path):
    pairs = [["negative", "negative"], ["negative", "positive"], ["surprise", "neutral"],
             ["positive", "positive"], ["positive", "positive"], ["positive", "negative"]]
    _is_png(plot_confusion(pairs, ["negative", "positive", "surprise"], tmp_path / "cm.png"))


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, kept open for their content."""
    import mepkg.plots as plots

    saved = []

    def keep(fig, path):
        saved.append(fig)
        fig.savefig(path, format="png", dpi=40)
        return Path(path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved   # Figure objects (no pyplot): freed with the list


def test_plot_confusion_cells_are_the_counts(tmp_path, figures):
    pairs = [["negative", "negative"], ["negative", "positive"], ["surprise", "neutral"],
             ["positive", "positive"], ["positive", "positive"], ["positive", "negative"]]
    plot_confusion(pairs, ["negative", "positive", "surprise"], tmp_path / "cm.png")
    ax = figures[0].axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    cols = [t.get_text() for t in ax.get_xticklabels()]
    assert rows == ["negative", "positive", "surprise"]                  # gt: no extra label
    assert cols == ["negative", "positive", "surprise", "neutral"]       # pred: neutral added
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text())
             for t in ax.texts}
    grid = [[cells[(i, j)] for j in range(4)] for i in range(3)]
    # rows gt (neg, pos, sur) x columns pred (neg, pos, sur, neutral), counted by hand
    assert grid == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 0, 1]]
    assert "n = 6" in ax.get_title()


def test_plot_fold_strs_bars_line_and_band(tmp_path, figures):
    plot_fold_strs({"b": {"strs": 0.3}, "a": {"strs": 0.1}}, 0.2, (0.05, 0.35),
                   tmp_path / "f.png")
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert [round(p.get_height(), 6) for p in ax.patches if p.get_width() < 1] == [0.1, 0.3]
    lines = [l for l in ax.lines if l.get_ydata()[0] == l.get_ydata()[-1]]
    assert any(l.get_ydata()[0] == 0.2 for l in lines)                   # the pooled STRS
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "pooled STRS 0.200" in labels and "95% bootstrap [0.050, 0.350]" in labels


def test_plot_fold_strs_from_evaluate(tmp_path):
    videos, gt = synthetic_videos(3)
    pred = decode_videos(videos, DecodePriors(), K_P)
    r = evaluate(pred, gt)
    boot = bootstrap_strs(pred, gt, n=200)
    _is_png(plot_fold_strs(r["per_subject"], r["strs"], (boot["low"], boot["high"]),
                           tmp_path / "folds.png"))
    _is_png(plot_fold_strs({"a": 0.0, "b": 0.0}, 0.0, None, tmp_path / "zero.png"))


def test_threshold_sweep_rescoring_saved_curves(tmp_path):
    videos, gt = synthetic_videos(3)
    sweep = threshold_sweep(videos, K_P, gt, [0.3, 0.55, 0.9])
    assert sweep.p.tolist() == [0.3, 0.55, 0.9]
    # a higher threshold keeps fewer peaks: here strictly, so a sweep ignoring p fails
    assert sweep.n_intervals.is_monotonic_decreasing and sweep.n_intervals.is_unique
    # every row is the decode + evaluate at that p (the other priors at their defaults)
    for row in sweep.itertuples():
        decoded = decode_videos(videos, DecodePriors(p=row.p), K_P)
        assert row.n_intervals == int((~decoded.vetoed).sum())
        assert row.strs == pytest.approx(evaluate(decoded, gt)["strs"])
    _is_png(plot_threshold_sweep(sweep, tmp_path / "sweep.png"))
    # a k' per subject (each fold's own) gives the same when they are all equal
    per_fold = threshold_sweep(videos, {"s0": K_P, "s1": K_P, "s2": K_P}, gt, [0.3, 0.55, 0.9])
    pd.testing.assert_frame_equal(per_fold, sweep)
    with pytest.raises(ValueError, match=r"no k' for subject\(s\) \['s2'\]"):
        threshold_sweep(videos, {"s0": K_P, "s1": K_P}, gt, [0.5])


def test_only_plots_uses_matplotlib_and_nothing_switches_the_backend():
    # every figure lives in mepkg/plots.py, on matplotlib's object API.
    import re
    from pathlib import Path

    import mepkg

    root = Path(mepkg.__file__).parent
    for path in sorted(root.rglob("*.py")):
        code = path.read_text()
        where = path.relative_to(root)
        assert "matplotlib.use(" not in code, f"{where} switches matplotlib's backend"
        assert "pyplot" not in code, f"{where} uses matplotlib.pyplot"
        if path.name != "plots.py":
            assert not re.search(r"^\s*(import|from)\s+matplotlib", code, re.M), \
                f"{where} imports matplotlib: figures belong in mepkg/plots.py"


def test_figures_leave_pyplot_unimported(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from mepkg.plots import plot_confusion; "
            f"plot_confusion([('negative', 'negative')], ['negative'], r'{tmp_path / 'c.png'}'); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert image.imread(tmp_path / "c.png").ndim == 3


def test_a_figure_is_written_in_every_format_asked_with_the_mepkg_version(tmp_path):
    """plots.formats: one file per format, each what its name says, creator mepkg <version>."""
    from mepkg import __version__

    pairs = [["negative", "negative"], ["positive", "surprise"]]
    paths = [tmp_path / "confusion.png", tmp_path / "confusion.pdf", tmp_path / "confusion.svg"]
    assert plot_confusion(pairs, ["negative", "positive", "surprise"], paths) == paths[0]
    magic = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(magic[path.suffix]), path.name
        assert f"mepkg {__version__}".encode() in data, path.name
    assert image.imread(paths[0]).shape[2] in (3, 4)            # a readable PNG


def test_figure_formats_setting_is_checked():
    from mepkg.plots import PlotSettings

    assert PlotSettings().formats == ("png",)
    assert PlotSettings(formats=["pdf", "svg"]).formats == ("pdf", "svg")
    for bad in ([], ["jpg"], ["png", "png"]):
        with pytest.raises(ValueError, match="plots.formats"):
            PlotSettings(formats=bad)


def test_the_workflow_plans_every_figure_in_every_format(tmp_path):
    from conftest import TINY_WORKFLOW, copy_workflow, snakemake

    proc = snakemake(copy_workflow(tmp_path), "-n", *TINY_WORKFLOW, "--config",
                     "plots={formats: [png, pdf, svg]}")
    planned = set(re.findall(r"(\S+/plots/\S+\.(?:png|pdf|svg))", proc.stdout))
    stems = {Path(p).with_suffix("").as_posix() for p in planned}
    assert {Path(s).name for s in stems} >= {"confusion", "fold_strs", "threshold_sweep"}
    assert any("/plots/curves/" in s for s in stems)
    assert planned == {f"{s}.{fmt}" for s in stems for fmt in ("png", "pdf", "svg")}
