"""The release's ablation switches and MEGC test-set presets (docs/method.md §9),
each with its expected intervals worked out by hand.

Smoothing (docs/method.md §6.1) with width w = 2k' is numpy's 'same' convolution:
sm[i] = (1/w) * sum(s[i - (w - 1 - (w-1)//2) .. i + (w-1)//2]); for k' = 3 (w = 6) that is
sm[i] = (s[i-3] + ... + s[i+2]) / 6. find_peaks reports the middle of a plateau,
(left + right) // 2.
"""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import two_peak_curve

from mepkg.decode import (DECODE_PRESETS, DecodePriors, apply_preset, decode_intervals,
                          decode_videos, frame_classes, megc_submission, read_priors,
                          recognise, run_decode, write_megc_submission)
from mepkg.constants import CLASS_NAMES

NEG, POS, SUR, OTH, NEU = range(5)


def plateau(value=1.0, n=60, lo=20, hi=40):
    s = np.zeros(n)
    s[lo:hi + 1] = value
    return s


def video(spot, logits=None, frame_skip=1, subject="s1", name="v1"):
    spot = np.asarray(spot, dtype=np.float64)
    if logits is None:
        logits = np.tile([1.0, 0.5, 0.0, 0.0, -5.0], (len(spot), 1))
    return SimpleNamespace(video_id=f"{subject}_{name}", subject=subject, video=name, spot=spot,
                           logits=np.asarray(logits, dtype=np.float64), frame_skip=frame_skip)


# ---------------------------------------------------------------- interval strategy (§9.1)
def test_interval_prior_vs_fixed_on_a_wide_plateau():
    # s = 1 on frames 20..40 of 60, k' = 3. sm = 1 where [i-3, i+2] lies in [20, 40]: i in
    # 23..38, less on either side -> one peak at (23 + 38) // 2 = 30. Threshold: mean(sm) =
    # 21/60 = 0.35, 0.35 + 0.55 (1 - 0.35) = 0.7075 < 1.
    # fixed: [30 - 3, 30 + 3] = [27, 33], apex = the peak 30 (training_utils.py: the fixed
    # branch records [peak - k_p, peak + k_p] with the peak).
    # prior: m = 0.35, t1 = 0.233, t2 = 0.35; l0 = 27, r0 = 33; no rise/fall inside (flat)
    #   -> start 27, end 33; extend left from 26: first i with s[i], s[i-1] < t2 is 19 ->
    #   start 20; extend right from 34: first j with s[j], s[j+1] < t2 is 41 -> end 40.
    #   apex = first maximum on [20, 40] = 20.
    s = plateau()
    assert decode_intervals(s, 3, interval="prior") == [(20, 40, 20)]
    assert decode_intervals(s, 3, interval="fixed") == [(27, 33, 30)]
    with pytest.raises(ValueError, match="interval"):
        decode_intervals(s, 3, interval="window")


def test_interval_fixed_clips_at_the_curve_ends():
    # s = 1 on 0..4 of 20, k' = 3, zero padding outside: sm[0] = s[0..2]/6 = 3/6,
    # sm[1] = 4/6, sm[2] = s[0..4]/6 = 5/6, sm[3] = s[0..5]/6 = 5/6, sm[4] = 4/6 -> plateau
    # 2..3 -> peak (2 + 3) // 2 = 2. Fixed window [2 - 3, 2 + 3] clipped to [0, 5], apex 2.
    s = np.zeros(20)
    s[:5] = 1.0
    assert decode_intervals(s, 3, interval="fixed") == [(0, 5, 2)]


# ---------------------------------------------------------------- synergy (§9.2)
def test_synergy_levels_per_frame_class():
    # row 0: logits neg 1.0, pos 0.5, sur 0.2, oth 0.1, neu 2.0
    #   synergy 1: neutral -> 0, argmax(1.0, 0.5, 0.2, 0.1, 0) = negative
    #   synergy 0: argmax of the raw logits = neutral (2.0)
    #   synergy 2: argmax over the 4 emotions = negative
    # row 1: -1, -2, -3, -4, 5
    #   synergy 1: argmax(-1, -2, -3, -4, 0) = neutral; 0: neutral; 2: negative
    logits = np.array([[1.0, 0.5, 0.2, 0.1, 2.0], [-1.0, -2.0, -3.0, -4.0, 5.0]])
    assert frame_classes(logits).tolist() == [NEG, NEU]
    assert frame_classes(logits, synergy=1).tolist() == [NEG, NEU]
    assert frame_classes(logits, synergy=0).tolist() == [NEU, NEU]
    assert frame_classes(logits, synergy=2).tolist() == [NEG, NEG]
    with pytest.raises(ValueError, match="synergy"):
        frame_classes(logits, synergy=3)
    with pytest.raises(ValueError, match="synergy"):
        DecodePriors(synergy=5)


def test_synergy_2_never_vetoes():
    # The plateau curve gives (20, 40); every frame's logits are (-1, -2, -3, -4, 5):
    # synergy 1 votes neutral on every frame -> vetoed; synergy 2 votes negative -> kept.
    s = plateau()
    logits = np.tile([-1.0, -2.0, -3.0, -4.0, 5.0], (len(s), 1))
    default = decode_videos([video(s, logits)], DecodePriors(), 3)
    assert default[["onset", "offset", "emotion", "vetoed"]].values.tolist() == [
        [20, 40, "neutral", True]]
    no_veto = decode_videos([video(s, logits)], DecodePriors(synergy=2), 3)
    assert no_veto[["emotion", "vetoed"]].values.tolist() == [["negative", False]]


def test_synergy_0_training_half_is_a_zero_neutral_class_weight():
    # train.neutral_factor 0 (docs/method.md §9.2): targets 3 x negative, 1 x neutral:
    # balanced n / (5 count): negative 4 / 15, neutral 4 / 5 x 0 = 0; absent classes 0.
    from mepkg.targets import class_weights
    from mepkg.train import TrainConfig, fold_loss

    w = class_weights(np.array([NEG, NEG, NEG, NEU]), neutral_factor=0.0)
    assert w.tolist() == pytest.approx([4 / 15, 0, 0, 0, 0])
    # a batch of neutral frames only gives a finite CE of 0 (mean over frames, not over weights)
    cls = torch.full((1, 4), NEU)
    _, _, ce = fold_loss(torch.zeros(1, 4), torch.zeros(1, 4, 5), torch.zeros(1, 4), cls,
                         torch.as_tensor(w), TrainConfig())
    assert float(ce) == 0.0


# ---------------------------------------------------------------- MEGC SAMM preset (§9.3)
def test_negative_penalty_moves_the_frame_class():
    # (1.0, 0.5, 0, 0, -5): synergy 1 -> negative; negative - 1 = 0.0 < positive 0.5 -> positive
    logits = np.array([[1.0, 0.5, 0.0, 0.0, -5.0]])
    assert frame_classes(logits).tolist() == [NEG]
    assert frame_classes(logits, negative_penalty=1.0).tolist() == [POS]


def test_non_negative_share_vote():
    # span = classes[start+1 .. end-2] = classes[1..9] for start 0, end 11 (9 frames)
    # 7 negative + 2 positive: non-negative share 2/9 = 0.22 > 0.2 -> majority of the
    #   non-negative frames = positive, vote 2/9; the plain vote is negative 7/9.
    # 8 negative + 1 surprise: 1/9 = 0.11 <= 0.2 -> negative, vote 8/9.
    a = np.array([9] + [NEG] * 7 + [POS] * 2 + [9, 9])      # 9: outside the span
    a = np.where(a == 9, NEU, a)
    assert recognise(a, 0, 11) == (NEG, pytest.approx(7 / 9))
    assert recognise(a, 0, 11, non_negative_share=0.2) == (POS, pytest.approx(2 / 9))
    b = np.array([NEU] + [NEG] * 8 + [SUR] + [NEU, NEU])
    assert recognise(b, 0, 11, non_negative_share=0.2) == (NEG, pytest.approx(8 / 9))
    # neutral frames count as non-negative: 4 neutral + 5 negative -> 4/9 > 0.2 -> neutral
    c = np.array([NEU] + [NEG] * 5 + [NEU] * 4 + [NEU, NEU])
    assert recognise(c, 0, 11, non_negative_share=0.2) == (NEU, pytest.approx(4 / 9))


def test_fixed_levels_change_the_boundary_search():
    # s = 0.5 on 20..40 of 60, k' = 3: peak 30 as in the plateau test (p 0.65: mean(sm) =
    # 10.5/60 = 0.175, threshold 0.175 + 0.65 (0.5 - 0.175) = 0.386 < 0.5).
    # mean levels t1 = 0.117, t2 = 0.175: the walks stop at the zeros -> (20, 40, 20).
    # fixed t1 0.2, t2 0.8: start/end search finds no rise/fall (flat) -> 27 / 33; extend left
    # from 26: s[26] = 0.5 < 0.8 and s[25] < 0.8 -> start = 27; right from 34: end = 33.
    s = plateau(0.5)
    assert decode_intervals(s, 3, p=0.65) == [(20, 40, 20)]
    assert decode_intervals(s, 3, p=0.65, t1_level=0.2, t2_level=0.8) == [(27, 33, 27)]


def test_suppression_switch():
    # k' = 3: sm[i] = (s[i-3..i+2]) / 6. Inside: 0.5 base; spike 22 adds 0.5/6 for i in 20..25,
    # spike 31 for i in 29..34. sm: 22 -> 3.0/6, 23..25 -> 3.5/6, 26..28 -> 3.0/6, 29..32 ->
    # 3.5/6, 33 -> 3.0/6 -> peaks (23+25)//2 = 24 and (29+32)//2 = 30, 6 >= k' apart.
    # Threshold: mean(sm) = 8.5/60 = 0.142, 0.142 + 0.55 (0.583 - 0.142) = 0.385 < 0.583.
    # Raw mean m = 8.5/60: t1 = 0.094, t2 = 0.142.
    # peak 24: l0 21, r0 27; rise at 22 (1 > 0.5) -> start 21; no fall on 26..25 -> end 27;
    #   extend left: 19 and 18 are 0 < t2 -> start 20; right: 35, 36 are 0 -> end 34.
    # peak 30: l0 27, r0 33; no rise on 28..29 -> start 27; fall at 31 (1 > 0.5) -> end 32;
    #   extend left -> 20, right -> 34.
    # Both (20, 34), apex = first maximum on 20..34 = 22. With suppression the second has
    # IoU 1 >= 0.2 with the first and is dropped; without it both stay.
    s = two_peak_curve()
    assert decode_intervals(s, 3) == [(20, 34, 22)]
    assert decode_intervals(s, 3, suppression=False) == [(20, 34, 22), (20, 34, 22)]


def samm_plateau_k6():
    # s = 0.5 on 20..40 of 60 with k' = 6 (w = 12): sm[i] = s[i-6..i+5] / 12 = 0.5 on
    # 26..35, 0.5 x 11/12 = 0.458 at 25 and 36, 0.417 at 24 and 37, ... -> peak 30. p 0.65:
    # mean(sm) = 0.175, threshold 0.175 + 0.65 (0.5 - 0.175) = 0.386.
    # samm_test (training_utils.py:53-84): defaults 30 -+ 12 = [18, 42]; no pair below 0.2
    # on 29..24 nor on 31..35 (all >= 0.417); below 0.8 (every value): left from 23 ->
    # start 23; right from 37 (36 = peak + k' is never tested) -> end 37 + 1 = 38.
    # apex: first maximum of sm on [23, 38] = 26.
    return plateau(0.5)


def test_megc_samm_preset_end_to_end():
    # megc_samm on the 0.5 plateau (above): (23, 38); the logits (1.0, 0.5, 0, 0, -5) on
    # every frame vote negative by default and positive with the -1 penalty (every frame
    # positive: non-negative share 1 > 0.2 -> positive). k' 6 whatever k_p is given.
    # default priors: (20, 40) negative. frame_skip 7 -> original x 7.
    s = samm_plateau_k6()
    preset = DecodePriors.from_dict({"preset": "megc_samm"})
    assert (preset.p, preset.interval, preset.t1_level, preset.t2_level, preset.synergy,
            preset.negative_penalty, preset.non_negative_share, preset.k_prime) == (
        0.65, "samm_test", 0.2, 0.8, 1, 1.0, 0.2, 6)
    out = decode_videos([video(s, frame_skip=7)], preset, 3)
    assert out[["onset", "offset", "apex", "emotion"]].values.tolist() == [
        [23 * 7, 38 * 7, 26 * 7, "positive"]]
    base = decode_videos([video(s, frame_skip=7)], DecodePriors(), 3)
    assert base[["onset", "offset", "emotion"]].values.tolist() == [[140, 280, "negative"]]


def test_megc_casme3_preset_fixes_k_prime_and_windows():
    # megc_casme3 (train.py:32-34 for CASME_test, load_label.py:120-121): interval fixed,
    # synergy 2, k' = 6 whatever k_p is passed (3 here).
    # s = 1 on 20..40: w = 12, sm[i] = s[i-6..i+5] / 12 = 1 for i in 26..35 -> peak 30;
    # window [24, 36], apex = the peak 30.
    preset = DecodePriors.from_dict({"preset": "megc_casme3"})
    assert (preset.p, preset.interval, preset.synergy, preset.negative_penalty,
            preset.non_negative_share, preset.k_prime) == (0.55, "fixed", 2, 0.0, None, 6)
    out = decode_videos([video(plateau())], preset, 3)
    assert out[["onset", "offset", "apex"]].values.tolist() == [[24, 36, 30]]


def test_preset_overrides_config_values_and_survives_a_round_trip(tmp_path):
    # the config always holds every key: the preset wins over them; the written record
    # (to_dict -> priors YAML) reads back to the same priors; replace() afterwards sticks.
    import dataclasses

    import yaml

    cfg = {**DecodePriors().to_dict(), "preset": "megc_samm", "p": 0.55}
    priors = DecodePriors.from_dict(cfg)
    assert priors.p == 0.65
    path = tmp_path / "priors.yaml"
    path.write_text(yaml.safe_dump(priors.to_dict()))
    assert read_priors(path) == (priors, 6)
    assert dataclasses.replace(priors, p=0.4).p == 0.4
    assert apply_preset(DecodePriors(), "") == DecodePriors()
    with pytest.raises(ValueError, match="preset"):
        DecodePriors.from_dict({"preset": "megc_smic"})
    assert set(DECODE_PRESETS) == {"megc_samm", "megc_casme3"}


# ---------------------------------------------------------------- MEGC submission CSV (§9.3)
def test_megc_submission_is_one_based_without_vetoed_rows(tmp_path):
    # rows (0-based): [0, 13] negative kept, [20, 27] vetoed, [35, 48] positive kept
    # -> 1-based [1, 14] and [36, 49]; apex/score/vote/vetoed not written.
    intervals = pd.DataFrame({
        "subject": ["s1"] * 3, "video": ["v1"] * 3, "onset": [0, 20, 35], "offset": [13, 27, 48],
        "emotion": ["negative", "neutral", "positive"], "apex": [7, 21, 40],
        "score": [0.9, 0.5, 0.7], "vote": [1.0, 0.5, 0.8], "vetoed": [False, True, False]})
    sub = megc_submission(intervals)
    assert list(sub.columns) == ["subject", "video", "onset", "offset", "emotion"]
    assert sub.values.tolist() == [["s1", "v1", 1, 14, "negative"],
                                   ["s1", "v1", 36, 49, "positive"]]
    src = tmp_path / "pred.csv"
    intervals.to_csv(src, index=False)
    write_megc_submission(src, tmp_path / "sub.csv")
    back = pd.read_csv(tmp_path / "sub.csv", dtype={"subject": str, "video": str})
    assert back.values.tolist() == sub.values.tolist()


def test_cli_decode_preset_and_megc_out(tmp_path):
    # scores.h5 with the 0.5 plateau video at frame_skip 7 -> megc_samm (k' 6 over the
    # priors file's 3) gives sampled (23, 38) -> original (161, 266) -> MEGC 1-based
    # (162, 267), positive; the release's rows: x * 7 - 6 -> (155, 260).
    from mepkg.cli import main
    from mepkg.h5io import VideoScores, write_scores

    s = plateau(0.5).astype(np.float32)
    logits = np.tile(np.float32([1.0, 0.5, 0.0, 0.0, -5.0]), (len(s), 1))
    write_scores(tmp_path / "scores.h5", [VideoScores("s1_v1", "s1", "v1", s, logits, 7, 30)],
                 fold="s1")
    (tmp_path / "priors.yaml").write_text("k_prime: 3\n")
    code = main(["decode", "--scores", str(tmp_path / "scores.h5"), "--priors",
                 str(tmp_path / "priors.yaml"), "--preset", "megc_samm", "--out",
                 str(tmp_path / "intervals.csv"), "--megc-out", str(tmp_path / "megc.csv")])
    assert code == 0
    megc = pd.read_csv(tmp_path / "megc.csv", dtype={"subject": str, "video": str})
    assert megc.values.tolist() == [["s1", "v1", 162, 267, "positive"]]
    (tmp_path / "release.yaml").write_text("submission: release\n")
    assert main(["decode", "--scores", str(tmp_path / "scores.h5"), "--priors",
                 str(tmp_path / "release.yaml"), "--preset", "megc_samm", "--out",
                 str(tmp_path / "intervals.csv"), "--megc-out", str(tmp_path / "rel.csv")]) == 0
    rel = pd.read_csv(tmp_path / "rel.csv", dtype={"subject": str, "video": str})
    assert rel.values.tolist() == [["s1", "v1", 155, 260, "positive"]]
    # the same through run_decode with the casme3 preset: k' 6 from the preset, no labels
    run_decode([tmp_path / "scores.h5"], tmp_path / "c.csv", preset="megc_casme3")
    c = pd.read_csv(tmp_path / "c.csv")
    assert c[["onset", "offset"]].values.tolist() == [[24 * 7, 36 * 7]]


def test_class_names_order_assumed_here():
    assert list(CLASS_NAMES) == ["negative", "positive", "surprise", "others", "neutral"]
