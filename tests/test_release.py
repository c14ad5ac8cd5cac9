"""Release scoring mode (docs/method.md §7.3, §8): every point where it differs
from `official`, each with its expected numbers worked out by hand.

IoU counts frames inclusively: |A n B| / |A u B| with |[a, b]| = b - a + 1.
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mepkg.metrics import evaluate, match_release, recognition_scores_release
from mepkg.cli import main


def table(rows, vetoed=None):
    """rows: (subject, video, onset, offset, emotion)."""
    df = pd.DataFrame(rows, columns=["subject", "video", "onset", "offset", "emotion"])
    if vetoed is not None:
        df["vetoed"] = vetoed
    return df


def spot(result):
    s = result["spotting"]
    return s["tp"], s["fp"], s["fn"]


# ---------------------------------------------------------------- matching
def test_match_release_single_best_iou_and_later_tie():
    # row 0: best is GT 1 (0.9) -> TP (0, 1)
    # row 1: best is GT 1 again (0.8), taken -> FP although GT 0 (0.6) is free
    # row 2: tie 0.7 / 0.7 between GT 0 and GT 2 -> the later, GT 2 -> TP (2, 2)
    # row 3: best 0.4 < 0.5 -> FP
    iou = np.array([[0.6, 0.9, 0.0],
                    [0.6, 0.8, 0.0],
                    [0.7, 0.1, 0.7],
                    [0.4, 0.0, 0.0]])
    assert match_release(iou) == [(0, 1), (2, 2)]
    assert match_release(np.zeros((2, 0))) == []          # no ground truth: all FP


def test_single_best_iou_prediction_is_fp_even_if_another_gt_qualifies():
    # GT A [0, 9], GT B [4, 13]. P1 [0, 9]: A 1.0, B |4..9|=6 / |0..13|=14 = 0.43 -> TP with A.
    # P2 [2, 10]: A |2..9|=8 / |0..10|=11 = 0.727, B |4..10|=7 / |2..13|=12 = 0.583.
    #   release: P2 sees only A (taken) -> FP; B stays FN.   TP 1, FP 1, FN 1 -> F1 0.5
    #   official: P2 takes the free B (0.583 >= 0.5).        TP 2, FP 0, FN 0 -> F1 1
    #   strict: pairs by IoU: P1-A 1.0, P2-A 0.727 (A used), P2-B 0.583 -> TP 2
    gt = table([("s1", "v1", 0, 9, "negative"), ("s1", "v1", 4, 13, "positive")])
    pred = table([("s1", "v1", 0, 9, "negative"), ("s1", "v1", 2, 10, "positive")])
    rel = evaluate(pred, gt, mode="release", frame_skip=1)
    assert spot(rel) == (1, 1, 1)
    assert rel["spotting"]["f1"] == pytest.approx(0.5)
    assert spot(evaluate(pred, gt, mode="official")) == (2, 0, 0)
    assert spot(evaluate(pred, gt, mode="strict")) == (2, 0, 0)


def test_tie_goes_to_the_later_ground_truth():
    # GT A [0, 9] negative, GT B [2, 11] positive.
    # P1 [1, 10]: A |1..9|=9 / |0..10|=11 = 0.818, B |2..10|=9 / |1..11|=11 = 0.818: tie -> B.
    # P2 [0, 9]: A 1.0 (free) -> TP.                    TP 2, FP 0, FN 0
    # (ties to the earlier GT would give P1-A, then P2 -> A taken -> FP: TP 1, FP 1, FN 1)
    # pairs (gt, pred): (positive, positive), (negative, negative)
    gt = table([("s1", "v1", 0, 9, "negative"), ("s1", "v1", 2, 11, "positive")])
    pred = table([("s1", "v1", 1, 10, "positive"), ("s1", "v1", 0, 9, "negative")])
    rel = evaluate(pred, gt, mode="release", frame_skip=1)
    assert spot(rel) == (2, 0, 0)
    assert rel["pairs"] == [["positive", "positive"], ["negative", "negative"]]


def test_veto_is_applied_after_matching():
    # GT A [0, 9]. P1 [0, 9] vetoed, P2 [0, 9] kept, P3 [50, 59] vetoed.
    # release, matching on every row: P1 TP with A; P2's best is A (taken) -> FP; P3 FP.
    #   with veto: P1 (vetoed TP) -> A becomes FN; P2 stays FP; P3 (vetoed FP) disappears.
    #     TP 0, FP 1, FN 1 -> F1 0
    #   without veto: TP 1, FP 2, FN 0 -> P 1/3, R 1, F1 = 2(1/3)/(4/3) = 0.5
    # official drops vetoed rows before matching: P2 TP with A -> TP 1, FP 0, FN 0 -> F1 1
    gt = table([("s1", "v1", 0, 9, "negative")])
    pred = table([("s1", "v1", 0, 9, "neutral"), ("s1", "v1", 0, 9, "negative"),
                  ("s1", "v1", 50, 59, "neutral")], vetoed=[True, False, True])
    with_veto = evaluate(pred, gt, mode="release", frame_skip=1, veto=True)
    assert spot(with_veto) == (0, 1, 1)
    assert with_veto["spotting"]["f1"] == 0.0
    without = evaluate(pred, gt, mode="release", frame_skip=1, veto=False)
    assert spot(without) == (1, 2, 0)
    assert without["spotting"]["f1"] == pytest.approx(0.5)
    assert spot(evaluate(pred, gt, mode="official", veto=True)) == (1, 0, 0)


def test_vetoed_column_as_text_from_a_csv():
    gt = table([("s1", "v1", 0, 9, "negative")])
    pred = table([("s1", "v1", 0, 9, "neutral")], vetoed=["True"])
    assert spot(evaluate(pred, gt, mode="release", frame_skip=1)) == (0, 0, 1)


def test_sampled_rate_flips_iou_both_ways():
    # frame_skip 7, sampled = f0 // 7.
    # video a: GT [6, 20] -> [0, 2]; P [13, 27] -> [1, 3].
    #   original: |13..20|=8 / |6..27|=22 = 0.364 -> FP + FN
    #   sampled:  |1..2|=2 / |0..3|=4 = 0.5      -> TP
    # video b: GT [7, 13] -> [1, 1]; P [6, 14] -> [0, 2].
    #   original: |7..13|=7 / |6..14|=9 = 0.778  -> TP
    #   sampled:  |1..1|=1 / |0..2|=3 = 0.333    -> FP + FN
    gt = table([("s1", "a", 6, 20, "negative"), ("s1", "b", 7, 13, "positive")])
    pred = table([("s1", "a", 13, 27, "negative"), ("s1", "b", 6, 14, "positive")])
    official = evaluate(pred, gt, mode="official")
    release = evaluate(pred, gt, mode="release", frame_skip=7)
    assert spot(official) == (1, 1, 1) and official["pairs"] == [["positive", "positive"]]
    assert spot(release) == (1, 1, 1) and release["pairs"] == [["negative", "negative"]]
    # frame_skip 1 is the original rate: release then agrees with official here
    assert evaluate(pred, gt, mode="release", frame_skip=1)["pairs"] == [["positive", "positive"]]
    assert release["frame_skip"] == 7


def test_release_needs_a_frame_skip():
    gt = table([("s1", "v1", 0, 9, "negative")])
    with pytest.raises(ValueError, match="frame_skip"):
        evaluate(gt, gt, mode="release")
    with pytest.raises(ValueError, match="frame_skip"):
        evaluate(gt, gt, mode="release", frame_skip=0)


def test_subject_without_predictions_and_video_without_me():
    # GT: s1/v1 [0, 9]; s2/v1 [0, 9] and [20, 29]. Predictions: s1/v1 [0, 9] (TP) and
    # s1/v9 [0, 9], a video with no labelled ME.
    #   release: s2 scored (2 FN), s1/v9 ignored -> TP 1, FP 0, FN 2: P 1, R 1/3, F1 0.5
    #   official: only s1 scored, s1/v9 ignored   -> TP 1, FP 0, FN 0: F1 1
    #   strict: s2 scored, s1/v9 an FP             -> TP 1, FP 1, FN 2: P 1/2, R 1/3, F1 0.4
    gt = table([("s1", "v1", 0, 9, "negative"), ("s2", "v1", 0, 9, "negative"),
                ("s2", "v1", 20, 29, "positive")])
    pred = table([("s1", "v1", 0, 9, "negative"), ("s1", "v9", 0, 9, "negative")])
    rel = evaluate(pred, gt, mode="release", frame_skip=1)
    assert spot(rel) == (1, 0, 2)
    assert rel["spotting"]["f1"] == pytest.approx(0.5)
    assert sorted(rel["per_subject"]) == ["s1", "s2"]
    assert spot(rel["per_subject"]["s2"]) == (0, 0, 2)
    assert evaluate(pred, gt, mode="official")["spotting"]["f1"] == pytest.approx(1.0)
    assert evaluate(pred, gt, mode="strict")["spotting"]["f1"] == pytest.approx(0.4)


# ---------------------------------------------------------------- recognition
def three_tps(pairs):
    """One exact-match TP per (gt emotion, pred emotion) pair, spot F1 = 1."""
    gt = table([("s1", "v1", 20 * i, 20 * i + 9, g) for i, (g, _) in enumerate(pairs)])
    pred = table([("s1", "v1", 20 * i, 20 * i + 9, p) for i, (_, p) in enumerate(pairs)])
    return pred, gt


def test_single_valued_class_is_skipped_not_scored_zero():
    # pairs (gt, pred): (neg, neg), (neg, neg), (sur, neg); spotting TP 3 -> F1 1.
    # negative: TP 2, FP 1, FN 0 -> P 2/3, R 1, F1 0.8
    # positive: no pair touches it -> single-valued
    # surprise: TP 0, FP 0, FN 1 -> P 0 (0/0, defined 0), R 0, F1 0
    # release (positive skipped): P = (2/3 + 0)/2 = 1/3, R = (1 + 0)/2 = 1/2,
    #   F1 = 2 (1/3)(1/2) / (1/3 + 1/2) = 0.4; UF1 = (0.8 + 0)/2 = 0.4; UAR 0.5
    # official (positive P = R = 0 and averaged): P = 2/9, R = 1/3,
    #   F1 = 2 (2/9)(1/3) / (2/9 + 1/3) = 4/15
    pred, gt = three_tps([("negative", "negative"), ("negative", "negative"),
                          ("surprise", "negative")])
    rel = evaluate(pred, gt, mode="release", frame_skip=1)
    rc = rel["recognition"]
    assert rc["per_class"]["positive"]["skipped"] is True
    assert rc["per_class"]["surprise"]["skipped"] is False
    assert rc["precision"] == pytest.approx(1 / 3)
    assert rc["recall"] == pytest.approx(0.5)
    assert rc["f1"] == pytest.approx(0.4)
    assert rc["uf1"] == pytest.approx(0.4)
    assert rc["uar"] == pytest.approx(0.5)
    assert rel["strs"] == pytest.approx(0.4)
    assert evaluate(pred, gt, mode="official")["strs"] == pytest.approx(4 / 15)
    assert evaluate(pred, gt, mode="strict")["strs"] == pytest.approx(4 / 15)


def test_class_predicted_but_absent_counts_zero_not_nan():
    # pairs: (neg, neg), (neg, pos).
    # negative: TP 1, FP 0, FN 1 -> P 1, R 1/2
    # positive: TP 0, FP 1, FN 0 -> P 0, R 0/0 (NaN in the release) := 0; scored
    # surprise: untouched -> skipped
    # P = (1 + 0)/2 = 1/2, R = (1/2 + 0)/2 = 1/4, F1 = 2 (1/8) / (3/4) = 1/3
    pred, gt = three_tps([("negative", "negative"), ("negative", "positive")])
    rc = evaluate(pred, gt, mode="release", frame_skip=1)["recognition"]
    assert rc["per_class"]["positive"]["recall"] == 0.0
    assert rc["f1"] == pytest.approx(1 / 3)
    assert not np.isnan(rc["uf1"])


def test_every_class_skipped_or_no_tp_scores_zero():
    # pairs (neg, neg) x 2: negative is every pair on both sides -> skipped, positive and
    # surprise untouched -> skipped; no class left: F1 := 0 (the release: mean of nothing).
    pred, gt = three_tps([("negative", "negative"), ("negative", "negative")])
    rel = evaluate(pred, gt, mode="release", frame_skip=1)
    assert rel["recognition"]["f1"] == 0.0 and rel["strs"] == 0.0
    assert rel["recognition"]["n_classes_scored"] == 0
    # no TP at all: spotting P = R = F1 = 0 (0/0 defined 0)
    gt = table([("s1", "v1", 0, 9, "negative")])
    pred = table([("s1", "v1", 50, 59, "negative")])
    rel = evaluate(pred, gt, mode="release", frame_skip=1)
    assert spot(rel) == (0, 1, 1)
    assert rel["spotting"]["precision"] == 0.0 and rel["strs"] == 0.0


def test_others_pairs_are_dropped_from_recognition():
    # pairs (neg, neg), (others, neg), (pos, pos): the `others` pair is dropped, leaving
    # (neg, neg), (pos, pos): negative TP 1 -> P = R = 1; positive likewise; surprise skipped
    # -> F1 1. Spotting counts all three TPs.
    pred, gt = three_tps([("negative", "negative"), ("others", "negative"),
                          ("positive", "positive")])
    rel = evaluate(pred, gt, mode="release", frame_skip=1)
    assert spot(rel) == (3, 0, 0)
    assert rel["recognition"]["n_pairs"] == 2
    assert rel["recognition"]["f1"] == pytest.approx(1.0)


def test_recognition_scores_release_direct():
    counts = np.array([[2, 1, 0], [0, 0, 0], [0, 0, 1]])     # the skipped-class case above
    rc = recognition_scores_release(counts, 3, ("negative", "positive", "surprise"))
    assert rc["f1"] == pytest.approx(0.4)


# ---------------------------------------------------------------- the CLI
GT_CSV = """subject,video,onset,apex,offset,type,emotion
s1,v1,6,10,20,micro,negative
s1,v1,100,110,120,macro,
s2,v1,0,5,9,micro,positive
"""
# s1/v1: sampled GT [0, 2]; P1 [13, 27] -> [1, 3]: IoU 2/4 = 0.5 -> TP (negative, negative).
# P2 [13, 27] vetoed: best GT is the taken one -> FP; vetoed -> disappears.
# s2/v1: no prediction -> 1 FN (the macro row is not a ground truth).
# with veto: TP 1, FP 0, FN 1 -> P 1, R 1/2, F1 2/3; recognition: only negative touched and
#   it is every pair on both sides -> skipped; no class left -> F1 0 -> STRS 0.
# without veto: TP 1, FP 1, FN 1 -> P = R = 1/2, F1 1/2.
PRED_CSV = """subject,video,onset,offset,emotion,apex,score,vote,vetoed
s1,v1,13,27,negative,14,0.9,0.8,False
s1,v1,13,27,neutral,14,0.7,0.6,True
"""


@pytest.fixture
def csv_pair(tmp_path):
    (tmp_path / "gt.csv").write_text(GT_CSV)
    (tmp_path / "pred.csv").write_text(PRED_CSV)
    return tmp_path


def test_cli_evaluate_release(csv_pair):
    out = csv_pair / "release.json"
    proc = subprocess.run(
        [sys.executable, "-m", "mepkg.cli", "evaluate", "--pred", str(csv_pair / "pred.csv"),
         "--gt", str(csv_pair / "gt.csv"), "--mode", "release", "--frame-skip", "7",
         "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(out.read_text())
    assert m["mode"] == "release" and m["veto"] is True and m["frame_skip"] == 7
    assert (m["spotting"]["tp"], m["spotting"]["fp"], m["spotting"]["fn"]) == (1, 0, 1)
    assert m["spotting"]["f1"] == pytest.approx(2 / 3)
    assert m["strs"] == 0.0
    wv = m["without_veto"]
    assert (wv["spotting"]["tp"], wv["spotting"]["fp"], wv["spotting"]["fn"]) == (1, 1, 1)
    assert wv["spotting"]["f1"] == pytest.approx(0.5)
    assert set(m["per_subject"]) == {"s1", "s2"}
    assert {"low", "high", "strs"} <= set(m["bootstrap"])


def test_cli_release_without_frame_skip_is_a_one_line_error(csv_pair, capsys):
    code = main(["evaluate", "--pred", str(csv_pair / "pred.csv"), "--gt",
                 str(csv_pair / "gt.csv"), "--mode", "release", "--out",
                 str(csv_pair / "x.json")])
    assert code == 2
    assert "--frame-skip" in capsys.readouterr().err
    assert not (csv_pair / "x.json").exists()


def test_metrics_table_takes_release_rows(csv_pair):
    from mepkg.metrics import metrics_table, run_evaluate

    results = {mode: run_evaluate(csv_pair / "pred.csv", csv_pair / "gt.csv",
                                  csv_pair / f"{mode}.json", mode=mode, n_bootstrap=20,
                                  frame_skip=7)
               for mode in ("official", "strict", "release")}
    t = metrics_table(results)
    pooled = t[t.scope == "pooled"].set_index(["mode", "veto"])
    assert pooled.loc[("release", True), "spot_f1"] == pytest.approx(2 / 3)
    # official at the original rate: |13..20|=8 / |6..27|=22 < 0.5 -> FP + FN; s2 not scored
    assert (pooled.loc[("official", True), "tp"], pooled.loc[("official", True), "fn"]) == (0, 1)


def test_megc_readme_example_scores_the_same_in_release_mode():
    # The evaluator README's example (docs/method.md §7.1), frame_skip 1, all its emotions:
    # each prediction's best GT is the only one of its video with IoU >= 0.5 or none:
    #   EP02_01f [10,70] vs [45,85]: |45..70|=26 / |10..85|=76 = 0.34 -> FP + FN
    #   EP03_02 [100,170] vs [130,160]: 31/71 = 0.44 -> FP + FN
    #   EP04_02 [0,70] vs [20,75]: 51/76 = 0.67 -> TP (others, others)
    #   EP01_11f [20,90] vs [45,95]: 46/76 = 0.61 -> TP (repression, happiness)
    #   EP02_04f [70,140] vs [30,140]: 71/111 = 0.64 -> TP (repression, happiness)
    # spotting TP 3, FP 2, FN 2 -> F1 0.6. Classes: happiness TP 0 FP 2 FN 0 (P 0, R 0),
    # others TP 1 (P = R = 1), repression FN 2 (P = R = 0); none single-valued -> P = R = 1/3,
    # F1 1/3; STRS 0.6 x 1/3 = 0.2, as the official evaluator.
    cols = ["subject", "video", "onset", "offset", "emotion"]
    pred = pd.DataFrame([("1", "EP02_01f", 10, 70, "happiness"),
                         ("1", "EP03_02", 100, 170, "others"),
                         ("1", "EP04_02", 0, 70, "others"), ("2", "EP01_11f", 20, 90, "happiness"),
                         ("2", "EP02_04f", 70, 140, "happiness")], columns=cols)
    gt = pd.DataFrame([("1", "EP02_01f", 45, 85, "happiness"), ("1", "EP03_02", 130, 160, "others"),
                       ("1", "EP04_02", 20, 75, "others"), ("2", "EP01_11f", 45, 95, "repression"),
                       ("2", "EP02_04f", 30, 140, "repression")], columns=cols)
    r = evaluate(pred, gt, mode="release", frame_skip=1,
                 emotions=("happiness", "others", "repression"))
    assert spot(r) == (3, 2, 2)
    assert r["recognition"]["f1"] == pytest.approx(1 / 3)
    assert r["strs"] == pytest.approx(0.2)
