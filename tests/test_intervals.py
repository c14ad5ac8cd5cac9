"""One home each for interval IoU and the neutral veto (mepkg.intervals)."""

import numpy as np
import pandas as pd
import pytest

from mepkg import constants
from mepkg.decode import segment_iou
from mepkg.intervals import apply_veto, interval_iou, iou_matrix, vetoed_mask


def test_iou_counts_inclusive_frames_by_hand():
    # [10, 70] has 61 frames, [45, 85] 41; shared 45..70 = 26; union 61 + 41 - 26 = 76.
    assert interval_iou((10, 70), (45, 85)) == pytest.approx(26 / 76)
    assert interval_iou((0, 9), (0, 9)) == 1.0
    assert interval_iou((0, 9), (10, 19)) == 0.0          # adjacent: no shared frame
    assert interval_iou((5, 5), (5, 5)) == 1.0            # one frame each, the same one
    assert interval_iou((0, 9), (9, 18)) == pytest.approx(1 / 19)


def test_matrix_and_half_open_variant_are_built_on_it():
    pred, gt = [(10, 70), (0, 9)], [(45, 85), (10, 70)]
    m = iou_matrix(pred, gt)
    assert m.shape == (2, 2)
    assert m.tolist() == [[interval_iou(p, g) for g in gt] for p in pred]
    assert iou_matrix(np.zeros((0, 2)), gt).shape == (0, 2)
    # decode's half-open [start, end) = inclusive [start, end - 1]
    assert segment_iou((0, 10), (8, 20)) == interval_iou((0, 9), (8, 19)) == pytest.approx(2 / 20)
    assert segment_iou((5, 5), (5, 5)) == 0.0             # empty intervals


def test_veto_reads_bools_and_csv_text():
    df = pd.DataFrame({"onset": [0, 1, 2, 3], "vetoed": [False, True, False, True]})
    assert vetoed_mask(df).tolist() == [False, True, False, True]
    assert apply_veto(df).onset.tolist() == [0, 2]
    text = pd.DataFrame({"onset": [0, 1, 2], "vetoed": ["False", " true", "1"]})
    assert vetoed_mask(text).tolist() == [False, True, True]
    bare = pd.DataFrame({"onset": [0]})
    assert vetoed_mask(bare).tolist() == [False] and apply_veto(bare) is bare


def test_constants_agree_with_their_sources():
    from mepkg.datasets import common
    from mepkg.roi import MOTION_NAMES

    assert constants.CLASS_NAMES[constants.NEUTRAL_INDEX] == constants.NEUTRAL == "neutral"
    assert constants.N_CHANNELS == 2 * len(MOTION_NAMES) == 36
    # one home: the dataset module uses the constants' objects and spells no class list of its own
    assert common.EMOTIONS is constants.EMOTIONS and not hasattr(common, "CLASS_NAMES")


def test_original_and_sampled_frames_convert_one_way_each():
    from mepkg.intervals import check_frame_skip, to_original, to_sampled

    # frame_skip 7: original 0..6 -> sampled 0, 7..13 -> 1; sampled 3 -> original 21
    assert to_sampled(13, 7) == 1 and to_sampled(14, 7) == 2
    assert to_sampled(np.array([0, 6, 7, 20]), 7).tolist() == [0, 0, 1, 2]
    assert to_original(3, 7) == 21 and to_original(np.array([0, 2]), 7).tolist() == [0, 14]
    assert to_sampled(to_original(5, 3), 3) == 5
    assert check_frame_skip(7.0) == 7
    for bad in (0, -1, 1.5, None, True, "7"):
        with pytest.raises(ValueError, match="frame_skip must be >= 1"):
            check_frame_skip(bad)
