"""Decoding edge cases that mutation testing showed untested: ties and exact
threshold values in the boundary search, exact IoU at the suppression threshold,
k' from labels on odd frame numbers, messages, and the stage's log line.
Every expected value is worked out by hand in the comments."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from mepkg.decode import (DecodePriors, decode_intervals, decode_videos,
                          estimate_k_prime, fold_k_primes, frame_classes, k_prime_from_labels,
                          onset_offset, recognise, run_decode, segment_iou, suppress)
from mepkg.h5io import VideoScores, write_scores
from mepkg.intervals import apply_veto


# ---------------------------------------------------------------- step 4: ties and levels
STRICT_RISE = [0, 0, 0, 1, 1, 2, 5, 2, 1, 1, 0]                  # frames 0-10
EXCLUSIVE_LEVEL = [0, 0, 0, 0.5, 1, 5, 1, 0.5, 0, 0, 0]
TWO_BELOW = [0.0, 0.2, 0.2, 0.5, 0.2, 1, 3, 1, 0.2, 0.5, 0.2, 0.2, 0.0]   # frames 0-12
FIRST_PEAK = [3, 2, 1, 0.5, 0.1, 0.1, 0.1, 0.1]

# name: (curve, peak, k', t1, t2, extend_factor, (start, end)), each worked out by hand
ONSET_OFFSET_EDGES = {
    # peak 6, k' 3: l0 = 3, r0 = 9. Left: 1 -> 1 at 4 is no rise; 1 -> 2 at 5 is -> start 4.
    # Right (walking left from 8): 1 -> 1 at 8 is no fall; 2 -> 1 at 7 is -> end 8.
    "a strict rise": (STRICT_RISE, 6, 3, 0.5, 0.1, 0, (4, 8)),
    # peak 5, k' 3: l0 = 2, r0 = 8. With t1 = 0.5 the rise to 0.5 at 3 does not count
    # (0.5 > 0.5 is false), the rise to 1 at 4 does -> start 3; likewise end 7.
    "level exclusive": (EXCLUSIVE_LEVEL, 5, 3, 0.5, 0.0, 0, (3, 7)),
    # a level just below 0.5 lets 0.5 count: start 2, end 8
    "level just below": (EXCLUSIVE_LEVEL, 5, 3, 0.49, 0.0, 0, (2, 8)),
    # peak 6, k' 1: l0 = 5, r0 = 7; no rise/fall between them -> (5, 7).
    # t2 = 0.2: left from 4: s[4] = 0.2 < 0.2 is false, s[3] no, s[2] no, s[1]: 0.2 no,
    # so the walk reaches max(0, 6 - 5) = 1 without stopping: start stays 5.
    "extension below t2 is strict": (TWO_BELOW, 6, 1, 10, 0.2, 5, (5, 7)),
    # t2 = 0.21: s[2] and s[1] are both below -> start 2 + 1 = 3; right: s[10], s[11]
    # both below -> end 10 - 1 = 9
    "extension stops at two below": (TWO_BELOW, 6, 1, 10, 0.21, 5, (3, 9)),
    # peak 0 at the first frame, k' 2: l0 = 0, r0 = 2; end: fall 2 > 1 at 1 -> end 2.
    # extension right walks to min(7, 0 + 5 * 2) = 7: 0.1, 0.1 below t2 = 0.2 at 4, 5
    # -> end 3
    "peak at the first frame": (FIRST_PEAK, 0, 2, 0.05, 0.2, 5, (0, 3)),
    # mirrored: peak 7 at the last frame -> (4, 7)
    "peak at the last frame": (FIRST_PEAK[::-1], 7, 2, 0.05, 0.2, 5, (4, 7)),
}


@pytest.mark.parametrize("case", ONSET_OFFSET_EDGES.values(), ids=list(ONSET_OFFSET_EDGES))
def test_onset_offset_edge_cases(case):
    curve, peak, k_p, t1, t2, extend, expected = case
    assert onset_offset(np.array(curve, float), peak, k_p, t1=t1, t2=t2,
                        extend_factor=extend) == expected


def test_fixed_windows_clip_at_the_ends_of_the_curve():
    # the fixed-window baseline clips at the ends: [peak - k', peak + k'] in [0, n - 1]
    curve = np.zeros(12)
    curve[0:3] = [2, 3, 0]                        # smoothed peak at 1: 1 - 2 < 0 -> start 0
    curve[9:12] = [1, 3, 0]                       # smoothed peak at 10: 10 + 2 > 11 -> end 11
    assert decode_intervals(curve, 2, p=0.1, smooth_factor=1, interval="fixed") == [
        (0, 3, 1), (8, 11, 10)]


# ---------------------------------------------------------------- step 5
def test_segment_iou_values():
    assert segment_iou((0, 10), (20, 30)) == 0.0           # disjoint: 0, not 1 / union
    assert segment_iou((0, 1), (0, 1)) == 1.0               # union 1 still divides
    assert segment_iou((3, 3), (3, 3)) == 0.0               # empty union
    assert segment_iou((0, 6), (4, 10)) == pytest.approx(0.2)    # 2 / (6 + 6 - 2)


def test_suppression_threshold_is_exclusive_and_order_is_by_start():
    # IoU exactly 0.2 (2 / 10) is not < 0.2: the later one goes; apexes 10 apart > k' 2
    assert suppress([(0, 6, 0), (4, 10, 10)], 2, iou_threshold=0.2) == [(0, 6, 0)]
    assert suppress([(0, 6, 0), (4, 10, 10)], 2, iou_threshold=0.21) == [(0, 6, 0), (4, 10, 10)]
    # kept in start order whatever the input order and whatever the ends
    assert suppress([(12, 14, 13), (10, 30, 20)], 2) == [(10, 30, 20), (12, 14, 13)]
    # the start order decides which of two overlapping intervals survives
    assert suppress([(5, 9, 7), (4, 20, 12)], 2, iou_threshold=0.2) == [(4, 20, 12)]


# ---------------------------------------------------------------- k'
def test_k_prime_from_labels_uses_floor_division_and_differences():
    labels = pd.DataFrame({"subject": ["a"], "onset": [1], "offset": [6]})   # no type column
    # sampled 1 // 2 = 0, 6 // 2 = 3 -> duration 3 -> k' = (3 + 1) // 2 = 2
    # (true division: 3 - 0.5 = 2.5 -> 2 -> k' 1; a sum 3 + 0 would also give 2: see below)
    assert k_prime_from_labels(labels, 2) == 2
    labels = pd.DataFrame({"subject": ["a"], "onset": [20], "offset": [26]})
    # 26 - 20 = 6 -> k' 3 (the sum 46 would give 23)
    assert k_prime_from_labels(labels, 1) == 3
    with pytest.raises(ValueError) as err:
        k_prime_from_labels(labels, 0)
    assert str(err.value) == "frame_skip must be >= 1, got 0"
    with pytest.raises(ValueError) as err:
        k_prime_from_labels(labels.drop(columns="offset"), 1)
    assert str(err.value) == "labels lack column(s) ['offset'] needed for k'"
    typed = pd.DataFrame({"subject": ["a", "a"], "onset": [0, 0], "offset": [4, 40],
                          "type": ["micro", "macro"]})
    assert k_prime_from_labels(typed, 1) == 2                 # the macro row does not count
    assert fold_k_primes(typed.assign(subject=["a", "b"]), 1, ["b"], DecodePriors()) == {"b": 2}


def test_estimate_k_prime_messages():
    with pytest.raises(ValueError) as err:
        estimate_k_prime([])
    assert str(err.value) == ("no micro-expression durations to estimate k' from: give k_prime "
                              "in the priors file or labels with micro events")
    with pytest.raises(ValueError) as err:
        estimate_k_prime([5, -3, -1])
    assert str(err.value) == "negative ME duration -3 (offset before onset) in the labels"


# ---------------------------------------------------------------- step 6
def test_negative_penalty_lowers_the_negative_logit():
    logits = np.array([[1.0, 0.8, 0, 0, 0]])
    assert frame_classes(logits).tolist() == [0]
    assert frame_classes(logits, 1, 0.3).tolist() == [1]     # 1.0 - 0.3 < 0.8
    assert frame_classes(logits, 1, 0.1).tolist() == [0]     # 0.9 > 0.8
    # synergy 2: the neutral column is out of the argmax even when it is the largest
    assert frame_classes(np.array([[0.1, 0.2, 0, 0, 9]]), 2).tolist() == [1]
    with pytest.raises(ValueError) as err:
        frame_classes(logits, 3)
    assert str(err.value) == "synergy must be one of (0, 1, 2), got 3"


def test_vote_share_with_the_non_negative_rule():
    NEG, POS, SUR = 0, 1, 2
    # span = classes[1 .. 8] (start 0, end 10 -> [1, 9)): 8 frames, 2 not negative
    classes = np.array([SUR, NEG, NEG, POS, NEG, NEG, SUR, NEG, NEG, SUR, SUR])
    # plain majority: negative 6 of 8
    assert recognise(classes, 0, 10) == (NEG, 0.75)
    # share 0.25: 2 <= 0.25 x 8 -> stays negative with its share 6/8
    assert recognise(classes, 0, 10, 0.25) == (NEG, 0.75)
    # share 0.2: 2 > 1.6 -> the majority of the 2 others (a tie: the first met, positive);
    # its share of the whole span is 1/8
    assert recognise(classes, 0, 10, 0.2) == (POS, 0.125)
    assert recognise(np.array([POS, SUR, POS, POS, SUR]), 0, 5) == (POS, 2 / 3)


# ---------------------------------------------------------------- decode_videos / run_decode
def _video(spot, subject="s1", video="v1", skip=3):
    spot = np.asarray(spot, np.float32)
    logits = np.zeros((len(spot), 5), np.float32)
    logits[:, 2] = 1.0
    return VideoScores(video_id=f"{subject}_{video}", subject=subject, video=video, spot=spot,
                       logits=logits, frame_skip=skip, k=30)


def test_decode_videos_rows_and_messages():
    spot = np.zeros(30)
    spot[10:15] = [0.2, 0.6, 1.0, 0.6, 0.2]
    spot[16] = 0.9                                  # just outside the interval (10, 15)
    v = _video(spot)
    out = decode_videos([v], DecodePriors(extend_factor=0), 2)
    ((start, end, apex),) = decode_intervals(v.spot, 2, extend_factor=0)
    row = out.iloc[0]
    assert (row.subject, row.video, row.onset, row.offset, row.apex) == (
        "s1", "v1", 3 * start, 3 * end, 3 * apex)
    assert row.score == pytest.approx(v.spot[start:end + 1].max())
    assert out.columns.tolist() == ["subject", "video", "onset", "offset", "emotion", "apex",
                                    "score", "vote", "vetoed", "frame_skip"]
    empty = decode_videos([], DecodePriors(), 2)
    assert empty.columns.tolist() == out.columns.tolist() and len(empty) == 0
    with pytest.raises(ValueError) as err:
        decode_videos([_video(spot)], DecodePriors(), None)
    assert str(err.value) == ("k' is needed: set the k_prime prior, or give labels.csv "
                              "(--labels) to estimate it from")
    bad = _video(spot)
    bad.logits = bad.logits[:-1]
    with pytest.raises(ValueError) as err:
        decode_videos([bad], DecodePriors(), 2)
    assert str(err.value) == ("video s1_v1: 29 logit rows for 30 spot scores; re-run prediction "
                              "for this fold")
    with pytest.raises(ValueError, match=r"^video s1_v1 \(subject s1\): k' must be"):
        decode_videos([_video(spot)], DecodePriors(), 0)


def test_apply_veto_renumbers_rows():
    df = pd.DataFrame({"onset": [1, 2, 3], "vetoed": [True, False, False]})
    assert apply_veto(df).index.tolist() == [0, 1]
    assert apply_veto(df).columns.tolist() == ["onset", "vetoed"]


def test_run_decode_log_line_and_mixed_rates(tmp_path, caplog):
    spot = np.zeros(30)
    spot[10:15] = [0.2, 0.6, 1.0, 0.6, 0.2]
    a = write_scores(tmp_path / "a.h5", [_video(spot, "s1")], fold="s1")
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"subject": ["s1", "s2"], "video": ["v1", "v2"], "onset": [0, 0],
                  "offset": [12, 12], "type": "micro", "emotion": "surprise"}).to_csv(
        labels, index=False)
    out = tmp_path / "out.csv"
    with caplog.at_level(logging.INFO, logger="mepkg.decode"):
        run_decode(str(a), out, labels=labels)               # one path, not a list
    # k' from s2 only (s1 is held out): 12 // 3 - 0 = 4 -> k' 2
    messages = [r.getMessage() for r in caplog.records if r.name == "mepkg.decode"]
    assert f"k' = 2 from {labels} (training subjects)" in messages
    n = len(pd.read_csv(out))
    assert f"{out}: {n} intervals in 1 videos (0 vetoed as neutral), k'=2" in messages
    caplog.clear()
    priors = tmp_path / "priors.yaml"
    priors.write_text("k_rule: dataset\n")
    with caplog.at_level(logging.INFO, logger="mepkg.decode"):
        run_decode([a], out, priors_file=priors, labels=labels)
    assert f"k' = 2 from {labels} (all subjects)" in [r.getMessage() for r in caplog.records]
    # a fixed k' in the priors wins over the labels
    priors.write_text("k_prime: 1\n")
    run_decode([a], tmp_path / "k1.csv", priors_file=priors, labels=labels)
    assert pd.read_csv(tmp_path / "k1.csv").onset.tolist() == [
        3 * s for s, _, _ in decode_intervals(spot, 1)]
    b = write_scores(tmp_path / "b.h5", [_video(spot, "s2", skip=7)], fold="s2")
    with pytest.raises(ValueError) as err:
        run_decode([a, b], tmp_path / "mixed.csv", labels=labels)
    assert str(err.value) == (f"scores files [{str(a)!r}, {str(b)!r}] mix frame_skip values "
                              f"[3, 7]; decode one dataset at a time")


# ---------------------------------------------------------------- prior validation
ACCEPTED = [("p", 0.0), ("p", 1.0), ("smooth_factor", 1), ("t1_divisor", 1e-9),
            ("t2_factor", 0.0), ("extend_factor", 0), ("iou_threshold", 1.0),
            ("apex_factor", 0.0), ("k_rule", "dataset"), ("interval", "fixed"),
            ("synergy", 0), ("synergy", 2), ("t1_level", 0.0), ("t2_level", 0.0),
            ("negative_penalty", 0.0), ("non_negative_share", 0.0), ("k_prime", 1),
            ("preset", "")]
REJECTED = [  # (field, value, the message's "expected ...")
    ("p", -0.01, "a number in [0, 1]"), ("p", 1.01, "a number in [0, 1]"),
    ("smooth_factor", 0, "at least 1"), ("t1_divisor", 0.0, "positive"),
    ("t2_factor", -0.1, "non-negative"), ("extend_factor", -1, "non-negative"),
    ("iou_threshold", 0.0, "in (0, 1]"), ("iou_threshold", 1.01, "in (0, 1]"),
    ("apex_factor", -0.5, "non-negative"), ("k_rule", "test", "one of ('train', 'dataset')"),
    ("interval", "wide", "one of ('prior', 'fixed', 'samm_test')"), ("synergy", 3, "one of (0, 1, 2)"),
    ("synergy", True, "one of (0, 1, 2)"), ("t1_level", -1.0, "None or >= 0"),
    ("t2_level", -0.1, "None or >= 0"), ("negative_penalty", -1.0, "non-negative"),
    ("non_negative_share", 1.0, "None or in [0, 1)"),
    ("non_negative_share", -0.1, "None or in [0, 1)"),
    ("k_prime", 0, "None or an integer >= 1"), ("k_prime", 1.5, "None or an integer >= 1"),
    ("k_prime", True, "None or an integer >= 1"),
]


@pytest.mark.parametrize("name, value", ACCEPTED)
def test_prior_boundaries_accepted(name, value):
    assert getattr(DecodePriors(**{name: value}), name) == value


@pytest.mark.parametrize("name, value, expected", REJECTED)
def test_prior_boundaries_rejected_with_the_message(name, value, expected):
    with pytest.raises(ValueError) as err:
        DecodePriors(**{name: value})
    assert str(err.value) == f"decode prior {name}={value!r}: expected {expected}"


def test_unknown_preset_message():
    from mepkg.decode import DECODE_PRESETS

    with pytest.raises(ValueError) as err:
        DecodePriors(preset="megc")
    assert str(err.value) == (f"decode prior preset='megc': expected '' or one of "
                              f"{sorted(DECODE_PRESETS)}")
