"""STRS evaluation (docs/method.md §7): the evaluator's README example, official vs strict, bad input."""

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


# The MEGC evaluator's README example (docs/method.md §7)
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
    assert with_veto["pairs"] == [["negative", "negative"]]      # the vetoed row is the one gone
    assert evaluate(pred, gt)["pairs"] == with_veto["pairs"]     # the veto is the default
    as_text = pred.assign(vetoed=["0", "1"])                     # a CSV may spell it 0/1
    assert evaluate(as_text, gt)["pairs"] == with_veto["pairs"]
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
    import mepkg

    assert data["mepkg_version"] == mepkg.__version__        # which mepkg wrote it


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


# ---------------------------------------------------------------- UF1 / UAR != F1
def _pairs_example():
    """Seven matched (gt, pred) emotion pairs, one extra FP and two extra FN.

    subject a: v1 (neg, neg) + an FP far away, v2 (neg, neg) + an FN far away,
               v3 (neg, pos), v4 (pos, pos)
    subject b: v5 (sur, sur) + an FN far away, v6 (sur, sur), v7 (sur, neg)
    """
    gt, pred = [], []
    for subject, video, g, p in [("a", "v1", "negative", "negative"),
                                 ("a", "v2", "negative", "negative"),
                                 ("a", "v3", "negative", "positive"),
                                 ("a", "v4", "positive", "positive"),
                                 ("b", "v5", "surprise", "surprise"),
                                 ("b", "v6", "surprise", "surprise"),
                                 ("b", "v7", "surprise", "negative")]:
        gt.append([subject, video, 100, 140, g])
        pred.append([subject, video, 102, 140, p])            # IoU 39/41
    pred.append(["a", "v1", 500, 540, "surprise"])              # FP
    gt.append(["a", "v2", 800, 840, "positive"])                # FN
    gt.append(["b", "v5", 900, 940, "negative"])                # FN
    return table(pred), table(gt)


@pytest.mark.parametrize("mode", ["official", "strict"])
def test_uf1_uar_and_f1_differ_and_are_pinned_by_hand(mode):
    pred, gt = _pairs_example()
    r = evaluate(pred, gt, mode=mode, emotions=("negative", "positive", "surprise"))
    # spotting: TP 7, FP 1, FN 2 -> P 7/8, R 7/9, F1 2*7 / (8 + 9) = 14/17
    sp = r["spotting"]
    assert (sp["tp"], sp["fp"], sp["fn"]) == (7, 1, 2)
    assert sp["f1"] == pytest.approx(14 / 17)
    # one-vs-rest over the 7 pairs (gt, pred):
    #   negative: TP 2 (v1, v2), FP 1 (v7: sur -> neg), FN 1 (v3: neg -> pos): P 2/3, R 2/3
    #   positive: TP 1 (v4), FP 1 (v3), FN 0:                                  P 1/2, R 1
    #   surprise: TP 2 (v5, v6), FP 0, FN 1 (v7):                              P 1,   R 2/3
    rc, pc = r["recognition"], r["recognition"]["per_class"]
    assert [(pc[e]["tp"], pc[e]["fp"], pc[e]["fn"]) for e in ("negative", "positive", "surprise")
            ] == [(2, 1, 1), (1, 1, 0), (2, 0, 1)]
    # mean P = (2/3 + 1/2 + 1) / 3 = 13/18; mean R = UAR = (2/3 + 1 + 2/3) / 3 = 7/9
    assert rc["precision"] == pytest.approx(13 / 18)
    assert rc["recall"] == pytest.approx(7 / 9)
    assert rc["uar"] == pytest.approx(7 / 9)                    # recall, not precision (13/18)
    # F1 of the means = 2 (13/18)(7/9) / (13/18 + 7/9) = 182/243 ~ 0.7490
    assert rc["f1"] == pytest.approx(182 / 243)
    # UF1 = mean of per-class F1 = (2/3 + 2/3 + 4/5) / 3 = 32/45 ~ 0.7111, not 182/243
    assert [pc[e]["f1"] for e in ("negative", "positive", "surprise")] == pytest.approx(
        [2 / 3, 2 / 3, 4 / 5])
    assert rc["uf1"] == pytest.approx(32 / 45)
    assert r["strs"] == pytest.approx(14 / 17 * 182 / 243)
    # subject b alone: spot TP 3, FP 0, FN 1 -> F1 6/7; recall per class: negative 0/0 and
    # positive 0/0 (official: single-valued -> 0; strict: no TP -> 0), surprise 2/3 -> UAR 2/9
    b = r["per_subject"]["b"]
    assert b["spotting"]["f1"] == pytest.approx(6 / 7)
    assert b["recognition"]["uar"] == pytest.approx(2 / 9)


def test_iou_threshold_is_inclusive_at_one_half():
    # [0, 9] vs [5, 14]: 5 shared frames of 15 -> 1/3; [0, 9] vs [0, 19]: 10 / 20 = 0.5 exactly
    iou = iou_matrix([[0, 9]], [[5, 14], [0, 19], [30, 40]])
    np.testing.assert_allclose(iou, [[1 / 3, 0.5, 0.0]])        # disjoint: 0, never negative
    assert match_official(iou) == [(0, 1)]
    assert match_strict(iou) == [(0, 1)]
    assert match_official(iou_matrix([[0, 9]], [[0, 20]])) == []   # 10/21 < 0.5
    assert match_strict(iou_matrix([[0, 9]], [[0, 20]])) == []


def test_strict_ties_go_to_the_earlier_pair():
    # two predictions with the same IoU 0.6 on one truth: the first in row order wins
    iou = np.array([[0.6], [0.6]])
    assert match_strict(iou) == [(0, 0)]
    iou = np.array([[0.6, 0.6]])
    assert match_strict(iou) == [(0, 0)]


def _bootstrap_by_hand(pred, gt, n, seed, level, mode="official"):
    """The subject bootstrap written plainly: resample subjects, rename the copies,
    score the resampled tables with ``evaluate``, take the quantiles."""
    subjects = sorted(set(pred.subject) if mode == "official" else set(gt.subject)
                      | set(pred.subject))
    draws = np.random.default_rng(seed).integers(0, len(subjects), size=(n, len(subjects)))
    values = []
    for draw in draws:
        p_parts, g_parts = [], []
        for copy, i in enumerate(draw):
            s = subjects[i]
            p_parts.append(pred[pred.subject == s].assign(subject=f"{s}#{copy}"))
            g_parts.append(gt[gt.subject == s].assign(subject=f"{s}#{copy}"))
        values.append(evaluate(pd.concat(p_parts), pd.concat(g_parts), mode=mode)["strs"])
    alpha = (1 - level) / 2
    return np.quantile(values, [alpha, 1 - alpha])


@pytest.mark.parametrize("mode, level", [("official", 0.95), ("strict", 0.5)])
def test_bootstrap_equals_resampling_the_subjects_by_hand(mode, level):
    pred, gt = _many_subjects()
    few = [f"s{i}" for i in range(5)]
    gt = gt[gt.subject.isin(few)]
    pred = pred[pred.subject.isin(few[:-1])]                # strict scores s4 too, official not
    got = bootstrap_strs(pred, gt, n=8, seed=5, mode=mode, level=level)
    low, high = _bootstrap_by_hand(pred, gt, 8, 5, level, mode)
    assert (got["low"], got["high"]) == (pytest.approx(low), pytest.approx(high))
    assert (got["n"], got["seed"], got["level"]) == (8, 5, level)
    assert got["low"] < got["high"]
    # the defaults: 1000 draws, seed 0, 95 %, with the veto
    default = bootstrap_strs(pred, gt, mode=mode)
    assert (default["n"], default["seed"], default["level"]) == (1000, 0, 0.95)


def test_bootstrap_applies_the_veto():
    pred, gt = _many_subjects()
    vetoed = pred.assign(vetoed=[i % 3 == 0 for i in range(len(pred))])
    kept = pred[[i % 3 != 0 for i in range(len(pred))]]
    assert bootstrap_strs(vetoed, gt, n=30) == bootstrap_strs(kept, gt, n=30)
    assert bootstrap_strs(vetoed, gt, n=30, veto=False) == bootstrap_strs(pred, gt, n=30)
    assert bootstrap_strs(vetoed, gt, n=30) != bootstrap_strs(pred, gt, n=30)
    empty = bootstrap_strs(pred, gt, n=0)
    assert (empty["low"], empty["high"]) == (0.0, 0.0)
    assert bootstrap_strs(pred, gt, n=1)["low"] > 0          # one draw is still a draw


@pytest.mark.parametrize("mode", ["official", "strict"])
def test_run_evaluate_json_and_log_line_on_the_hand_computed_example(tmp_path, caplog, mode):
    pred, gt = _pairs_example()
    # a vetoed extra prediction on v4 that would be an FP without the veto
    pred = pd.concat([pred, table([["a", "v4", 600, 640, "neutral"]])], ignore_index=True)
    pred["vetoed"] = [False] * (len(pred) - 1) + [True]
    pred.to_csv(tmp_path / "pred.csv", index=False)
    gt.to_csv(tmp_path / "gt.csv", index=False)
    out = tmp_path / "metrics.json"
    with caplog.at_level(logging.INFO, logger="mepkg.metrics"):
        returned = run_evaluate(tmp_path / "pred.csv", tmp_path / "gt.csv", out, mode=mode,
                                n_bootstrap=20, seed=3)
    text = out.read_text()
    assert text.startswith('{\n  "mode": ')                # indent 2
    data = json.loads(text)
    assert data["mode"] == mode and data["veto"] is True
    assert data["emotions"] == ["negative", "positive", "surprise"]
    assert data["spotting"]["fp"] == 1 and data["without_veto"]["spotting"]["fp"] == 2
    assert data["strs"] == pytest.approx(14 / 17 * 182 / 243)
    assert data["without_veto"]["strs"] == pytest.approx(2 * 7 / (9 + 9) * 182 / 243)
    assert data["recognition"]["uf1"] == pytest.approx(32 / 45)
    assert data["bootstrap"]["strs"] == data["strs"]
    boot = bootstrap_strs(pred, gt, n=20, seed=3, mode=mode)
    assert (data["bootstrap"]["low"], data["bootstrap"]["high"]) == (boot["low"], boot["high"])
    assert data["inputs"] == {"pred": str(tmp_path / "pred.csv"), "gt": str(tmp_path / "gt.csv")}
    assert returned["strs"] == data["strs"]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "mepkg.metrics"
               and "STRS" in r.getMessage()]
    assert line == (f"{out} ({mode}): STRS {data['strs']:.4f} [{boot['low']:.4f}, "
                    f"{boot['high']:.4f}] = spot F1 {14 / 17:.4f} (TP 7 FP 1 FN 2) x recog F1 "
                    f"{182 / 243:.4f}; UF1 {32 / 45:.4f} UAR {7 / 9:.4f}; without veto STRS "
                    f"{data['without_veto']['strs']:.4f}")
    # run_evaluate's defaults: 1000 bootstrap draws, seed 0
    run_evaluate(tmp_path / "pred.csv", tmp_path / "gt.csv", out, mode=mode)
    again = json.loads(out.read_text())["bootstrap"]
    assert (again["n"], again["seed"]) == (1000, 0)


def test_metrics_row_names_every_figure():
    from mepkg.metrics import metrics_row, metrics_table

    pred, gt = _pairs_example()
    r = evaluate(pred, gt)
    row = metrics_row(r, mode="official", veto=True, scope="pooled")
    assert row == {"mode": "official", "veto": True, "scope": "pooled", "strs": r["strs"],
                   "spot_f1": pytest.approx(14 / 17), "spot_precision": pytest.approx(7 / 8),
                   "spot_recall": pytest.approx(7 / 9), "tp": 7, "fp": 1, "fn": 2,
                   "recog_f1": pytest.approx(182 / 243), "uf1": pytest.approx(32 / 45),
                   "uar": pytest.approx(7 / 9), "n_pairs": 7}
    r["without_veto"] = r
    t = metrics_table({"official": r, "strict": evaluate(pred, gt, mode="strict")
                       | {"without_veto": r}})
    assert t["mode"].tolist() == ["official"] * 4 + ["strict"] * 4
    assert t.columns.tolist()[:3] == ["mode", "veto", "scope"]


def test_release_mode_reads_the_frame_skip_the_predictions_were_decoded_at():
    from mepkg.metrics import scoring_frame_skip

    # GT [6, 20] -> sampled [0, 2]; P [13, 27] -> [1, 3]: IoU 2 / 4 = 0.5 at frame_skip 7 (TP),
    # 8 / 22 at the original rate (FP + FN)
    gt = pd.DataFrame({"subject": ["s1"], "video": ["a"], "onset": [6], "offset": [20],
                       "emotion": ["negative"]})
    pred = gt.assign(onset=[13], offset=[27], frame_skip=[7])
    result = evaluate(pred, gt, mode="release")
    assert result["frame_skip"] == 7
    assert (result["spotting"]["tp"], result["spotting"]["fp"]) == (1, 0)
    assert scoring_frame_skip(pred, 7) == 7
    with pytest.raises(ValueError, match="frame_skip 1 given, but the predictions were decoded "
                                         "at frame_skip 7"):
        evaluate(pred, gt, mode="release", frame_skip=1)
    with pytest.raises(ValueError, match=r"mix frame_skip values \[1, 7\]"):
        scoring_frame_skip(pd.concat([pred, pred.assign(frame_skip=[1])]))
    with pytest.raises(ValueError, match="data row 1: frame_skip 'x' is not a number"):
        scoring_frame_skip(pred.assign(frame_skip=["x"]))
    # a run that decoded no interval needs no frame_skip: nothing to match
    assert scoring_frame_skip(pred.iloc[:0]) == 1
