"""The mepkg functions the workflow scripts call (logic moved out of the scripts).

Small hand-made inputs: label tables, one synthetic score curve, metrics JSONs.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from mepkg.decode import DecodePriors, decode_fold, pool_intervals, read_priors
from mepkg.features import FeatureConfig
from mepkg.h5io import VideoScores, write_scores
from mepkg.manifest import drop_long_events, manifest_row
from mepkg.metrics import EvaluateSettings
from mepkg.run_records import summarise_run, tabulate_metrics
from mepkg.train import TrainConfig

LABELS = pd.DataFrame({
    "subject": ["001", "001", "002", "003"],
    "video": ["1", "1", "1", "1"],
    "onset": [0, 100, 10, 20],
    "offset": [70, 5000, 80, 90],       # 001's second "micro" lasts 4900 frames
    "type": ["micro", "micro", "micro", "macro"],
    "emotion": ["negative", "positive", "surprise", "others"],
})


# ---------------------------------------------------------------- data stage
def test_drop_long_events_drops_only_long_micro_events():
    kept = drop_long_events(LABELS, 100)
    assert list(kept.index) == [0, 2, 3]
    assert drop_long_events(LABELS, 0) is LABELS           # 0 keeps all
    macro = LABELS.assign(type="macro")
    assert len(drop_long_events(macro, 10)) == 4           # macro events are never dropped


def test_manifest_row_names_a_missing_video(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"video_id": ["001_1"], "path": ["x"], "fps": ["200"]}).to_csv(path, index=False)
    assert manifest_row(path, "001_1")["fps"] == "200"
    with pytest.raises(FileNotFoundError, match="video 002_1 is labelled but not on disk"):
        manifest_row(path, "002_1")


# ---------------------------------------------------------------- settings from config groups
def test_feature_config_from_the_nested_config_group():
    group = {"k": 20, "frame_skip": 2, "flow": {"winsize": 13, "levels": 2}}
    config = FeatureConfig.from_config(group)
    assert (config.k, config.frame_skip, config.winsize, config.levels) == (20, 2, 13, 2)
    assert group["flow"] == {"winsize": 13, "levels": 2}     # the caller's dict untouched
    with pytest.raises(TypeError):
        FeatureConfig.from_config({"flow": {"typo": 1}})


def test_train_config_takes_execution_settings_apart():
    config = TrainConfig.from_config({"epochs": 3, "model": {"d_model": 16}}, threads=2,
                                     device="cpu")
    assert (config.epochs, config.threads, config.device) == (3, 2, "cpu")


def test_evaluate_settings_validate():
    assert EvaluateSettings().sweep_p[0] == 0.3
    with pytest.raises(ValueError, match="sweep_p"):
        EvaluateSettings(sweep_p=(1.5,))


# ---------------------------------------------------------------- decode stage
def _scores(tmp_path, subject="003"):
    spot = np.zeros(200, np.float32)
    spot[50:60] = 1.0                                       # one clear peak
    logits = np.zeros((200, 5), np.float32)
    logits[:, 0] = 1.0                                      # votes negative everywhere
    video = VideoScores(video_id=f"{subject}_1", subject=subject, video="1", spot=spot,
                        logits=logits, frame_skip=1, k=30, fps=30.0, n_frames=200)
    return write_scores(tmp_path / "scores.h5", [video], fold=subject)


def test_decode_fold_records_the_priors_and_the_k_prime_it_used(tmp_path):
    labels = tmp_path / "labels.csv"
    LABELS.to_csv(labels, index=False)
    out, record = tmp_path / "fold.csv", tmp_path / "fold.priors.yaml"
    k_p = decode_fold(_scores(tmp_path), labels, {"p": 0.5}, out, record)
    # k' from the training subjects 001 and 002: durations 70, 4900, 70 -> median 70 -> 35
    assert k_p == 35
    priors, recorded = read_priors(record)                 # a valid --priors file
    assert recorded == 35 and priors == DecodePriors(p=0.5, k_prime=35)
    assert yaml.safe_load(record.read_text())["k_prime"] == 35
    import mepkg

    assert record.read_text().startswith(f"# decoding priors used, written by mepkg "
                                         f"{mepkg.__version__}\n")
    intervals = pd.read_csv(out)
    assert len(intervals) >= 1 and set(intervals.emotion) == {"negative"}


def test_decode_fold_uses_and_records_a_fixed_k_prime(tmp_path):
    labels = tmp_path / "labels.csv"
    LABELS.to_csv(labels, index=False)
    record = tmp_path / "fold.priors.yaml"
    # the megc_casme3 preset fixes k' = 6 instead of the labels' 35
    k_p = decode_fold(_scores(tmp_path), labels, {"preset": "megc_casme3"},
                      tmp_path / "fold.csv", record)
    assert k_p == 6
    assert read_priors(record)[1] == 6


def test_pool_intervals_keeps_fold_order(tmp_path):
    files = []
    for i, subject in enumerate(["002", "001"]):
        path = tmp_path / f"{subject}.csv"
        pd.DataFrame({"subject": [subject], "video": ["1"], "onset": [i], "offset": [i + 5],
                      "emotion": ["negative"], "apex": [i], "score": [1.0], "vote": [1.0],
                      "vetoed": [False]}).to_csv(path, index=False)
        files.append(path)
    pooled = pool_intervals(files, tmp_path / "all.csv")
    assert list(pooled.subject) == ["002", "001"]
    assert pd.read_csv(tmp_path / "all.csv", dtype={"subject": str}).subject.tolist() == ["002", "001"]


# ---------------------------------------------------------------- evaluate stage
def _mode(mode, strs):
    return {"mode": mode, "strs": strs, "spotting": {"f1": strs, "precision": strs,
            "recall": strs, "tp": 1, "fp": 0, "fn": 0},
            "recognition": {"f1": 1.0, "uf1": 1.0, "uar": 1.0},
            "per_subject": {"001": {"strs": strs}}, "pairs": [],
            "without_veto": {"strs": strs / 2, "spotting": {}, "recognition": {}},
            "bootstrap": {"n": 0, "low": strs, "high": strs, "strs": strs}}


def test_tabulate_metrics_puts_the_headline_mode_on_top(tmp_path, monkeypatch):
    import mepkg.run_records as run_records

    monkeypatch.setattr(run_records, "metrics_table", lambda results: pd.DataFrame(
        {"mode": sorted(results)}))                        # the CSV layout is tested elsewhere
    files = []
    for mode, strs in (("official", 0.5), ("strict", 0.25)):
        files.append(tmp_path / f"{mode}.json")
        files[-1].write_text(json.dumps(_mode(mode, strs)))
    combined = tabulate_metrics(files, "strict", tmp_path / "metrics.json", tmp_path / "m.csv")
    assert combined["headline_mode"] == "strict" and combined["strs"] == 0.25
    assert combined["official"]["strs"] == 0.5
    assert json.loads((tmp_path / "metrics.json").read_text()) == combined
    with pytest.raises(ValueError, match="headline mode 'release'"):
        tabulate_metrics(files, "release", tmp_path / "x.json", tmp_path / "x.csv")


def test_summarise_run_records_size_metrics_and_settings(tmp_path):
    metrics = {**_mode("official", 0.5), "headline_mode": "official",
               "strict": _mode("strict", 0.25), "release": _mode("release", 0.125)}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    LABELS.to_csv(tmp_path / "labels.csv", index=False)
    summary = summarise_run(tmp_path / "metrics.json", tmp_path / "labels.csv",
                            tmp_path / "summary.json", run="r", folds=["001", "002"],
                            n_videos=3, settings={"decode": {"p": 0.5}})
    assert summary["folds"] == 2 and summary["micro_events"] == 3
    assert summary["strict_strs"] == 0.25 and summary["release_strs"] == 0.125
    assert summary["config"] == {"decode": {"p": 0.5}}
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_summary_records_each_video_s_usable_share_and_warns_below_the_level(tmp_path,
                                                                           caplog):
    from mepkg.h5io import FeatureSet, write_features
    from mepkg.quality import ALIGNMENT_CAPPED, REUSED_CROP

    metrics = {**_mode("official", 0.5), "headline_mode": "official",
               "strict": _mode("strict", 0.25), "release": _mode("release", 0.125)}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    LABELS.to_csv(tmp_path / "labels.csv", index=False)
    files = []
    for vid, flags in (("001_1", [0, 0, 0, ALIGNMENT_CAPPED]), ("002_1", [0, REUSED_CROP] * 2)):
        w = len(flags)
        fs = FeatureSet(features=np.zeros((w, 36, 10), np.float32),
                        window_start=np.arange(w) * 5, landmarks=np.zeros((w, 68, 2), np.float32),
                        crop_box=np.zeros((w, 4), np.int32), quality=np.array(flags, np.uint8),
                        attrs={"video_id": vid, "subject": vid[:3], "video": vid, "fps": 30.0,
                               "frame_skip": 1, "k": 10, "n_frames": 25, "landmark_backend": "dlib",
                               "flow_params": "{}", "mepkg_version": "test"})
        files.append(write_features(tmp_path / f"{vid}.h5", fs))
    with caplog.at_level(logging.WARNING):
        summary = summarise_run(tmp_path / "metrics.json", tmp_path / "labels.csv",
                                tmp_path / "summary.json", run="r", folds=["001", "002"],
                                n_videos=2, settings={}, features=files,
                                quality={"warn_below": 0.9,
                                         "unusable": ["reused_crop", "box_outside"]})
    assert summary["analysed"] == {
        "usable_share": 0.75, "videos_below_warn": ["002_1"],
        "videos": {"001_1": {"usable_share": 1.0, "windows": 4, "alignment_capped": 1},
                   "002_1": {"usable_share": 0.5, "windows": 4, "reused_crop": 2}}}
    assert "video 002_1: only 50% of its windows are usable" in caplog.text
    assert "001_1" not in caplog.text


# ---------------------------------------------------------------- plots from files
def test_plot_video_curve_and_sweep_from_the_fold_files(tmp_path):
    from mepkg.plots import plot_video_curve, run_threshold_sweep

    scores = _scores(tmp_path)
    labels = tmp_path / "labels.csv"
    LABELS.to_csv(labels, index=False)
    decode_fold(scores, labels, {}, tmp_path / "fold.csv", tmp_path / "fold.priors.yaml")
    figure = plot_video_curve(scores, tmp_path / "fold.csv", labels, "003_1", tmp_path / "c.png",
                              quality={"unusable": ["reused_crop", "box_outside"]})
    assert figure.stat().st_size > 1000
    with pytest.raises(ValueError, match="no score curve for video 009_1"):
        plot_video_curve(scores, tmp_path / "fold.csv", labels, "009_1", tmp_path / "d.png")
    sweep = run_threshold_sweep([scores], labels, {}, [0.4, 0.6], tmp_path / "s.csv",
                                tmp_path / "s.png")
    assert list(sweep.p) == [0.4, 0.6] and (tmp_path / "s.png").stat().st_size > 1000
