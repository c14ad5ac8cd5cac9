"""mepkg.quality: the policy, window flags -> frame masks, and their use in decoding and training."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from mepkg.decode import DecodePriors, decode_intervals, decode_videos
from mepkg.h5io import VideoScores, read_scores, write_scores
from mepkg.quality import (ALIGNMENT_CAPPED, DRIFT_BOUNDED, REDETECT_FAILED, REUSED_CROP,
                           QualityPolicy, frame_mask, usable_share, usable_windows)
from mepkg.model import load_model
from mepkg.train import TrainConfig, run_fold
from conftest import TINY_MODEL, synthetic_fold

K = 10


# ---------------------------------------------------------------- policy and masks
def test_policy_defaults_and_validation():
    policy = QualityPolicy()
    assert policy.bits == REUSED_CROP | DRIFT_BOUNDED | 16
    assert QualityPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ValueError, match="unknown flag.*'blurry'"):
        QualityPolicy(unusable=("reused_crop", "box_outside", "blurry"))
    with pytest.raises(ValueError, match="reused_crop.*never saw a face"):
        QualityPolicy(unusable=("box_outside",))
    with pytest.raises(ValueError, match="unknown setting"):
        QualityPolicy.from_dict({"unusabel": []})


def test_usable_windows_follow_the_policy():
    q = np.array([0, REDETECT_FAILED, ALIGNMENT_CAPPED, DRIFT_BOUNDED, REUSED_CROP], np.uint8)
    assert list(usable_windows(q)) == [True, True, True, False, False]
    strict = QualityPolicy(unusable=("reused_crop", "box_outside", "drift_bounded",
                                     "alignment_capped", "redetect_failed"))
    assert list(usable_windows(q, strict)) == [True, False, False, False, False]
    assert usable_share(q) == 0.6 and usable_share(np.zeros(0)) == 1.0


def test_an_unusable_window_masks_all_k_of_its_frames():
    """5 windows, k=10: curve of 30 frames; window 2 covers frames 10..19."""
    q = np.zeros(5, np.uint8)
    assert frame_mask(q, K).tolist() == [True] * 30
    q[2] = DRIFT_BOUNDED
    mask = frame_mask(q, K)
    assert mask.shape == (30,)
    assert np.flatnonzero(~mask).tolist() == list(range(10, 20))
    q[4] = DRIFT_BOUNDED                                 # last window: frames 20..29
    assert np.flatnonzero(~frame_mask(q, K)).tolist() == list(range(10, 30))


def test_a_window_without_a_face_also_masks_the_half_window_before_it():
    """Face at reference 5, none at reference 10: it left somewhere in 5..9."""
    q = np.zeros(5, np.uint8)
    q[2] = REUSED_CROP
    assert np.flatnonzero(~frame_mask(q, K)).tolist() == list(range(5, 20))
    q[:] = 0
    q[0] = REUSED_CROP                                   # nothing before the first window
    assert np.flatnonzero(~frame_mask(q, K)).tolist() == list(range(0, 10))


# ---------------------------------------------------------------- decoding
def _bumps(n=120, centres=(20, 60, 100), width=3.0):
    x = np.arange(n)
    return 0.05 + sum(0.9 * np.exp(-0.5 * ((x - c) / width) ** 2) for c in centres)


def test_a_masked_stretch_gets_no_interval():
    curve = _bumps()
    full = decode_intervals(curve, 4)
    assert [apex for _, _, apex in full] == [20, 60, 100]
    mask = np.ones(len(curve), bool)
    mask[50:75] = False                                  # the middle bump is not analysed
    masked = decode_intervals(curve, 4, mask=mask)
    assert [apex for _, _, apex in masked] == [20, 100]
    for start, end, _ in masked:
        assert mask[start:end + 1].all()


def test_intervals_stop_at_a_masked_stretch():
    """A bump right beside the masked stretch: its interval ends before it."""
    curve = _bumps(centres=(40,), width=4.0)
    mask = np.ones(len(curve), bool)
    mask[43:60] = False
    (start, end, apex), = decode_intervals(curve, 4, mask=mask)
    assert end == 42 and apex == 40 and start < 40
    (start_f, end_f, _), = decode_intervals(curve, 4, mask=mask, interval="fixed")
    # the masked frames smooth as 0, so the smoothed peak sits at 39: 39 - 4 .. min(39 + 4, 42)
    assert (start_f, end_f) == (35, 42)


def test_masked_frames_stay_out_of_the_threshold_statistics():
    """A huge score on masked frames would lift mean and max above the real bump."""
    curve = _bumps(centres=(30,))
    curve[80:100] = 50.0                                 # garbage where no face was
    mask = np.ones(len(curve), bool)
    mask[75:105] = False
    assert decode_intervals(curve, 4) != [] and 30 not in [a for *_, a in
                                                           decode_intervals(curve, 4)]
    assert [a for *_, a in decode_intervals(curve, 4, mask=mask)] == [30]
    assert decode_intervals(curve, 4, mask=np.zeros(len(curve), bool)) == []


def test_mask_of_the_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match="mask must be bool of shape \\(120,\\)"):
        decode_intervals(_bumps(), 4, mask=np.ones(100, bool))


def _video(quality=None, n_windows=23):
    rng = np.random.default_rng(0)
    n = (n_windows + 1) * K // 2
    spot = np.clip(_bumps(n, (20, 60, 100)) + rng.normal(0, 0.02, n), 0, 1).astype(np.float32)
    logits = rng.normal(0, 1, (n, 5)).astype(np.float32)
    return VideoScores(video_id="s1_v1", subject="s1", video="v1", spot=spot, logits=logits,
                       frame_skip=2, k=K, quality=quality)


def test_nothing_masked_decodes_exactly_as_without_quality(tmp_path):
    priors = DecodePriors()
    plain = decode_videos([_video()], priors, 4)
    usable_flags = np.full(23, REDETECT_FAILED | ALIGNMENT_CAPPED, np.uint8)   # usable
    write_scores(tmp_path / "scores.h5", [_video(usable_flags)], fold="s1")
    (read,) = read_scores(tmp_path / "scores.h5")
    np.testing.assert_array_equal(read.quality, usable_flags)
    pd.testing.assert_frame_equal(decode_videos([read], priors, 4), plain)
    assert len(plain) >= 2


def test_decode_videos_masks_unusable_windows_by_the_policy():
    q = np.zeros(23, np.uint8)
    q[10:13] = REUSED_CROP                               # frames 45..74 (sampled)
    out = decode_videos([_video(q)], DecodePriors(), 4)
    assert len(out) and not ((out["offset"] >= 45 * 2) & (out["onset"] <= 74 * 2)).any()
    lenient = QualityPolicy(unusable=("reused_crop", "box_outside"))
    q[10:13] = DRIFT_BOUNDED
    kept = decode_videos([_video(q)], DecodePriors(), 4, lenient)
    pd.testing.assert_frame_equal(kept, decode_videos([_video()], DecodePriors(), 4))


# ---------------------------------------------------------------- training
def _config(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 8, "model": TINY_MODEL, "device": "cpu", **kw})


def test_training_leaves_out_unusable_windows_and_counts_them(tmp_path, caplog):
    """Unusable windows hold NaN here: training on them would give NaN weights."""
    sets, labels = synthetic_fold(subjects=("s1", "s2"), videos_per_subject=1)
    sets[0].quality[3:7] = REUSED_CROP
    sets[0].quality[9] = DRIFT_BOUNDED
    sets[0].features[3:7] = np.nan
    sets[0].features[9] = np.nan
    with caplog.at_level(logging.INFO, logger="mepkg.train"):
        out = run_fold(None, labels, "all", tmp_path / "all", _config(), videos=sets)
    assert "fold all: 5 of 46 windows left out as unusable" in caplog.text
    model, meta = load_model(out / "model.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert meta["trained_on"] == {"quality_policy": QualityPolicy().to_dict(), "windows_left_out": 5}


def test_usable_flags_train_exactly_as_clean_windows(tmp_path):
    sets, labels = synthetic_fold(subjects=("s1", "s2"), videos_per_subject=1)
    out_a = run_fold(None, labels, "s2", tmp_path / "a", _config(), videos=sets)
    for fs in sets:
        fs.quality[:] = REDETECT_FAILED                  # flagged, but usable by default
    out_b = run_fold(None, labels, "s2", tmp_path / "b", _config(), videos=sets)
    (a,), (b,) = read_scores(out_a / "scores.h5"), read_scores(out_b / "scores.h5")
    np.testing.assert_array_equal(a.spot, b.spot)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert (b.quality == REDETECT_FAILED).all() and not a.quality.any()


def test_analysed_frames_of_scores_follow_their_flags():
    from mepkg.quality import analysed_frames

    flags = np.array([0, REUSED_CROP, 0], np.uint8)
    scores = VideoScores(video_id="v", subject="s", video="v", spot=np.zeros(20, np.float32),
                         logits=np.zeros((20, 5), np.float32), frame_skip=1, k=10, fps=30.0,
                         quality=flags)
    np.testing.assert_array_equal(analysed_frames(scores), frame_mask(flags, 10))
    assert not analysed_frames(scores)[0:15].any() and analysed_frames(scores)[15:].all()
    unflagged = VideoScores(video_id="v", subject="s", video="v", spot=np.zeros(20, np.float32),
                            logits=np.zeros((20, 5), np.float32), frame_skip=1, k=10, fps=30.0)
    assert analysed_frames(unflagged) is None
