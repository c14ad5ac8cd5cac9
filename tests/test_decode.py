"""Prior-guided decoding (docs/method.md §6): every step on hand-built curves with hand-computed answers."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy.signal import find_peaks

from mepkg.decode import (DecodePriors, decode_intervals, decode_videos,
                          detect_peaks, estimate_k_prime, frame_classes, k_prime_from_labels,
                          onset_offset, read_priors, recognise, run_decode, segment_iou, smooth,
                          suppress)
from mepkg.h5io import VideoScores, write_scores
from mepkg.intervals import apply_veto

from conftest import fixture_path, needs_fixture  # noqa: E402

CASME3_SHEET = fixture_path("casme3", "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx")


# ---------------------------------------------------------------- priors
def test_priors_defaults_are_the_papers():
    pr = DecodePriors()
    assert (pr.p, pr.smooth_factor, pr.t1_divisor, pr.t2_factor, pr.extend_factor,
            pr.iou_threshold, pr.apex_factor, pr.veto, pr.k_rule) == (
        0.55, 2, 1.5, 1.0, 5, 0.2, 1.0, True, "train")


def test_priors_reject_bad_values_and_unknown_keys(tmp_path):
    with pytest.raises(ValueError, match="p=1.5"):
        DecodePriors(p=1.5)
    with pytest.raises(ValueError, match="k_rule"):
        DecodePriors(k_rule="test")
    path = tmp_path / "priors.yaml"
    path.write_text("p: 0.5\nthreshold: 3\n")
    with pytest.raises(ValueError, match=r"priors.yaml: unknown decode prior\(s\) \['threshold'\]"):
        read_priors(path)
    path.write_text("p: 0.4\nk_prime: 6\ndrop_neutral: false\n")
    priors, k_p = read_priors(path)
    assert (priors.p, priors.drop_neutral, k_p) == (0.4, False, 6)


# ---------------------------------------------------------------- k'
def test_estimate_k_prime_median_rule():
    # sorted [2, 4, 6, 8], median = list[4 // 2] = 6 -> (6 + 1) // 2 = 3
    assert estimate_k_prime([8, 2, 6, 4]) == 3
    # [1, 2, 3] -> list[1] = 2 -> 1;  [10] -> 5;  [21] -> 11
    assert estimate_k_prime([3, 1, 2]) == 1
    assert estimate_k_prime([10]) == 5
    assert estimate_k_prime([21]) == 11
    assert estimate_k_prime([0]) == 1          # clamped: k' >= 1
    with pytest.raises(ValueError, match="no micro-expression durations"):
        estimate_k_prime([])


def test_k_prime_from_labels_sampled_durations_training_subjects():
    labels = pd.DataFrame({
        "subject": ["a", "a", "b", "b", "c"],
        "onset":  [0,   6,  10,  0,  0],
        "offset": [70, 20, 150, 300, 28],
        "type": ["micro", "micro", "micro", "macro", "micro"],
    })
    # frame_skip 7, sampled durations: 70//7-0 = 10, 20//7-6//7 = 2-0 = 2,
    # 150//7-10//7 = 21-1 = 20, 28//7 = 4 (the macro row is ignored)
    # all: sorted [2, 4, 10, 20] -> 10 -> 5
    assert k_prime_from_labels(labels, 7) == 5
    # training subjects a, c: [2, 4, 10] -> 4 -> 2
    assert k_prime_from_labels(labels, 7, subjects=["a", "c"]) == 2


@needs_fixture("casme3", "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx")
def test_k_prime_on_real_casme3_sheet_is_the_references_11():
    sheet = pd.read_excel(CASME3_SHEET)
    ok = (sheet.Offset > 0) & (sheet.Onset <= sheet.Offset)
    labels = pd.DataFrame({"subject": sheet.Subject, "onset": sheet.Onset - 1,
                           "offset": sheet.Offset - 1})[ok]
    assert k_prime_from_labels(labels, frame_skip=1) == 11


# ---------------------------------------------------------------- step 1: smoothing
def test_smooth_is_a_same_length_moving_average():
    # width 2: sm[i] = (s[i-1] + s[i]) / 2 with zero padding
    np.testing.assert_allclose(smooth(np.array([0, 0, 6, 0, 0.]), 2), [0, 0, 3, 3, 0])
    rng = np.random.default_rng(0)
    s = rng.random(50)
    for width in (1, 2, 3, 12):
        np.testing.assert_allclose(smooth(s, width),
                                   np.convolve(s, np.ones(width) / width, mode="same"))


def test_smooth_of_a_curve_shorter_than_the_width_keeps_its_length():
    # full convolution of [1, 2] with [.25] * 4 = [.25, .75, .75, .75, .5]; centred slice from 1
    np.testing.assert_allclose(smooth(np.array([1.0, 2.0]), 4), [0.75, 0.75])


# ---------------------------------------------------------------- steps 2-3: threshold and peaks
def test_threshold_is_mean_plus_p_of_the_range_of_the_smoothed_curve():
    s = np.array([0, 4, 4, 0, 0, 0, 2, 2, 0, 0.])
    # k' = 1, width 2: sm = [0, 2, 4, 2, 0, 0, 1, 2, 1, 0], mean 1.2, max 4
    peaks, sm, thr = detect_peaks(s, 1, p=0.55)
    np.testing.assert_allclose(sm, [0, 2, 4, 2, 0, 0, 1, 2, 1, 0])
    assert thr == pytest.approx(1.2 + 0.55 * 2.8)        # 2.74: only the big bump
    assert peaks.tolist() == [2]
    peaks, _, thr = detect_peaks(s, 1, p=0.25)
    assert thr == pytest.approx(1.9)                     # both bumps
    assert peaks.tolist() == [2, 7]


def test_peaks_closer_than_k_prime_keep_the_higher_one():
    s = np.zeros(24)
    s[[7, 9, 12]] = 6
    s[14] = 12
    # k' = 3, width 6: sm[i] = sum(s[i-3 .. i+2]) / 6
    peaks, sm, thr = detect_peaks(s, 3)
    np.testing.assert_allclose(sm[4:19], [0, 1, 1, 2, 2, 2, 3, 2, 4, 3, 3, 3, 2, 2, 0])
    assert thr == pytest.approx(1.25 + 0.55 * (4 - 1.25))   # sum 30 / 24 = 1.25
    assert find_peaks(sm, height=thr)[0].tolist() == [10, 12]  # 2 apart ...
    assert peaks.tolist() == [12]                              # ... < k' = 3: one survives


# ---------------------------------------------------------------- step 4: onset, offset, extensions
S4 = np.array([0, 0, 0, 1, 2, 4, 2, 4, 1, 5, 9, 5, 1, 4, 2, 4, 2, 2, 0, 0, 0.])


def test_onset_offset_search_without_extension():
    # k' = 2, peak 10: l0 = 8, r0 = 12; s[9] = 5 > s[8] and > t1 -> start 8;
    # s[11] = 5 > s[12] and > t1 -> end 12. extend_factor 1: walks are empty.
    assert onset_offset(S4, 10, 2, t1=2, t2=3, extend_factor=1) == (8, 12)
    # extend_factor 2: left walk i = 7, 6 finds no two frames below t2 -> unchanged
    assert onset_offset(S4, 10, 2, t1=2, t2=3, extend_factor=2) == (8, 12)


def test_onset_offset_falls_back_to_the_window_edges():
    s = np.array([0, 0, 1, 1, 1, 4, 9, 4, 1, 1, 1, 0, 0.])
    # k' = 4, peak 6: l0 = 2, r0 = 10; rises at i = 5 (4 > 1, > t1 = 2) -> start 4,
    # fall at i = 7 -> end 8
    assert onset_offset(s, 6, 4, t1=2, t2=0, extend_factor=0) == (4, 8)
    # t1 = 5: no rise above it before the peak -> l0, r0
    assert onset_offset(s, 6, 4, t1=5, t2=0, extend_factor=0) == (2, 10)


def test_both_extensions_skip_single_dips_and_stop_at_two_frames_below_t2():
    # left walk from 7: s[6] = 2 < 3 but s[5] = 4; s[4] = 2 and s[3] = 1 < 3 -> start 5
    # right walk from 13: s[14] = 2 but s[15] = 4; s[16], s[17] = 2 < 3 -> end 15
    assert onset_offset(S4, 10, 2, t1=2, t2=3, extend_factor=5) == (5, 15)


def test_extensions_never_stop_at_the_first_or_last_frame():
    s = np.array([1, 1, 5, 5, 9, 5, 5, 1, 1.])
    # k' = 1, peak 4: start 3, end 5; left walk: i = 2 (5), i = 1 (1 < 3, s[0] = 1 < 3)
    # -> start 2; right: j = 6 (5), j = 7 (1, s[8] = 1) -> end 6
    assert onset_offset(s, 4, 1, t1=0.5, t2=3, extend_factor=5) == (2, 6)
    s = np.array([1, 5, 5, 9, 5, 5, 1.])
    # left walk reaches i = 0 (only i > 0 may stop it) and i = 1 (5): unchanged 2;
    # right walk reaches j = 6 = n - 1 (only j < n - 1): unchanged 4
    assert onset_offset(s, 3, 1, t1=0.5, t2=3, extend_factor=5) == (2, 4)


# ---------------------------------------------------------------- step 5: suppression
def test_segment_iou_uses_lengths_end_minus_start():
    assert segment_iou((0, 10), (8, 20)) == pytest.approx(2 / 20)
    assert segment_iou((0, 10), (6, 16)) == pytest.approx(4 / 16)
    assert segment_iou((5, 5), (5, 5)) == 0.0


def test_suppression_by_iou_sorted_by_start():
    cands = [(6, 16, 14), (8, 20, 15), (0, 10, 5)]
    # sorted: (0,10) kept; (6,16): IoU 4/16 = 0.25 >= 0.2 -> dropped;
    # (8,20): IoU 2/20 = 0.1 with (0,10), apexes 10 apart -> kept
    assert suppress(cands, k_p=2) == [(0, 10, 5), (8, 20, 15)]
    assert suppress(cands, k_p=2, iou_threshold=0.3) == [(0, 10, 5), (6, 16, 14)]


def test_suppression_by_apex_distance():
    # IoU 0, apexes 2 apart: not more than k' = 2 -> dropped; 3 apart -> kept
    assert suppress([(0, 10, 9), (12, 20, 11)], k_p=2) == [(0, 10, 9)]
    assert suppress([(0, 10, 9), (12, 20, 12)], k_p=2) == [(0, 10, 9), (12, 20, 12)]


# ---------------------------------------------------------------- steps 1-5 together
def test_decode_intervals_end_to_end_by_hand():
    s = [0] * 6 + [6, 6] + [0] * 6
    # k' = 1: sm = [0]*6 + [3, 6, 3] + [0]*5, thr = 6/7 + 0.55 (6 - 6/7) -> peak 7;
    # l0 = 6, r0 = 8, no frame in between -> (6, 8); both extensions stop at once;
    # apex = first max of s[6..8] = 6
    assert decode_intervals(s, 1) == [(6, 8, 6)]


def test_flat_empty_and_short_curves_give_no_intervals():
    assert decode_intervals(np.zeros(100), 3) == []
    assert decode_intervals(np.full(100, 0.7), 3) == []
    assert decode_intervals(np.array([]), 3) == []
    for curve in ([0.5], [0.0, 1.0], [0.0, 4.0, 0.0], [6, 0, 0, 0, 0.]):
        assert decode_intervals(curve, 3) == []          # shorter than 2k' = 6: no crash


def test_decode_intervals_validates_its_input():
    with pytest.raises(ValueError, match="not finite at sampled frame 2"):
        decode_intervals([0.1, 0.2, np.nan, 0.3], 1)
    with pytest.raises(ValueError, match="1-D"):
        decode_intervals(np.zeros((3, 2)), 1)
    with pytest.raises(ValueError, match="k' must be an integer >= 1"):
        decode_intervals(np.zeros(10), 0)


# ---------------------------------------------------------------- step 6: recognition
def test_frame_classes_zeroes_the_neutral_logit_then_argmax():
    logits = np.array([[1, 2, 0, 0, 5], [-1, -2, -3, -4, 5], [0.5, 0, 0, 0, -9.]])
    assert frame_classes(logits).tolist() == [1, 4, 0]
    assert logits[0, 4] == 5                             # the input is not modified
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        frame_classes(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="not finite at sampled frame 1"):
        frame_classes(np.array([[0, 0, 0, 0, 0], [0, np.nan, 0, 0, 0.]]))


def test_recognise_majority_ties_and_empty_spans():
    # span = frames start+1 .. end-2
    assert recognise(np.array([3, 1, 0, 0, 1, 3]), 0, 5) == (0, pytest.approx(2 / 3))
    # tie 0 vs 1 in [0, 0, 1, 1]: 0 is met first
    assert recognise(np.array([3, 0, 0, 1, 1, 2, 3]), 0, 6) == (0, 0.5)
    # tie 2 vs 1 in [2, 1, 1, 2]: 2 is met first
    assert recognise(np.array([4, 2, 1, 1, 2, 4, 4]), 0, 6) == (2, 0.5)
    # end - start <= 2: no frame votes -> neutral
    assert recognise(np.array([0, 0, 0, 0]), 1, 3) == (4, 0.0)
    assert recognise(np.array([0, 0, 0, 0]), 1, 1) == (4, 0.0)


# ---------------------------------------------------------------- step 7: videos and the stage
def _video(subject="006", video="006_1", cls=1, skip=7):
    spot = np.zeros(40, np.float32)
    spot[10:18] = [0.2, 0.5, 0.8, 1.0, 0.9, 0.6, 0.3, 0.1]
    logits = np.zeros((40, 5), np.float32)
    logits[:, cls] = 3.0 if cls != 4 else 0.0
    if cls == 4:
        logits[:, :4] = -1.0                      # every emotion logit below the neutral 0
    return VideoScores(video_id=video, subject=subject, video=video, spot=spot, logits=logits,
                       frame_skip=skip, k=30)


def test_decode_videos_writes_original_frames_and_the_veto_flag():
    k_p = 2
    ((start, end, apex),) = decode_intervals(_video().spot, k_p)
    df = decode_videos([_video(), _video("007", "007_2", cls=4)], DecodePriors(), k_p)
    assert df.columns.tolist() == ["subject", "video", "onset", "offset", "emotion",
                                   "apex", "score", "vote", "vetoed", "frame_skip"]
    assert df.onset.tolist() == [start * 7, start * 7]
    assert df.offset.tolist() == [end * 7, end * 7]
    assert df.apex.tolist() == [apex * 7, apex * 7] and apex == 13
    assert df.emotion.tolist() == ["positive", "neutral"]
    assert df.score.tolist() == [pytest.approx(1.0)] * 2 and df.vote.tolist() == [1.0, 1.0]
    assert df.vetoed.tolist() == [False, True]
    assert apply_veto(df).video.tolist() == ["006_1"]
    assert df.frame_skip.tolist() == [7, 7]              # the sampling release scoring converts at
    kept = decode_videos([_video("007", "007_2", cls=4)], DecodePriors(drop_neutral=False), k_p)
    assert kept.emotion.tolist() == ["neutral"] and kept.vetoed.tolist() == [False]


def test_decode_videos_names_the_video_with_a_bad_curve():
    v = _video()
    v.spot[5] = np.inf
    with pytest.raises(ValueError, match="video 006_1 .*sampled frame 5"):
        decode_videos([v], DecodePriors(), 2)


def test_run_decode_k_prime_from_training_subjects_or_the_whole_dataset(tmp_path):
    scores = write_scores(tmp_path / "scores.h5", [_video()], fold="006")
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"subject": ["006", "006", "008", "009"],
                  "video": ["006_1", "006_1", "008_1", "009_1"],
                  "onset": [0, 0, 0, 0], "offset": [140, 140, 28, 28],
                  "type": ["micro"] * 4, "emotion": ["positive"] * 4}).to_csv(labels, index=False)
    spot = _video().spot

    def frames(df):             # (onset, offset) in original frames
        return list(zip(df.onset, df.offset))

    def expected(k_p):
        return [(7 * s, 7 * e) for s, e, _ in decode_intervals(spot, k_p)]

    # on this curve k' = 2, 4 and 10 each give other intervals: (10, 16), (10, 18), (9, 18)
    assert len({tuple(expected(k)) for k in (2, 4, 10)}) == 3
    # training subjects 008, 009: sampled durations [4, 4] -> median 4 -> k' = 2
    train = pd.read_csv(run_decode([scores], tmp_path / "train.csv", labels=labels))
    assert frames(train) == expected(2) == [(70, 112)]
    # the release's rule also sees the held-out 006: [4, 4, 20, 20] -> 20 -> k' = 10
    priors = tmp_path / "priors.yaml"
    priors.write_text("k_rule: dataset\n")
    leak = pd.read_csv(run_decode([scores], tmp_path / "leak.csv", priors_file=priors,
                                  labels=labels))
    assert frames(leak) == expected(10) == [(63, 126)]
    # k_prime in the priors file overrides the labels
    priors.write_text("k_prime: 4\n")
    four = pd.read_csv(run_decode([scores], tmp_path / "k4.csv", priors_file=priors,
                                  labels=labels))
    assert frames(four) == expected(4) == [(70, 126)]
    with pytest.raises(ValueError, match="k' is needed"):
        run_decode([scores], tmp_path / "none.csv")
    assert not (tmp_path / "none.csv").exists()


def test_fold_k_primes_train_rule_leaves_the_held_out_subject_out():
    from mepkg.decode import fold_k_primes

    labels = pd.DataFrame({"subject": ["a", "a", "b", "c"], "type": "micro",
                           "onset": [0, 0, 0, 0], "offset": [4, 4, 20, 20]})
    # fold a trains on b, c: durations [20, 20] -> k' = (20 + 1) // 2 = 10
    # fold b trains on a, c: sorted [4, 4, 20][1] = 4 -> k' = 2
    assert fold_k_primes(labels, 1, ["a", "b"], DecodePriors(k_rule="train")) == {"a": 10, "b": 2}
    # the release's rule: every subject, sorted [4, 4, 20, 20][2] = 20 -> 10, for every fold
    assert fold_k_primes(labels, 1, ["a", "b"], DecodePriors(k_rule="dataset")) == {"a": 10,
                                                                                     "b": 10}
    # a fixed k' (a preset, a priors file) wins over the labels for every fold
    assert fold_k_primes(labels, 1, ["a", "b"], DecodePriors(k_prime=6)) == {"a": 6, "b": 6}


def test_resolve_k_prime_order_fixed_given_labels():
    from mepkg.decode import resolve_k_prime

    labels = pd.DataFrame({"subject": ["a", "b"], "type": "micro", "onset": [0, 0],
                           "offset": [4, 20]})
    assert resolve_k_prime(DecodePriors(k_prime=6), 3, labels, 1) == 6
    assert resolve_k_prime(DecodePriors(), 3, labels, 1) == 3
    # train: the held-out subject's ME does not count; sorted [20][0] -> (20 + 1) // 2 = 10
    assert resolve_k_prime(DecodePriors(), labels=labels, frame_skip=1, held_out=["a"]) == 10
    # dataset: every subject; sorted [4, 20][1] = 20 -> 10; sampled at frame_skip 2: 10 -> 5
    assert resolve_k_prime(DecodePriors(k_rule="dataset"), labels=labels, frame_skip=2,
                           held_out=["b"]) == 5
    with pytest.raises(ValueError, match="k' is needed"):
        resolve_k_prime(DecodePriors())


def test_decode_priors_of_a_mapping_or_none():
    assert DecodePriors.of(None) == DecodePriors()
    priors = DecodePriors(p=0.3)
    assert DecodePriors.of(priors) is priors
    assert DecodePriors.of({"preset": "megc_casme3"}).k_prime == 6      # the preset applied
    with pytest.raises(ValueError, match="model.pt: unknown decode prior"):
        DecodePriors.of({"q": 1}, source="model.pt")
