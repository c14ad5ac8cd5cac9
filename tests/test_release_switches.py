"""The release's ablation switches and MEGC test-set paths, hand-worked against the authors'
code (zizheng-guo/BoostingVRME at 53bf97464803d6ac05eb89f26436e47edaf09320; docs/method.md
§9, §10). Each case names the authors' lines it follows.

Smoothing with width w = 2k' is numpy's 'same' convolution: for k' = 3 (w = 6)
sm[i] = (s[i-3] + ... + s[i+2]) / 6 (zero outside the curve); find_peaks reports the middle
of a plateau, (left + right) // 2, and never a plateau touching the curve's end.
"""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import two_peak_curve

from mepkg.decode import (DecodePriors, decode_intervals, decode_videos, megc_submission,
                          samm_test_bounds, write_megc_submission)

NEG, POS, SUR, OTH, NEU = range(5)


def logits_for(classes):
    """(n, 5) logits whose per-frame class is ``classes`` under synergy 0, 1 and 2
    (a neutral frame: every emotion -1, neutral 5 -> synergy 2 picks negative)."""
    z = np.zeros((len(classes), 5))
    z[:, NEU] = -5.0
    for i, c in enumerate(classes):
        if c == NEU:
            z[i] = [-1.0, -2.0, -3.0, -4.0, 5.0]
        else:
            z[i, c] = 1.0
    return z


def video(spot, classes, frame_skip=1):
    spot = np.asarray(spot, dtype=np.float64)
    return SimpleNamespace(video_id="s1_v1", subject="s1", video="v1", spot=spot,
                           logits=logits_for(classes), frame_skip=frame_skip)


def rows(out):
    return out[["onset", "offset", "emotion", "vetoed"]].values.tolist()


# ---------------------------------------------------------------- interval: fixed
def bump_at_the_end():
    # n = 19, k' = 3: s = 0.5, 1, 1.5, 1, 0.5 on 14..18.
    # sm[13] = s[10..15]/6 = 1.5/6 = 0.25, sm[14] = 3/6 = 0.5, sm[15] = 4/6, sm[16] =
    # s[13..18] = 4.5/6 = 0.75, sm[17] = s[14..19] = 0.75, sm[18] = s[15..18] = 4/6 -> plateau
    # 16..17 -> peak 16. mean(sm) = (0.083 + 0.25 + 0.5 + 0.667 + 0.75 + 0.75 + 0.667) / 19
    # = 0.193, threshold 0.193 + 0.55 (0.75 - 0.193) = 0.499: one peak.
    s = np.zeros(19)
    s[14:19] = [0.5, 1.0, 1.5, 1.0, 0.5]
    return s


def test_fixed_window_at_the_last_frame_votes_past_the_clipped_end():
    # training_utils.py spotting: the fixed branch appends [peak - k_p, peak + k_p] = [13, 19]
    # unclipped; recognition() slices classes[max(0, 13) + 1 : 19 - 1] = frames 14..17 (18 is
    # the video's last frame + 0: the slice is not cut). Written out: [13, 18] (clipped).
    # classes 14..18 = positive, negative, negative, positive, positive:
    #   the release's span 14..17 = pos, neg, neg, pos: 2 - 2, tie -> first met: positive
    #   (Counter.most_common); a vote over the clipped [13, 18] (14..16) would say negative.
    s = bump_at_the_end()
    classes = [NEG] * 14 + [POS, NEG, NEG, POS, POS]
    assert decode_intervals(s, 3, interval="fixed") == [(13, 18, 16)]
    out = decode_videos([video(s, classes)], DecodePriors(interval="fixed"), 3)
    assert rows(out) == [[13, 18, "positive", False]]


def bump_at_the_first_frame():
    # n = 20, k' = 3: s = 1, 1.5, 1, 0.5 on 0..3.
    # sm[0] = s[0..2]/6 = 3.5/6, sm[1] = s[0..3]/6 = 4/6, sm[2] = sm[3] = 4/6, sm[4] =
    # s[1..6] = 3/6, sm[5] = 1.5/6, sm[6] = 0.5/6 -> plateau 1..3 -> peak 2.
    # mean(sm) = 3.417 / 20 = 0.171, threshold 0.171 + 0.55 (0.667 - 0.171) = 0.444.
    s = np.zeros(20)
    s[0:4] = [1.0, 1.5, 1.0, 0.5]
    return s


def test_fixed_window_at_the_first_frame():
    # [2 - 3, 2 + 3] = [-1, 5]: written [0, 5]; recognition() votes from max(0, -1) + 1 = 1 to
    # 5 - 1 (exclusive): frames 1..3 = surprise, surprise, negative -> surprise.
    s = bump_at_the_first_frame()
    classes = [NEG, SUR, SUR, NEG] + [NEG] * 16
    assert decode_intervals(s, 3, interval="fixed") == [(0, 5, 2)]
    out = decode_videos([video(s, classes)], DecodePriors(interval="fixed"), 3)
    assert rows(out) == [[0, 5, "surprise", False]]


def test_fixed_windows_are_never_suppressed():
    # training_utils.py:110 suppresses only under interval_strategy 1. Fixed windows [21, 27]
    # and [27, 33]: with apex_factor 3 their peaks, 6 apart, are not more than 3 x 3 apart, so
    # suppression would drop the second; the fixed path keeps both, suppression on or off.
    s = two_peak_curve()
    for suppression in (True, False):
        assert decode_intervals(s, 3, interval="fixed", apex_factor=3.0,
                                suppression=suppression) == [(21, 27, 24), (27, 33, 30)]
    # the prior path with the same priors suppresses: both search to (20, 34), apex 22
    assert decode_intervals(s, 3, apex_factor=3.0) == [(20, 34, 22)]


def test_fixed_window_k_prime_1_has_an_empty_vote_span():
    # k' = 1 (w = 2, sm[i] = (s[i-1] + s[i]) / 2): s[5] = 1 -> sm 0.5 on 5..6 -> peak 5;
    # window [4, 6]; recognition(): start 5, end 5 -> start >= end -> no frames -> class 4
    # (neutral), whatever the synergy. Under synergy 2 that neutral is not vetoed (main.py
    # reports the vetoed result under synergy 1 only).
    s = np.zeros(12)
    s[5] = 1.0
    out = decode_videos([video(s, [POS] * 12)], DecodePriors(interval="fixed", synergy=2), 1)
    assert rows(out) == [[4, 6, "neutral", False]]
    out = decode_videos([video(s, [POS] * 12)], DecodePriors(interval="fixed"), 1)
    assert rows(out) == [[4, 6, "neutral", True]]


# ---------------------------------------------------------------- interval: samm_test
def test_samm_test_bounds_at_the_first_frames_and_the_untested_peak_plus_k():
    # n = 30, k' = 3: s = 0.6, 1.2, 1.2, 0.6 on 0..3.
    # sm[0] = s[0..2]/6 = 0.5, sm[1..3] = 3.6/6 = 0.6, sm[4] = s[1..6]/6 = 0.5, sm[5] = 0.3,
    # sm[6] = 0.1, sm[7..] = 0 -> peak 2 (p 0.65: mean 3.2/30 = 0.107, threshold 0.427).
    # training_utils.py:53-84 with levels 0.2 / 0.8: defaults [max(0, -4), min(29, 8)] = [0, 8].
    #   left, near (i = 1, 0): sm[1] = 0.6 >= 0.2; i = 0 fails `i > 0`; far: range(-1, -1) is
    #   empty -> start 0.
    #   right, near (i = 3, 4): 0.6, 0.5 >= 0.2; far from near_end + 1 = 6 (i = 5 = peak + k'
    #   is never tested: 0.3 and 0.1 < 0.8 would have given 6): sm[6] = 0.1, sm[7] = 0 -> end 7.
    #   apex: first maximum of sm on [0, 7] = 1.
    s = np.zeros(30)
    s[0:4] = [0.6, 1.2, 1.2, 0.6]
    sm = np.convolve(s, np.ones(6) / 6, mode="same")
    assert samm_test_bounds(sm, 2, 3, 0.2, 0.8) == (0, 7)
    assert decode_intervals(s, 3, p=0.65, interval="samm_test", t1_level=0.2,
                            t2_level=0.8) == [(0, 7, 1)]


def test_samm_test_bounds_at_the_last_frames():
    # n = 30, k' = 3: s = 0.6, 1.2, 1.2, 0.6 on 25..28, s[29] = 0.
    # sm[29] = s[26..29]/6 = 0.5, sm[26..28] = 0.6, sm[25] = s[22..27]/6 = 0.5, sm[24] = 0.3,
    # sm[23] = 0.1, sm[22] = 0 -> peak 27. Defaults [21, min(29, 33) = 29].
    #   left near (26, 25, 24): 0.6, 0.5, 0.3 >= 0.2; far from 23: sm[23] = 0.1, sm[22] = 0
    #   < 0.8 -> start 23.
    #   right: near_end = min(29, 30) = 29; near i = 28: 0.6 >= 0.2; far: range(30, 29) is
    #   empty -> end 29 (the default, clipped). apex: first maximum of sm on [23, 29] = 26.
    s = np.zeros(30)
    s[25:29] = [0.6, 1.2, 1.2, 0.6]
    assert decode_intervals(s, 3, p=0.65, interval="samm_test", t1_level=0.2,
                            t2_level=0.8) == [(23, 29, 26)]


def test_samm_test_near_level_on_both_sides():
    # n = 30, k' = 3: s[10] = 3, s[12] = -3. sm[i] holds s[10] for i in 8..13 and s[12] for
    # i in 10..15: sm = 0.5 on 8..9, 0 on 10..13, -0.5 on 14..15 -> peak 8 (mean 0,
    # threshold 0.65 x 0.5 = 0.325).
    #   left near from 7: sm[7] = sm[6] = 0 < 0.2 -> start = i = 7.
    #   right near (9, 10): sm[9] = 0.5; sm[10] = sm[11] = 0 < 0.2 -> end = i + 1 = 11.
    s = np.zeros(30)
    s[10], s[12] = 3.0, -3.0
    assert decode_intervals(s, 3, p=0.65, interval="samm_test", t1_level=0.2,
                            t2_level=0.8) == [(7, 11, 8)]


def test_samm_test_needs_its_levels():
    with pytest.raises(ValueError, match="samm_test.*t1_level"):
        DecodePriors(interval="samm_test")
    with pytest.raises(ValueError, match="samm_test"):
        decode_intervals(np.arange(10.0), 2, interval="samm_test")


def test_megc_samm_vote_share_is_the_releases_test():
    # training_utils.py recognition() with strategy 1 (penalty_strategy, train.py:32-38):
    # `len(non_zero) / total > 0.2`. On the plateau of test_decode_variants (k' 6, sampled
    # (23, 38)), the span is frames 24..36 (13 frames). 3 positive frames: 3/13 = 0.23 > 0.2
    # -> the majority of the non-negative ones, positive. 2 positive: 2/13 = 0.15 -> negative.
    # Per-frame class with the penalty (train.py, synergy 1): negative 1.0 - 1 = 0 ties the
    # zeroed neutral and loses nothing: torch.max / argmax take the first, negative.
    s = np.zeros(60)
    s[20:41] = 0.5
    preset = DecodePriors.from_dict({"preset": "megc_samm"})
    three = [NEG] * 30 + [POS] * 3 + [NEG] * 27
    two = [NEG] * 30 + [POS] * 2 + [NEG] * 28
    assert rows(decode_videos([video(s, three)], preset, None)) == [[23, 38, "positive", False]]
    assert rows(decode_videos([video(s, two)], preset, None)) == [[23, 38, "negative", False]]


# ---------------------------------------------------------------- the veto (reporting)
@pytest.mark.parametrize("synergy, drop_neutral, vetoed", [
    (1, None, True), (0, None, False), (2, None, False), (0, True, True), (1, False, False)])
def test_the_veto_follows_the_releases_reporting(synergy, drop_neutral, vetoed):
    # main.py:89-90: the neutral-vetoed result is computed only when synergy_strategy == 1;
    # under 0 and 2 the reported figure keeps neutral-voted intervals. The k' 1 fixed window
    # of test_fixed_window_k_prime_1_has_an_empty_vote_span votes neutral under every synergy.
    s = np.zeros(12)
    s[5] = 1.0
    priors = DecodePriors(interval="fixed", synergy=synergy, drop_neutral=drop_neutral)
    out = decode_videos([video(s, [POS] * 12)], priors, 1)
    assert rows(out) == [[4, 6, "neutral", vetoed]]
    assert priors.veto == vetoed
    with pytest.raises(ValueError, match="drop_neutral"):
        DecodePriors(drop_neutral="yes")


# ---------------------------------------------------------------- megc_casme3
def test_megc_casme3_synergy_2_others_and_the_rows():
    # train.py:32-34 (CASME_test: interval_strategy 0, synergy_strategy 2), load_label.py:120-121
    # (k' 6). n = 40: s = 1, 1.5, 1, 0.5 on 0..3 and s[20] = 6; w = 12, sm[i] = s[i-6..i+5]/12:
    # sm[0..6] = 4/12 (a plateau touching the first frame: no peak), sm[7] = 3/12, sm[8] =
    # 1.5/12, sm[9] = 0.5/12; s[20] gives sm = 0.5 on 15..26 -> peak (15 + 26) // 2 = 20.
    # mean(sm) = (28 + 3 + 1.5 + 0.5 + 72) / 12 / 40 = 0.219, threshold 0.219 + 0.55 (0.5 -
    # 0.219) = 0.373: one peak; window [14, 26], apex 20, not suppressed.
    # Every frame's class: others (3) under synergy 2 -> the vote says others; the release's
    # rows drop it (class >= 3, train.py:378-381); mepkg's rows keep it.
    s = np.zeros(40)
    s[0:4] = [1.0, 1.5, 1.0, 0.5]
    s[20] = 6.0
    preset = DecodePriors.from_dict({"preset": "megc_casme3"})
    out = decode_videos([video(s, [OTH] * 40)], preset, None)
    assert rows(out) == [[14, 26, "others", False]]
    assert megc_submission(out).values.tolist() == [["s1", "v1", 15, 27, "others"]]
    assert megc_submission(out, "release", 1, 6).empty


def test_megc_casme3_window_before_the_first_frame():
    # n = 40, s[i] = i on 0..8, k' 6 (w = 12), sm[i] x 12 = s[i-6..i+5]: 0+..+5 = 15 at 0, 21,
    # 28, then 0+..+8 = 36 on 3..7 (s[9..12] = 0), 35 at 8 -> peak (3 + 7) // 2 = 5, far above
    # the threshold (mean 412 / 480 = 0.858, 0.858 + 0.55 (3 - 0.858) = 2.04 < 3).
    # Window [5 - 6, 5 + 6] = [-1, 11]: written [0, 11]; the vote (synergy 2) over frames
    # max(0, -1) + 1 = 1 .. 11 - 2 = 9: surprise on 1..5, positive on 6..9 -> surprise.
    # The release's rows (train.py:378-381, CAS(ME)^3 numbering): [-1, 11] unclipped.
    s = np.zeros(40)
    s[0:9] = np.arange(9.0)
    classes = [POS] + [SUR] * 5 + [POS] * 34
    preset = DecodePriors.from_dict({"preset": "megc_casme3"})
    out = decode_videos([video(s, classes)], preset, None)
    assert rows(out) == [[0, 11, "surprise", False]]
    assert megc_submission(out).values.tolist() == [["s1", "v1", 1, 12, "surprise"]]
    assert megc_submission(out, "release", 1, 6).values.tolist() == [
        ["s1", "v1", -1, 11, "surprise"]]


# ---------------------------------------------------------------- the submission rows
def decoded_rows(frame_skip):
    # decoded intervals in original 0-based frames (sampled x frame_skip); the last is a fixed
    # window clipped at the first frame: peak 2, k' 6 -> written [0, 8], apex 2.
    f = frame_skip
    return pd.DataFrame({
        "subject": ["s1"] * 5, "video": ["v1"] * 5,
        "onset": [10 * f, 30 * f, 50 * f, 70 * f, 0], "offset": [20 * f, 40 * f, 60 * f, 80 * f,
                                                                  8 * f],
        "emotion": ["negative", "others", "neutral", "neutral", "surprise"],
        "apex": [15 * f, 35 * f, 55 * f, 75 * f, 2 * f], "score": [1.0] * 5, "vote": [1.0] * 5,
        "vetoed": [False, False, True, False, False]})


def test_submission_default_rows_one_based_others_kept():
    sub = megc_submission(decoded_rows(7))
    # vetoed row dropped; `others` and the unvetoed neutral kept; 0-based + 1
    assert sub.values.tolist() == [["s1", "v1", 71, 141, "negative"],
                                   ["s1", "v1", 211, 281, "others"],
                                   ["s1", "v1", 491, 561, "neutral"],
                                   ["s1", "v1", 1, 57, "surprise"]]


def test_submission_release_rows_samm_numbering():
    # train.py:358-361: every class >= 3 skipped (others, neutral, vetoed or not); frames
    # x * 7 - 7 + 1 of the sampled index x (load_images.py:71-75 keeps frames 0, 7, 14, ...,
    # so this is one sample early): 10 -> 64, 20 -> 134; the window clipped at 0 -> -6.
    sub = megc_submission(decoded_rows(7), "release", 7)
    assert sub.values.tolist() == [["s1", "v1", 64, 134, "negative"],
                                   ["s1", "v1", -6, 50, "surprise"]]


def test_submission_release_rows_casme3_unclipped_fixed_windows(tmp_path):
    # train.py:378-381: the 0-based sampled index as is; fixed windows unclipped: the last row
    # is peak 2 -+ 6 = [-4, 8]; the others [apex - 6, apex + 6].
    sub = megc_submission(decoded_rows(1), "release", 1, fixed_k_prime=6)
    assert sub.values.tolist() == [["s1", "v1", 9, 21, "negative"],
                                   ["s1", "v1", -4, 8, "surprise"]]
    # through the writer: the priors choose the rows, k' from the preset
    src = tmp_path / "pred.csv"
    decoded_rows(1).to_csv(src, index=False)
    write_megc_submission(src, tmp_path / "sub.csv",
                          {**DecodePriors().to_dict(), "preset": "megc_casme3",
                           "submission": "release"}, frame_skip=1)
    back = pd.read_csv(tmp_path / "sub.csv", dtype={"subject": str, "video": str})
    assert back.values.tolist() == sub.values.tolist()
    # a fixed window without one k' cannot be unclipped
    with pytest.raises(ValueError, match="k_prime"):
        write_megc_submission(src, tmp_path / "x.csv",
                              DecodePriors(interval="fixed", submission="release"))
    # frames not on the sampled grid: the wrong frame_skip
    with pytest.raises(ValueError, match="frame_skip 7"):
        megc_submission(decoded_rows(1), "release", 7)


def test_submission_release_rows_take_each_rows_frame_skip_column():
    # predictions.csv carries the frame_skip each interval was decoded at: the release's
    # rows convert with it (the artefact's rate, not a config value)
    rows = pd.concat([decoded_rows(7).assign(frame_skip=7),
                      decoded_rows(1).assign(frame_skip=1, video="v2")], ignore_index=True)
    sub = megc_submission(rows, "release")
    assert sub.values.tolist() == [["s1", "v1", 64, 134, "negative"],
                                   ["s1", "v1", -6, 50, "surprise"],
                                   ["s1", "v2", 10, 20, "negative"],
                                   ["s1", "v2", 0, 8, "surprise"]]
    with pytest.raises(ValueError, match="frame_skip column"):
        megc_submission(decoded_rows(7), "release")
