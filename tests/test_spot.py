"""`mepkg spot`: frame_skip derivation, model packaging, outputs and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import small_model_file

from mepkg.cli import main
from mepkg.decode import DecodePriors
from mepkg.package import package_model
from mepkg.spot import SPOT_COLUMNS, spot_frame_skip, spot_video


def test_frame_skip_matches_the_training_sampled_rate():
    # SAMM-LV training: 200 fps / 7 = 28.6 sampled frames/s
    assert spot_frame_skip(200, 200, 7) == 7
    assert spot_frame_skip(30, 200, 7) == 1
    assert spot_frame_skip(60, 200, 7) == 2
    # CAS(ME)^3 training: 30 fps, frame_skip 1
    assert spot_frame_skip(200, 30, 1) == 7
    with pytest.raises(ValueError, match="--fps"):
        spot_frame_skip(0, 30, 1)


@pytest.fixture(scope="module")
def packaged_model(tmp_path_factory):
    """A small untrained model trained-at 30 fps, k 10, packaged with k' 2."""
    tmp = tmp_path_factory.mktemp("model")
    _, raw = small_model_file(tmp)
    labels = pd.DataFrame({"subject": ["s1", "s1"], "video": ["a", "a"], "onset": [10, 40],
                           "apex": [12, 43], "offset": [14, 46], "type": ["micro", "micro"],
                           "emotion_raw": ["", ""], "emotion": ["negative", "positive"]})
    out = package_model(raw, labels, tmp / "model.pt", priors=DecodePriors(p=0.3))
    return raw, out


def test_package_model_stores_priors_and_k_prime(packaged_model):
    _, packaged = packaged_model
    payload = torch.load(packaged, weights_only=True)
    # durations 4 and 6 -> sorted [4, 6][2 // 2] = 6 -> k' = (6 + 1) // 2 = 3
    assert payload["decode"]["k_prime"] == 3
    assert payload["decode"]["priors"]["p"] == pytest.approx(0.3)


def test_package_model_keeps_a_preset_s_fixed_k_prime(packaged_model, tmp_path):
    raw, _ = packaged_model
    labels = pd.DataFrame({"subject": ["s1"], "video": ["a"], "onset": [10], "apex": [12],
                           "offset": [14], "type": ["micro"], "emotion_raw": [""],
                           "emotion": ["negative"]})
    # the labels alone would give k' = (4 + 1) // 2 = 2; megc_casme3 fixes k' = 6
    out = package_model(raw, labels, tmp_path / "m.pt",
                        priors=DecodePriors.from_dict({"preset": "megc_casme3"}))
    assert torch.load(out, weights_only=True)["decode"]["k_prime"] == 6


@pytest.mark.slow
def test_spot_writes_intervals_and_timeline(packaged_model, tmp_path):
    from mepkg.synth import render_video

    _, packaged = packaged_model
    video = render_video(tmp_path / "clip.avi", seconds=4, frame_size=320, fps=30, seed=3)
    intervals = spot_video(video, packaged, out_dir=tmp_path / "out", device="cpu")
    table = pd.read_csv(tmp_path / "out" / "intervals.csv")
    assert list(table.columns) == SPOT_COLUMNS
    assert len(table) == len(intervals)
    assert (table.onset <= table.apex).all() and (table.apex <= table.offset).all()
    assert np.allclose(table.onset_s, table.onset / 30.0)
    png = (tmp_path / "out" / "timeline.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_spot_errors_are_one_line_without_traceback(packaged_model, tmp_path, capsys):
    raw, packaged = packaged_model
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    assert main(["spot", str(bad), "--model", str(packaged)]) == 2
    assert "broken.mp4" in capsys.readouterr().err

    # a model file without the decoding priors says how to package it
    assert main(["spot", str(bad), "--model", str(raw)]) == 2
    assert "package-model" in capsys.readouterr().err

    # a model file missing keys
    payload = torch.load(packaged, weights_only=True)
    del payload["k"]
    torch.save(payload, tmp_path / "cut.pt")
    assert main(["spot", str(bad), "--model", str(tmp_path / "cut.pt")]) == 2
    assert "lacks" in capsys.readouterr().err

    # a newer model-file format is refused
    payload = torch.load(packaged, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    assert main(["spot", str(bad), "--model", str(tmp_path / "future.pt")]) == 2
    assert "format_version" in capsys.readouterr().err


def test_spot_rejects_short_and_faceless_videos(packaged_model, tmp_path, capsys):
    import cv2

    _, packaged = packaged_model
    short = tmp_path / "short"
    short.mkdir()
    blank = np.full((120, 120, 3), 90, np.uint8)
    for i in range(8):                       # 8 frames < one window of k = 10
        cv2.imwrite(str(short / f"{i}.jpg"), blank)
    assert main(["spot", str(short), "--model", str(packaged), "--fps", "30"]) == 2
    assert "too short" in capsys.readouterr().err

    faceless = tmp_path / "faceless"
    faceless.mkdir()
    for i in range(40):
        cv2.imwrite(str(faceless / f"{i}.jpg"), blank)
    assert main(["spot", str(faceless), "--model", str(packaged), "--fps", "30",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no face" in capsys.readouterr().err
    assert not (tmp_path / "o" / "intervals.csv").exists()


# ---------------------------------------------------------------- the model's feature settings
TRAINED_WITH = dict(k=10, frame_skip=1, crop_size=160, winsize=9, levels=2, max_realign=1)


def _trained_model(folder):
    """A model trained (one epoch, a small model) on features extracted with TRAINED_WITH,
    packaged with the dataset name."""
    import json
    from dataclasses import asdict

    from mepkg.features import FeatureConfig
    from mepkg.h5io import FeatureSet
    from mepkg.train import TrainConfig, run_fold

    config = FeatureConfig(**TRAINED_WITH)
    rng = np.random.default_rng(0)
    n_win, k = 11, config.k
    sets = [FeatureSet(
        features=rng.normal(0, 0.1, (n_win, 36, k)).astype(np.float32),
        window_start=np.arange(n_win, dtype=np.int64) * (k // 2),
        landmarks=np.zeros((n_win, 68, 2), np.float32), crop_box=np.zeros((n_win, 4), np.int32),
        quality=np.zeros(n_win, np.uint8),
        attrs=dict(video_id=f"s{i}_a", subject=f"s{i}", video="a", fps=30.0, frame_skip=1, k=k,
                   n_frames=(n_win + 1) * k // 2, feature_config=json.dumps(asdict(config))))
        for i in (1, 2)]
    labels = pd.DataFrame({"subject": ["s1", "s2"], "video": ["a", "a"], "onset": [10, 20],
                           "apex": [12, 22], "offset": [14, 25], "type": ["micro", "micro"],
                           "emotion_raw": ["", ""], "emotion": ["negative", "positive"]})
    run_fold(None, labels, "all", folder / "all", videos=sets,
             config=TrainConfig(epochs=1, model=dict(d_model=16, depth=1, d_state=4)))
    return package_model(folder / "all" / "model.pt", labels, folder / "model_all.pt",
                         trained_on={"dataset": "synthetic", "protocol": "sammlv"})


def test_the_model_file_records_the_feature_settings_and_the_dataset(tmp_path, caplog):
    from mepkg.features import FeatureConfig
    from mepkg.model import read_model_file
    from mepkg.package import model_feature_config

    packaged = _trained_model(tmp_path)
    payload = read_model_file(packaged)
    assert payload["format_version"] == 2
    assert payload["features"] == FeatureConfig(**TRAINED_WITH).settings()
    assert {key: payload["trained_on"][key] for key in ("dataset", "protocol")} == {
        "dataset": "synthetic", "protocol": "sammlv"}
    assert "quality_policy" in payload["trained_on"]
    assert model_feature_config(payload, packaged) == FeatureConfig(**TRAINED_WITH)
    # a file written before a setting existed: its default (what that mepkg did), no warning
    older = {**payload, "features": {key: value for key, value in payload["features"].items()
                                     if key != "match_brightness"}}
    caplog.clear()
    with caplog.at_level("WARNING", logger="mepkg.package"):
        assert model_feature_config(older, packaged) == FeatureConfig(**TRAINED_WITH)
    assert not [r for r in caplog.records if r.name == "mepkg.package"]


def test_a_format_1_model_file_loads_with_the_defaults_named(packaged_model, tmp_path, caplog):
    from mepkg.features import FeatureConfig
    from mepkg.model import load_model
    from mepkg.package import model_feature_config

    _, packaged = packaged_model
    payload = torch.load(packaged, weights_only=True)
    payload["format_version"] = 1
    del payload["features"], payload["trained_on"]
    torch.save(payload, tmp_path / "v1.pt")
    _, meta = load_model(tmp_path / "v1.pt")
    assert meta["trained_on"] == {}
    with caplog.at_level("WARNING", logger="mepkg.package"):
        config = model_feature_config(meta, tmp_path / "v1.pt")
    assert config == FeatureConfig(k=10, frame_skip=1)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "v1.pt" in lines[0] and "crop_size=320" in lines[0] and "backend=dlib" in lines[0]


@pytest.mark.slow
def test_spot_extracts_with_the_model_s_feature_settings(tmp_path, monkeypatch):
    import mepkg.features
    import mepkg.landmarks
    from mepkg.features import FeatureConfig
    from mepkg.synth import render_video

    packaged = _trained_model(tmp_path)
    used = {}
    real_extract = mepkg.features.extract_features

    def spy(source, track, config, **kwargs):
        used["config"] = config
        return real_extract(source, track, config, **kwargs)

    monkeypatch.setattr(mepkg.features, "extract_features", spy)
    video = render_video(tmp_path / "clip.avi", seconds=3, frame_size=320, fps=60, seed=3)
    spot_video(video, packaged, out_dir=tmp_path / "out", device="cpu")
    # every training setting, but frame_skip from the video's rate: 60 fps x 1 / 30 fps = 2
    assert used["config"] == FeatureConfig(**{**TRAINED_WITH, "frame_skip": 2})
    assert (tmp_path / "out" / "intervals.csv").exists()


@pytest.mark.slow
def test_spot_reports_the_analysed_share_and_no_interval_where_the_face_is_gone(
        packaged_model, tmp_path, caplog):
    """A 4 s clip whose face is gone from frame 60: the share is reported, the stretch is
    masked (shaded), no interval reaches it, and a synthetic-trained model is named."""
    import logging

    import cv2

    from mepkg.model import read_model_file, write_model_file
    from mepkg.synth import render_video

    _, packaged = packaged_model
    payload = read_model_file(packaged)
    payload["trained_on"] = {"dataset": "synthetic", "run": "synthetic-tiny", "synthetic": True}
    model = write_model_file(tmp_path / "synthetic.pt", payload)
    folder = render_video(tmp_path / "clip", seconds=4, frame_size=320, fps=30, seed=3)
    for jpg in folder.glob("*.jpg"):
        if int(jpg.stem) >= 60:
            cv2.imwrite(str(jpg), np.full((320, 320, 3), 90, np.uint8))
    with caplog.at_level(logging.INFO, logger="mepkg.spot"):
        spot_video(folder, model, out_dir=tmp_path / "out", fps=30, device="cpu")
    # 120 frames, k 10: 23 windows; references 60, 65, ..., 110 (windows 12-22) show no face
    assert "clip: 52% analysed (12 of 23 windows usable; not analysed: 11 reused_crop)" \
        in caplog.text
    assert "only 52% of the video could be analysed" in caplog.text
    assert "trained on synthetic faces (synthetic-tiny)" in caplog.text
    table = pd.read_csv(tmp_path / "out" / "intervals.csv")
    assert (table.offset < 55).all()        # no face at reference 60: masked from 55 on
