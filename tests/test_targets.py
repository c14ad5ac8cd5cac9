"""mepkg.targets against hand-computed arrays."""

import logging

import numpy as np
import pandas as pd
import pytest

from mepkg.targets import (NO_CLASS, class_weights, frame_targets, n_windows,
                           select_training_windows, stitch_curve, window_starts, window_targets)


def test_window_count_and_starts():
    assert n_windows(30, 10) == 5            # floor(30 / 5) - 1
    assert n_windows(34, 10) == 5
    assert n_windows(9, 10) == 0 and n_windows(0, 10) == 0
    assert window_starts(30, 10).tolist() == [0, 5, 10, 15, 20]
    assert window_starts(30, 10).dtype == np.int64
    with pytest.raises(ValueError, match="even"):
        n_windows(30, 7)


def _events():
    return pd.DataFrame([
        # original frames, frame_skip 2: sampled onset 2, offset 6 -> frames 3, 4, 5
        dict(subject="s1", video="v", onset=4, apex=6, offset=13, type="micro", emotion="surprise"),
        dict(subject="s1", video="v", onset=20, apex=21, offset=26, type="macro", emotion=""),
        # sampled 15..17 -> frame 16 only
        dict(subject="s1", video="v", onset=30, apex=32, offset=35, type="micro",
             emotion="negative"),
    ])


def test_frame_targets_by_hand():
    spot, cls = frame_targets(20, _events(), frame_skip=2)
    expected_spot = np.zeros(20, np.float32)
    expected_spot[[3, 4, 5, 16]] = 1
    expected_cls = np.full(20, 4)
    expected_cls[[3, 4, 5]] = 2
    expected_cls[16] = 0
    assert spot.dtype == np.float32 and cls.dtype == np.int64
    np.testing.assert_array_equal(spot, expected_spot)
    np.testing.assert_array_equal(cls, expected_cls)


def test_frame_targets_clip_at_video_end_and_flag_unknown_emotion(caplog):
    events = [dict(onset=7, offset=40, type="micro", emotion="repression")]
    with caplog.at_level(logging.WARNING):
        spot, cls = frame_targets(10, events, frame_skip=1)
    assert spot.tolist() == [0] * 8 + [1, 1]
    assert cls.tolist() == [4] * 8 + [NO_CLASS, NO_CLASS]
    assert "repression" in caplog.text


def test_window_targets_by_hand():
    spot_w, cls_w = window_targets(20, _events(), k=6, frame_skip=2)
    # 20 // 3 - 1 = 5 windows starting at 0, 3, 6, 9, 12
    assert spot_w.shape == (5, 6) and cls_w.shape == (5, 6)
    assert spot_w[0].tolist() == [0, 0, 0, 1, 1, 1]
    assert spot_w[1].tolist() == [1, 1, 1, 0, 0, 0]
    assert cls_w[1].tolist() == [2, 2, 2, 4, 4, 4]
    assert spot_w[4].tolist() == [0, 0, 0, 0, 1, 0]      # frames 12..17
    assert cls_w[4].tolist() == [4, 4, 4, 4, 0, 4]
    with pytest.raises(ValueError, match="do not fit"):
        window_targets(20, _events(), k=6, frame_skip=2, starts=np.array([0, 16]))


def test_select_training_windows_keeps_all_positives_and_ratio_background():
    spot_w = np.zeros((10, 4))
    spot_w[[1, 4, 7, 8], 2] = 1
    chosen = select_training_windows(spot_w, 0.5, np.random.default_rng(0))
    assert set([1, 4, 7, 8]) <= set(chosen.tolist())
    assert len(chosen) == 6 and chosen.tolist() == sorted(chosen.tolist())
    again = select_training_windows(spot_w, 0.5, np.random.default_rng(0))
    np.testing.assert_array_equal(chosen, again)
    # ratio 4: asks for 16 background windows, only 6 exist
    assert len(select_training_windows(spot_w, 4, np.random.default_rng(0))) == 10


def test_class_weights_balanced_with_neutral_factor():
    cls = np.array([0, 0, 1, 2, 3, 4, 4, 4, 4, 4])
    w = class_weights(cls, neutral_factor=6)
    # n / (5 * count): 10/10, 10/5, 10/5, 10/5, 10/25 * 6
    np.testing.assert_allclose(w, [1.0, 2.0, 2.0, 2.0, 2.4], rtol=1e-6)
    assert w.dtype == np.float32


def test_class_weights_missing_class_gets_zero_not_an_error():
    cls = np.array([[0, 0, 4, 4], [4, 4, 2, -1]])      # no positive, no others; -1 ignored
    w = class_weights(cls, neutral_factor=6)
    # n = 7: negative 7/10, positive 0, surprise 7/5, others 0, neutral 7/20 * 6
    np.testing.assert_allclose(w, [0.7, 0.0, 1.4, 0.0, 2.1], rtol=1e-6)


def test_stitch_curve_by_hand():
    k = 4
    per_window = np.array([[1, 2, 3, 4], [10, 20, 30, 40], [100, 200, 300, 400]])
    np.testing.assert_array_equal(stitch_curve(per_window, k),
                                  [1, 2, 3, 4, 30, 40, 300, 400])      # (3 + 1) * 2 frames
    logits = np.stack([per_window, -per_window], axis=-1)               # W x k x 2
    stitched = stitch_curve(logits, k)
    assert stitched.shape == (8, 2)
    np.testing.assert_array_equal(stitched[:, 1], [-1, -2, -3, -4, -30, -40, -300, -400])
    assert stitch_curve(np.zeros((0, 4)), 4).shape == (0,)
    with pytest.raises(ValueError, match="n_windows, k=6"):
        stitch_curve(per_window, 6)


# ---------------------------------------------------------------- edges and messages
def test_smallest_window_and_exact_fit():
    assert n_windows(4, 2) == 3 and window_starts(4, 2).tolist() == [0, 1, 2]   # k = 2 is valid
    # windows that end exactly on the last sampled frame fit
    spot, _ = window_targets(10, [], 4, 1, starts=np.array([0, 2, 4, 6]))
    assert spot.shape == (4, 4)
    with pytest.raises(ValueError, match=r"starting at 0..7 with k=4 do not fit in 10"):
        window_targets(10, [], 4, 1, starts=np.array([0, 7]))


def test_events_without_a_type_are_micro_and_objects_work():
    from types import SimpleNamespace

    rows = [{"onset": 2, "offset": 6, "emotion": "surprise"}]         # no "type": micro
    spot, cls = frame_targets(10, rows, 1)
    assert spot.tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    assert cls.tolist() == [4, 4, 4, 2, 2, 2, 4, 4, 4, 4]
    objs = [SimpleNamespace(onset=2, offset=6, emotion="surprise", type="micro")]
    assert [a.tolist() for a in frame_targets(10, objs, 1)] == [spot.tolist(), cls.tolist()]
    # an ME starting and ending on one sampled frame is valid and marks nothing
    spot, _ = frame_targets(10, [{"onset": 7, "offset": 8, "emotion": "negative"}], 2)
    assert spot.sum() == 0


def test_reversed_event_and_unknown_emotion_messages(caplog):
    rows = [{"subject": "s9", "video": "v3", "onset": 20, "offset": 10, "type": "micro",
             "emotion": "negative"}]
    with pytest.raises(ValueError) as err:
        frame_targets(30, rows, 1)
    assert str(err.value) == "event s9 v3 onset 20 > offset 10: fix labels.csv"
    with pytest.raises(ValueError, match="frame_skip must be >= 1, got 0"):
        frame_targets(30, [], 0)
    rows = [{"subject": "s9", "video": "v3", "onset": 2, "offset": 6, "type": "micro",
             "emotion": "contempt"},
            {"subject": "s9", "video": "v3", "onset": 12, "offset": 16, "type": "micro",
             "emotion": float("nan")}]
    with caplog.at_level(logging.WARNING, logger="mepkg.targets"):
        spot, cls = frame_targets(20, rows, 1)
    assert [r.getMessage() for r in caplog.records] == [
        "ME s9 v3 at 2-6 has emotion 'contempt', not one of "
        "('negative', 'positive', 'surprise', 'others'): spotting target only",
        "ME s9 v3 at 12-16 has emotion nan, not one of "
        "('negative', 'positive', 'surprise', 'others'): spotting target only"]
    assert cls[3:6].tolist() == [NO_CLASS] * 3 and cls[13:16].tolist() == [NO_CLASS] * 3


def test_class_weights_range_and_absent_message(caplog):
    with pytest.raises(ValueError) as err:
        class_weights(np.array([0, 5]), neutral_factor=6.0)
    assert str(err.value) == "class target 5 out of range for 5 classes"
    with caplog.at_level(logging.WARNING, logger="mepkg.targets"):
        w = class_weights(np.array([0, 0, 4, 4, 4, 4]), neutral_factor=1.0)
    # 6 frames, 5 classes: negative 6 / (5 x 2) = 0.6, neutral 6 / (5 x 4) = 0.3
    np.testing.assert_allclose(w, [0.6, 0, 0, 0, 0.3], rtol=1e-6)
    assert w.dtype == np.float32
    assert [r.getMessage() for r in caplog.records] == [
        "classes absent from the training frames, weight 0: positive, surprise, others"]


def test_background_windows_are_drawn_without_replacement():
    spot = np.zeros((40, 4))
    spot[:10, 1] = 1                                      # 10 ME windows, 30 background
    for seed in range(20):
        keep = select_training_windows(spot, 2.0, np.random.default_rng(seed))
        assert len(keep) == 30 and len(set(keep.tolist())) == 30
        assert keep.dtype == np.int64


def test_stitching_no_window_keeps_the_trailing_shape():
    assert stitch_curve(np.zeros((0, 10, 5)), 10).shape == (0, 5)
    assert stitch_curve(np.zeros((0, 10)), 10).shape == (0,)


def test_mutation_survivors_now_pinned():
    # an ME whose onset and offset fall on one sampled frame (6 // 2 == 7 // 2) is valid
    spot, cls = frame_targets(10, [{"onset": 6, "offset": 7, "emotion": "negative"}], 2)
    assert spot.sum() == 0 and (cls == 4).all()
    # the paper's neutral factor 6 is the default: 2 frames, negative 2 / (5 x 1) = 0.4,
    # neutral 0.4 x 6 = 2.4
    np.testing.assert_allclose(class_weights(np.array([0, 4]), neutral_factor=6.0),
                               [0.4, 0, 0, 0, 2.4], rtol=1e-6)
    # a fold without neutral (or others) frames still gets one weight per class
    np.testing.assert_allclose(class_weights(np.array([0, 1, 1]), neutral_factor=1.0),
                               [0.6, 0.3, 0, 0, 0], rtol=1e-6)
