"""The tiny synthetic workflow rendered in the CAS(ME)^3 and generic layouts,
end to end through Snakemake, and the dataset options that shape the plan
(dataset.max_duration, dataset.evaluate_all_videos).

tests/test_workflow.py runs the SAMM-LV layout; here `synthetic.layout`
selects the others, whose protocol (docs/method.md §1.6: frame rate,
frame_skip, k, ...) and label format (§1.3, §1.5) must reach the results.
Same helpers and conventions as there: every run is in a temporary copy of
the workflow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, casme3_sheet, frame_folder
from conftest import TINY_RUN, TINY_WORKFLOW, copy_workflow, planned_jobs, snakemake

FRAMES = ["onset", "apex", "offset"]
# the sheet's columns (subject, video, onset, apex, offset) as each layout names them
SHEET_COLUMNS = {"casme3": ["Subject", "Filename", "Onset", "Apex", "Offset"],
                 "generic": ["subject", "video", "onset", "apex", "offset"]}


def layout_config(layout: str, *more: str) -> list[str]:
    """--config for the tiny synthetic benchmark rendered in ``layout`` (+ more settings)."""
    return ["--config", f"synthetic={{layout: {layout}}}", *more]


def synthetic_root(work: Path, layout: str) -> Path:
    """Where the workflow renders the tiny benchmark (rules/common.smk synthetic_root)."""
    return work / "resources" / "synthetic" / f"tiny-{layout}-0"


def label_sheet(work: Path, layout: str) -> Path:
    from mepkg.constants import CASME3_LABEL_SHEET, GENERIC_LABEL_FILE

    name = {"casme3": CASME3_LABEL_SHEET, "generic": GENERIC_LABEL_FILE}[layout]
    return synthetic_root(work, layout) / name


def expected_protocol(layout: str) -> dict:
    """features and train as config.yaml sets them, overridden by the layout's
    protocol file config/datasets/<layout>.yaml where it has one (docs/method.md §1.6)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    path = ROOT / "config" / "datasets" / f"{layout}.yaml"
    protocol = yaml.safe_load(path.read_text()) if path.exists() else {}
    return {group: {**config[group], **protocol.get(group, {})} for group in ("features", "train")}


def read_run_labels(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"subject": str, "video": str, "emotion_raw": str,
                                    "emotion": str}, keep_default_na=False)


def event_rows(labels: pd.DataFrame) -> list[tuple]:
    return sorted(map(tuple, labels[["subject", "video", *FRAMES, "type", "emotion"]]
                      .astype(str).values.tolist()))


# ---------------------------------------------------------------- the tiny run per layout (slow)
@pytest.fixture(scope="module")
def layout_run(tmp_path_factory):
    """layout -> (workdir, seconds): the tiny config end to end through Snakemake with
    that synthetic layout; each layout runs once per module."""
    runs = {}

    def run(layout: str) -> tuple[Path, float]:
        if layout not in runs:
            work = copy_workflow(tmp_path_factory.mktemp(layout))
            start = time.perf_counter()
            snakemake(work, "--cores", "2", *TINY_WORKFLOW, *layout_config(layout))
            runs[layout] = work, time.perf_counter() - start
        return runs[layout]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["casme3", "generic"])
def test_layout_run_applies_its_protocol(layout_run, layout):
    """The frame rate comes from the layout (CAS(ME)^3: 30 fps, docs/method.md §1.3;
    generic: the video file's own, §1.5), and frame_skip, k, batch size and
    background ratio from its protocol file over config.yaml (§1.6)."""
    import cv2

    from mepkg.h5io import read_features
    from mepkg.model import load_model

    work, seconds = layout_run(layout)
    run = work / TINY_RUN
    protocol = expected_protocol(layout)
    if layout == "casme3":   # a protocol that differs from config.yaml's (SAMM-LV) defaults
        assert (protocol["features"]["frame_skip"], protocol["features"]["k"]) == (1, 50)
    manifest = pd.read_csv(run / "manifest.csv", dtype={"subject": str, "video": str})
    assert len(manifest) == 6
    if layout == "casme3":
        assert (manifest.fps == 30.0).all()
    else:
        for row in manifest.itertuples():
            assert row.path.endswith(".avi")
            capture = cv2.VideoCapture(str(work / row.path))
            assert row.fps == capture.get(cv2.CAP_PROP_FPS) == 30.0
            capture.release()
    fps = dict(zip(manifest.video_id, manifest.fps))
    files = sorted((run / "features").glob("*.h5"))
    assert sorted(f.stem for f in files) == sorted(manifest.video_id)
    for path in files:
        attrs = read_features(path).attrs
        assert attrs["fps"] == fps[path.stem]
        assert attrs["frame_skip"] == protocol["features"]["frame_skip"]
        assert attrs["k"] == protocol["features"]["k"]
    meta = load_model(run / "model_all.pt")[1]
    assert (meta["fps"], meta["frame_skip"], meta["k"]) == (
        30.0, protocol["features"]["frame_skip"], protocol["features"]["k"])
    for key in ("batch_size", "background_ratio"):
        assert meta["train_config"][key] == protocol["train"][key]
    print(f"tiny synthetic workflow, {layout} layout, end to end: {seconds:.0f} s")


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["casme3", "generic"])
def test_layout_labels_are_the_sheets_events_0_based(layout_run, layout):
    """labels.csv holds the rendered sheet's events (1-based there: docs/method.md §1.2)
    as the real adapter reads them, in 0-based frames."""
    from mepkg.datasets import read_labels

    work, _ = layout_run(layout)
    labels = read_run_labels(work / TINY_RUN / "labels.csv")
    sheet = label_sheet(work, layout)
    assert event_rows(labels) == event_rows(read_labels(layout, sheet))
    raw = (pd.read_excel(sheet, dtype=str) if sheet.suffix == ".xlsx"
           else pd.read_csv(sheet, dtype=str))[SHEET_COLUMNS[layout]]
    sheet_frames = sorted((s, v, *(int(f) - 1 for f in frames))
                          for s, v, *frames in raw.values.tolist())
    assert sorted(map(tuple, labels[["subject", "video", *FRAMES]].values.tolist())) == sheet_frames
    kinds = {"casme3": {"micro"}, "generic": {"micro", "macro"}}[layout]   # CAS(ME)^3: MEs only
    assert set(labels.type) == kinds


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["casme3", "generic"])
def test_layout_run_scores_every_labelled_me(layout_run, layout):
    from mepkg.synth import plan_benchmark

    work, _ = layout_run(layout)
    run = work / TINY_RUN
    metrics = json.loads((run / "metrics.json").read_text())
    labels = read_run_labels(run / "labels.csv")
    n_micro = int((labels.type == "micro").sum())
    assert n_micro == 15
    assert 0.0 <= metrics["strs"] <= 1.0
    for mode in ("official", "strict", "release"):
        spotting = metrics[mode]["spotting"]
        assert spotting["tp"] + spotting["fn"] == n_micro, mode      # every ME found or missed
        assert 0.0 <= metrics[mode]["strs"] <= 1.0
    per_subject = metrics["official"]["per_subject"]
    assert sorted(per_subject) == plan_benchmark("tiny", layout, 0).folds()
    assert sum(s["spotting"]["tp"] + s["spotting"]["fn"] for s in per_subject.values()) == n_micro
    pred = pd.read_csv(run / "predictions.csv", dtype={"subject": str, "video": str})
    strict = metrics["strict"]["spotting"]
    assert strict["tp"] + strict["fp"] == int((~pred.vetoed.astype(bool)).sum())
    assert planned_jobs(work, *TINY_WORKFLOW, *layout_config(layout)) == {}     # complete


@pytest.mark.slow
def test_max_duration_drops_long_micro_events_from_labels_csv(layout_run):
    """dataset.max_duration below the longest micro event drops exactly the micro
    events longer than it from labels.csv; macro events, however long, stay.
    (The generic layout: its labels hold macro events too. The rendered benchmark
    of the layout run is reused: only build_manifest runs, into another run folder.)"""
    work, _ = layout_run("generic")
    full = read_run_labels(work / TINY_RUN / "labels.csv")
    duration = full.offset - full.onset
    micro = full.type == "micro"
    limit = int(duration[micro].max()) - 1
    longer = full[micro & (duration > limit)]
    assert len(longer) >= 1
    assert ((~micro) & (duration > limit)).any()          # a macro event longer than the limit
    target = "results/maxdur/labels.csv"
    config = layout_config("generic", "run_name=maxdur", f"dataset={{max_duration: {limit}}}")
    # no re-render
    assert planned_jobs(work, target, *TINY_WORKFLOW, *config) == {"build_manifest": 1}
    snakemake(work, "--cores", "1", target, *TINY_WORKFLOW, *config)
    cut = read_run_labels(work / target)
    assert len(cut) == len(full) - len(longer)
    kept = full.drop(longer.index)
    assert event_rows(cut) == event_rows(kept)


# ---------------------------------------------------------------- the plan (dry runs, fast)
def test_max_duration_drops_a_video_left_without_me_unless_all_videos_are_scored(tmp_path):
    """At planning (rules/common.smk workflow_plan): max_duration drops the long micro
    events, so a video whose every ME is longer has no ME left and is not planned
    (docs/method.md §1.6: only videos with >= 1 mapped ME); evaluate_all_videos
    plans it again. Seen through a dry run's job counts (one extract_features job
    per planned video, one train_fold job per fold)."""
    from mepkg.synth import plan_benchmark

    plan = plan_benchmark("tiny", "casme3", 0)
    truth = plan.truth()
    micro = truth[truth.type == "micro"]
    duration = micro.offset - micro.onset
    shortest = duration.groupby([micro.subject, micro.video]).min()
    limit = int(shortest.max()) - 1               # the video(s) whose shortest ME is longest
    assert limit < duration.max()
    left = micro[duration <= limit]
    videos_left = set(zip(left.subject, left.video))
    assert len(videos_left) < len(plan.videos)

    work = copy_workflow(tmp_path)
    default = planned_jobs(work, *TINY_WORKFLOW, *layout_config("casme3"))
    assert default["extract_features"] == len(plan.videos)
    assert default["train_fold"] == len(plan.folds())
    jobs = planned_jobs(work, *TINY_WORKFLOW,
                        *layout_config("casme3", f"dataset={{max_duration: {limit}}}"))
    assert jobs["extract_features"] == len(videos_left)
    assert jobs["train_fold"] == len({s for s, _ in videos_left})
    every = planned_jobs(work, *TINY_WORKFLOW, *layout_config(
        "casme3", f"dataset={{max_duration: {limit}, evaluate_all_videos: true}}"))
    assert every["extract_features"] == len(plan.videos)
    assert every["train_fold"] == jobs["train_fold"]     # folds still need an ME


def test_evaluate_all_videos_plans_videos_without_a_mapped_me(tmp_path):
    """A CAS(ME)^3 root with a video that has no label and one whose only ME has no
    emotion: by default neither is planned (docs/method.md §1.6); with
    dataset.evaluate_all_videos both are, and neither adds a fold."""
    root = tmp_path / "casme3"
    root.mkdir()
    casme3_sheet(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", [
        ["spNO.1", "a", 10, 12, 20, "", "", "happy"],
        ["spNO.2", "a", 10, 12, 20, "", "", "surprise"],
        ["spNO.3", "a", 10, 12, 20, "", "", ""]])        # an ME without an emotion
    for subject, video in [("spNO.1", "a"), ("spNO.2", "a"), ("spNO.2", "b"), ("spNO.3", "a")]:
        frame_folder(root / subject / video / "color", n=50)   # spNO.2 b: no label at all
    work = copy_workflow(tmp_path / "wf")
    dataset = f"name: casme3, data_root: {root}"
    default = planned_jobs(work, "--config", f"dataset={{{dataset}}}")
    every = planned_jobs(work, "--config", f"dataset={{{dataset}, evaluate_all_videos: true}}")
    assert (default["extract_features"], default["train_fold"]) == (2, 2)
    assert (every["extract_features"], every["train_fold"]) == (4, 2)
