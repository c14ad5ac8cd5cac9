"""STRS evaluation (SPEC 7): the evaluator's README example, official vs strict, bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from mepkg.metrics import (bootstrap_strs, evaluate, iou_matrix, match_official, match_strict,
                           read_intervals_csv, run_evaluate)

COLUMNS = ["subject", "video", "onset", "offset", "emotion"]


def table(rows, extra=None):
    df = pd.DataFrame(rows, columns=COLUMNS)
    for name, values in (extra or {}).items():
        df[name] = values
    return df


# The MEGC evaluator's README example (SPEC 7)
README_PRED = table([[1, "EP02_01f", 10, 70, "happiness"], [1, "EP03_02", 100, 170, "others"],
                     [1, "EP04_02", 0, 70, "others"], [2, "EP01_11f", 20, 90, "happiness"],
                     [2, "EP02_04f", 70, 140, "happiness"]])
README_GT = table([[1, "EP02_01f", 45, 85, "happiness"], [1, "EP03_02", 130, 160, "others"],
                   [1, "EP04_02", 20, 75, "others"], [2, "EP01_11f", 45, 95, "repression"],
                   [2, "EP02_04f", 30, 140, "repression"]])
README_EMOTIONS = ("happiness", "others", "repression")


def test_readme_example_scores_strs_0_2():
    r = evaluate(README_PRED, README_GT, mode="official", emotions=README_EMOTIONS)
    # IoUs (inclusive frames): 26/76, 31/71 below 0.5; 51/76, 46/76, 71/111 above
    assert {k: r["spotting"][k] for k in ("tp", "fp", "fn")} == {"tp": 3, "fp": 2, "fn": 2}
    assert r["spotting"]["f1"] == pytest.approx(0.6)
    # TP pairs (gt, pred): (others, others), (repression, happiness) x 2
    pc = r["recognition"]["per_class"]
    assert (pc["others"]["precision"], pc["others"]["recall"]) == (1.0, 1.0)
    assert (pc["happiness"]["tp"], pc["happiness"]["fp"], pc["happiness"]["fn"]) == (0, 2, 0)
    assert (pc["repression"]["tp"], pc["repression"]["fp"], pc["repression"]["fn"]) == (0, 0, 2)
    # P = R = 1/3 averaged over the three classes -> F1 1/3
    assert r["recognition"]["f1"] == pytest.approx(1 / 3)
    assert r["strs"] == pytest.approx(0.2, abs=1e-12)
    assert r["recognition"]["uf1"] == pytest.approx(1 / 3)
    assert r["recognition"]["uar"] == pytest.approx(1 / 3)
    assert r["per_subject"]["1"]["spotting"]["tp"] == 1
    assert r["per_subject"]["2"]["spotting"]["tp"] == 2


def test_iou_counts_frames_inclusively():
    np.testing.assert_allclose(iou_matrix([[10, 70]], [[45, 85], [10, 70], [71, 90]]),
                               [[26 / 76, 1.0, 0.0]])


def test_one_prediction_over_two_truths_official_vs_strict():
    pred = table([["s1", "v", 0, 100, "negative"]])
    gt = table([["s1", "v", 0, 60, "negative"], ["s1", "v", 40, 100, "negative"]])
    # IoU of each = 61 / 101 >= 0.5
    official = evaluate(pred, gt, mode="official")["spotting"]
    strict = evaluate(pred, gt, mode="strict")["spotting"]
    assert (official["tp"], official["fp"], official["fn"]) == (2, 0, 0)
    assert (strict["tp"], strict["fp"], strict["fn"]) == (1, 0, 1)
    assert official["f1"] == 1.0 and strict["f1"] == pytest.approx(2 / 3)


def test_official_takes_file_order_strict_takes_the_best_iou():
    iou = np.array([[0.604], [0.918]])
    assert match_official(iou) == [(0, 0)]
    assert match_strict(iou) == [(1, 0)]
    pred = table([["s1", "v", 0, 100, "positive"], ["s1", "v", 0, 55, "negative"]])
    gt = table([["s1", "v", 0, 60, "negative"]])
    assert evaluate(pred, gt, mode="official")["pairs"] == [["negative", "positive"]]
    assert evaluate(pred, gt, mode="strict")["pairs"] == [["negative", "negative"]]


def test_official_quirk_single_valued_class_scores_zero():
    pred = table([["s1", "v", 0, 10, "negative"]])
    gt = table([["s1", "v", 0, 10, "negative"]])
    # negative: gt [1], pred [1] -> one value -> P = R = 0 officially; positive and
    # surprise: all 0 -> 0 in both modes
    official = evaluate(pred, gt, mode="official")["recognition"]
    strict = evaluate(pred, gt, mode="strict")["recognition"]
    assert official["per_class"]["negative"]["precision"] == 0.0 and official["f1"] == 0.0
    assert strict["per_class"]["negative"]["precision"] == 1.0
    assert strict["f1"] == pytest.approx(1 / 3)


def test_others_is_not_analysed_by_default():
    pred = table([["s1", "v", 0, 10, "others"], ["s1", "v", 20, 30, "negative"],
                  ["s1", "v", 40, 50, "positive"]])
    gt = table([["s1", "v", 0, 10, "others"], ["s1", "v", 20, 30, "negative"],
                ["s1", "v", 40, 50, "negative"]])
    r = evaluate(pred, gt)["recognition"]
    assert r["n_pairs"] == 2                          # the `others` TP is left out
    # negative: tp 1, fn 1 -> P 1, R 0.5; positive: fp 1 -> 0, 0; surprise: 0, 0 (quirk)
    assert r["precision"] == pytest.approx(1 / 3) and r["recall"] == pytest.approx(0.5 / 3)


def test_subjects_without_predictions_only_count_in_strict():
    pred = table([["s1", "v", 0, 10, "negative"]])
    gt = table([["s1", "v", 0, 10, "negative"], ["s2", "w", 0, 10, "positive"]])
    assert evaluate(pred, gt, mode="official")["spotting"]["fn"] == 0
    strict = evaluate(pred, gt, mode="strict")
    assert strict["spotting"]["fn"] == 1 and set(strict["per_subject"]) == {"s1", "s2"}


def test_predictions_for_unknown_videos_ignored_officially_fp_strictly(caplog):
    pred = table([["s1", "v", 0, 10, "negative"], ["s1", "zzz", 0, 10, "negative"]])
    gt = table([["s1", "v", 0, 10, "negative"]])
    with caplog.at_level(logging.WARNING, logger="mepkg.metrics"):
        official = evaluate(pred, gt, mode="official")["spotting"]
    assert "data row 2, subject s1 video zzz" in caplog.text
    assert (official["tp"], official["fp"]) == (1, 0)
    assert evaluate(pred, gt, mode="strict")["spotting"]["fp"] == 1


def test_veto_column_scores_with_and_without_the_veto():
    pred = table([["s1", "v", 0, 10, "negative"], ["s1", "v", 40, 50, "neutral"]],
                 extra={"vetoed": [False, True]})
    gt = table([["s1", "v", 0, 10, "negative"], ["s1", "v", 40, 50, "positive"]])
    with_veto = evaluate(pred, gt, veto=True)
    without = evaluate(pred, gt, veto=False)
    assert (with_veto["spotting"]["tp"], with_veto["spotting"]["fn"]) == (1, 1)
    assert (without["spotting"]["tp"], without["spotting"]["fn"]) == (2, 0)
    assert without["pairs"] == [["negative", "negative"], ["positive", "neutral"]]


def test_labels_csv_is_accepted_as_ground_truth(tmp_path):
    path = tmp_path / "labels.csv"
    pd.DataFrame({"subject": ["006", "006"], "video": ["006_1", "006_1"], "onset": [0, 100],
                  "apex": [5, 110], "offset": [10, 300], "type": ["micro", "macro"],
                  "emotion_raw": ["happiness", ""], "emotion": ["positive", None]}
                 ).to_csv(path, index=False)
    gt = read_intervals_csv(path, "gt")
    assert gt.subject.tolist() == ["006"] and gt.emotion.tolist() == ["positive"]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("body, message", [
    ("subject,video,onset,emotion\n1,a,0,negative\n", r"lack column\(s\) \['offset'\]"),
    ("subject,video,onset,offset,emotion\n1,a,0,5,negative\n1,a,9,9,positive\n1,a,9,4,negative\n",
     "data row 3: reversed interval onset 9 > offset 4"),
    ("subject,video,onset,offset,emotion\n1,a,,5,negative\n", "data row 1: onset is empty or NaN"),
    ("subject,video,onset,offset,emotion\n1,a,0,5.5,negative\n",
     "data row 1: offset 5.5 is not a whole frame number"),
    ("subject,video,onset,offset,emotion\n1,a,0,5,\n", "data row 1: emotion is empty or NaN"),
])
def test_bad_prediction_csvs_name_the_file_and_row(tmp_path, body, message):
    path = tmp_path / "pred.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=message) as err:
        read_intervals_csv(path, "pred")
    assert str(path) in str(err.value)


def test_negative_onset_is_an_error_in_gt_and_scored_as_given_in_pred(tmp_path, caplog):
    # the MEGC evaluator scores predictions as given (its own example has an onset of -3)
    path = tmp_path / "intervals.csv"
    path.write_text("subject,video,onset,offset,emotion\n1,a,0,5,negative\n1,a,-3,5,negative\n")
    with pytest.raises(ValueError, match="data row 2: negative onset -3"):
        read_intervals_csv(path, "gt")
    assert read_intervals_csv(path, "pred").onset.tolist() == [0, -3]
    assert "negative onset, first: data row 2 onset -3; scored as given" in caplog.text


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_intervals_csv(tmp_path / "nope.csv", "gt")


# ---------------------------------------------------------------- bootstrap and the stage
def _many_subjects():
    rng = np.random.default_rng(3)
    pred_rows, gt_rows = [], []
    for s in range(12):
        for e in range(4):
            start = 100 * e
            emo = ["negative", "positive", "surprise"][rng.integers(3)]
            gt_rows.append([f"s{s}", "v", start, start + 20, emo])
            if rng.random() < 0.7:
                guess = emo if rng.random() < 0.6 else "negative"
                pred_rows.append([f"s{s}", "v", start + rng.integers(0, 6), start + 20, guess])
            if rng.random() < 0.3:
                pred_rows.append([f"s{s}", "v", start + 50, start + 60, "positive"])
    return table(pred_rows), table(gt_rows)


def test_bootstrap_is_deterministic_by_seed_and_brackets_the_estimate():
    pred, gt = _many_subjects()
    a = bootstrap_strs(pred, gt, n=300, seed=7)
    b = bootstrap_strs(pred, gt, n=300, seed=7)
    c = bootstrap_strs(pred, gt, n=300, seed=8)
    assert a == b and a != c
    strs = evaluate(pred, gt)["strs"]
    assert 0.0 <= a["low"] <= strs <= a["high"] <= 1.0 and a["low"] < a["high"]


def test_bootstrap_of_one_subject_is_a_point():
    r = bootstrap_strs(README_PRED[README_PRED.subject == 2], README_GT, n=50,
                       emotions=README_EMOTIONS)
    s = evaluate(README_PRED[README_PRED.subject == 2], README_GT, emotions=README_EMOTIONS)
    assert r["low"] == pytest.approx(s["strs"]) and r["high"] == pytest.approx(s["strs"])


def test_run_evaluate_writes_json_with_headline_veto_and_bootstrap(tmp_path):
    README_PRED.to_csv(tmp_path / "pred.csv", index=False)
    README_GT.to_csv(tmp_path / "gt.csv", index=False)
    out = tmp_path / "m" / "metrics.json"
    run_evaluate(tmp_path / "pred.csv", tmp_path / "gt.csv", out, emotions=README_EMOTIONS,
                 n_bootstrap=100)
    data = json.loads(out.read_text())
    assert data["strs"] == pytest.approx(0.2) and data["without_veto"]["strs"] == pytest.approx(0.2)
    assert data["bootstrap"]["n"] == 100 and data["mode"] == "official"
    assert set(data["per_subject"]) == {"1", "2"}


def test_metrics_table_flattens_modes_vetoes_and_folds():
    from mepkg.metrics import evaluate, metrics_table

    gt = pd.DataFrame({"subject": ["1", "2"], "video": ["a", "b"], "onset": [10, 10],
                       "offset": [20, 20], "emotion": ["negative", "positive"]})
    pred = pd.DataFrame({"subject": ["1", "2"], "video": ["a", "b"], "onset": [10, 50],
                         "offset": [20, 60], "emotion": ["negative", "positive"]})
    result = evaluate(pred, gt, mode="strict")
    result["without_veto"] = result
    table = metrics_table({"strict": result})
    assert list(table.scope) == ["pooled", "pooled", "1", "2"]
    assert list(table.veto) == [True, False, True, True]
    pooled = table.iloc[0]
    # one TP (subject 1), one FP and one FN (subject 2): P = R = F1 = 0.5
    assert (pooled.tp, pooled.fp, pooled.fn) == (1, 1, 1)
    assert pooled.spot_f1 == pytest.approx(0.5)
    assert table.set_index("scope").loc["2", "tp"] == 0
