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
