"""The Snakemake workflow: dry runs, the tiny synthetic run end to end,
incremental reruns, interruption, and SLURM.

Every test runs Snakemake in a temporary copy of the workflow (Snakefile,
config, rules, scripts, profiles), so the checkout's results/ are never
touched; mepkg is imported from the installed package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import (FIXTURES, TINY_RUN, TINY_WORKFLOW, copy_workflow, planned_jobs,
                      snakemake)

# what a decode prior change may re-run (docs/method.md §6: "decoding and evaluation only")
DECODE_AND_AFTER = {"decode_fold", "collect_predictions", "evaluate", "tabulate_metrics",
                    "plot_curves", "plot_confusion", "plot_fold_strs", "plot_threshold_sweep",
                    "summarise_run", "package_model", "all"}


def mtimes(paths) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in paths}


# ---------------------------------------------------------------- dry runs (fast)
def test_dry_run_default_config_plans_every_fold(tmp_path):
    from mepkg.synth import plan_benchmark

    plan = plan_benchmark("small", "sammlv", 0)   # config.yaml's synthetic group
    jobs = planned_jobs(copy_workflow(tmp_path))
    assert jobs["generate_synthetic"] == 1
    assert jobs["train_fold"] == len(plan.folds())
    assert jobs["decode_fold"] == len(plan.folds())
    assert jobs["extract_features"] == jobs["detect_landmarks"] >= len(plan.folds())
    assert jobs["train_all_subjects"] == 1 and jobs["evaluate"] == 3  # official, strict, release


def test_dry_run_slurm_profile(tmp_path):
    work = copy_workflow(tmp_path)
    proc = snakemake(work, "--profile", "profiles/slurm", "-n", *TINY_WORKFLOW)
    assert "Using profiles profiles/slurm" in proc.stdout + proc.stderr
    jobs = planned_jobs(work, "--profile", "profiles/slurm", *TINY_WORKFLOW)
    assert jobs["train_fold"] == 3 and jobs["all"] == 1


def test_lint_is_clean(tmp_path):
    proc = snakemake(copy_workflow(tmp_path), "--lint", *TINY_WORKFLOW)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_bad_config_value_names_the_key(tmp_path):
    proc = snakemake(copy_workflow(tmp_path), "-n", "--config", "decode={p: 2}", check=False)
    assert proc.returncode != 0
    assert "bad value for 'decode.p'" in proc.stderr + proc.stdout


def test_nested_config_values_are_typed(tmp_path):
    # Snakemake reads nested --config values as strings; the workflow types them
    jobs = planned_jobs(copy_workflow(tmp_path), *TINY_WORKFLOW, "--config",
                        "decode={p: 0.6, drop_neutral: false}", "evaluate={sweep_p: [0.5, 0.6]}")
    assert jobs["decode_fold"] == 3


@pytest.mark.skipif(not (FIXTURES / "casme3").is_dir(), reason="no ../shared/fixtures")
def test_dry_run_casme3_plans_folds_from_the_label_sheet(tmp_path):
    """Parse-time plan of a real dataset from its sheet, with the CAS(ME)^3 protocol."""
    from mepkg.datasets import read_labels

    sheet = FIXTURES / "casme3" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    labels = read_labels("casme3", sheet)
    me = labels[(labels.type == "micro") & (labels.emotion != "")]
    for subject, video in set(zip(labels.subject, labels.video)):   # planning needs frames
        color = tmp_path / "casme3" / subject / video / "color"
        color.mkdir(parents=True)
        for i in range(50):         # one window of k 50 at frame_skip 1; listed, never decoded
            (color / f"{i}.jpg").touch()
    work = copy_workflow(tmp_path)
    args = ["--config",
            f"dataset={{name: casme3, data_root: {tmp_path / 'casme3'}, label_files: [{sheet}]}}"]
    proc = snakemake(work, "-n", *args)
    jobs = planned_jobs(work, *args)
    assert jobs["train_fold"] == me.subject.nunique()
    assert jobs["extract_features"] == len(set(zip(me.subject, me.video)))
    assert "k=50, frame_skip=1" in proc.stdout + proc.stderr     # docs/method.md §1.6, CAS(ME)^3


# ---------------------------------------------------------------- the tiny run (slow)
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny synthetic config end to end through Snakemake; (workdir, metrics, seconds)."""
    work = copy_workflow(tmp_path_factory.mktemp("tiny"))
    start = time.perf_counter()
    snakemake(work, "--cores", "2", *TINY_WORKFLOW)
    seconds = time.perf_counter() - start
    metrics = json.loads((work / TINY_RUN / "metrics.json").read_text())
    return work, metrics, seconds


@pytest.mark.slow
def test_tiny_run_writes_metrics_plots_and_summary(tiny_run):
    work, metrics, seconds = tiny_run
    run = work / TINY_RUN
    assert 0.0 <= metrics["strs"] <= 1.0
    assert metrics["headline_mode"] == "official"
    # the headline is the evaluation of the pooled fold predictions against the labels,
    # every fold's subject is scored, and STRS = spotting F1 x recognition F1
    from mepkg.metrics import evaluate

    pred = pd.read_csv(run / "predictions.csv", dtype={"subject": str, "video": str})
    labels = pd.read_csv(run / "labels.csv", dtype={"subject": str, "video": str})
    again = evaluate(pred, labels, mode="official")
    assert metrics["official"]["strs"] == pytest.approx(again["strs"], abs=1e-12)
    assert metrics["official"]["spotting"] == again["spotting"]
    assert sorted(metrics["official"]["per_subject"]) == ["001", "002", "003"]
    assert set(pred.subject) == {"001", "002", "003"} and len(pred) > 0
    micro = labels[labels.type == "micro"]
    sp = metrics["strict"]["spotting"]
    assert sp["tp"] + sp["fn"] == len(micro)                # every ME is found or missed
    assert sp["tp"] + sp["fp"] == int((~pred.vetoed.astype(bool)).sum())
    assert metrics["strs"] == pytest.approx(
        metrics["official"]["spotting"]["f1"] * metrics["official"]["recognition"]["f1"])
    for mode in ("official", "strict", "release"):
        assert 0.0 <= metrics[mode]["strs"] <= 1.0
        assert "strs" in metrics[mode]["without_veto"]
    table = pd.read_csv(run / "metrics.csv", dtype={"scope": str})
    pooled = table[table.scope == "pooled"]
    assert set(zip(pooled["mode"], pooled["veto"])) == {
        ("official", True), ("official", False), ("strict", True), ("strict", False),
        ("release", True), ("release", False)}
    assert pooled.set_index(["mode", "veto"]).loc[("official", True), "strs"] == pytest.approx(
        metrics["strs"])
    for name in ("confusion", "fold_strs", "threshold_sweep"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 1000
    assert len(list((run / "plots" / "curves").glob("*.png"))) == 6
    summary = json.loads((run / "summary.json").read_text())
    assert summary["folds"] == 3 and summary["strs"] == metrics["strs"]
    assert (run / "model_all.pt").stat().st_size > 0     # packaged for `mepkg spot`
    # the frame rate travels from the manifest (SAMM-LV layout: 200 fps) into the
    # features and the model file, where `mepkg spot` derives its frame_skip from it
    from mepkg.h5io import read_features
    from mepkg.model import load_model

    assert read_features(next((run / "features").glob("*.h5"))).attrs["fps"] == 200.0
    assert load_model(run / "model_all.pt")[1]["fps"] == 200.0
    assert planned_jobs(work, *TINY_WORKFLOW) == {}            # complete: nothing left to do
    print(f"tiny synthetic workflow end to end: {seconds:.0f} s")


@pytest.mark.slow
def test_each_fold_trained_on_the_other_subjects_only(tiny_run):
    """LOSO through the workflow: fold S's model records the sha256 of its training
    inputs; it must be that of every feature file except S's (plus labels.csv), and
    its scores hold exactly S's videos."""
    import hashlib

    from mepkg.h5io import read_features, read_scores
    from mepkg.model import load_model

    work, _, _ = tiny_run
    run = work / TINY_RUN
    files = sorted((run / "features").glob("*.h5"))
    subject_of = {f: str(read_features(f).attrs["subject"]) for f in files}
    assert sorted(set(subject_of.values())) == ["001", "002", "003"]
    for held in ("001", "002", "003"):
        h = hashlib.sha256()
        for f in files:
            if subject_of[f] != held:
                h.update(f.read_bytes())
        h.update((run / "labels.csv").read_bytes())
        _, meta = load_model(run / "folds" / held / "model.pt")
        assert meta["input_checksum"] == h.hexdigest(), f"fold {held} trained on other inputs"
        scored = {s.video_id for s in read_scores(run / "folds" / held / "scores.h5")}
        assert scored == {f.stem for f in files if subject_of[f] == held}


def test_plan_gives_each_fold_its_subject_and_the_decoder_only_its_own_fold(tmp_path):
    """Plan level (the job graph, fast): one train_fold job per subject, and each
    decode_fold job reads one train_fold job's output, a different one each.

    (Every train_fold job reads every video's features by design: run_fold holds the
    subject out itself and predicts its videos; test_loso.py and
    test_each_fold_trained_on_the_other_subjects_only check that it does.)"""
    proc = snakemake(copy_workflow(tmp_path), "--dag", *TINY_WORKFLOW)
    nodes = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', proc.stdout, flags=re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", proc.stdout, flags=re.M)
    train = {n: label.split("subject: ")[1] for n, label in nodes.items()
             if label.startswith("train_fold")}
    assert sorted(train.values()) == ["001", "002", "003"]
    decode = [n for n, label in nodes.items() if label.startswith("decode_fold")]
    assert len(decode) == 3
    parents = {d: [a for a, b in edges if b == d and a in train] for d in decode}
    assert sorted(train[p] for ps in parents.values() for p in ps) == ["001", "002", "003"]
    assert all(len(ps) == 1 for ps in parents.values())
    features = [n for n, label in nodes.items() if label.startswith("extract_features")]
    for n in train:
        assert sorted(a for a, b in edges if b == n and a in features) == sorted(features)


@pytest.mark.slow
def test_changing_a_decode_prior_reruns_only_decoding_and_evaluation(tiny_run):
    work, metrics, _ = tiny_run
    run = work / TINY_RUN
    change = ["--config", "decode={p: 0.6}"]
    jobs = planned_jobs(work, *TINY_WORKFLOW, *change)
    assert jobs["decode_fold"] == 3 and jobs["evaluate"] == 3
    assert set(jobs) <= DECODE_AND_AFTER, f"upstream jobs re-planned: {set(jobs) - DECODE_AND_AFTER}"

    upstream = [*run.glob("landmarks/*.h5"), *run.glob("features/*.h5"),
                *run.glob("folds/*/*"), run / "model_all" / "model.pt", run / "labels.csv"]
    before = mtimes(upstream)
    metrics_before = (run / "metrics.json").stat().st_mtime_ns
    snakemake(work, "--cores", "2", *TINY_WORKFLOW, *change)
    assert mtimes(upstream) == before
    assert (run / "metrics.json").stat().st_mtime_ns > metrics_before
    assert yaml_value(run / "decode" / "folds" / f"{metrics_subject(metrics)}.priors.yaml", "p") == 0.6


def yaml_value(path: Path, key: str):
    import yaml

    return yaml.safe_load(path.read_text())[key]


def metrics_subject(metrics: dict) -> str:
    return sorted(metrics["per_subject"])[0]


@pytest.mark.slow
def test_changing_a_feature_setting_reruns_features_and_everything_after(tiny_run):
    work, _, _ = tiny_run
    jobs = planned_jobs(work, *TINY_WORKFLOW, "--config", "features={flow: {winsize: 13}}")
    assert jobs["extract_features"] == 6
    assert jobs["train_fold"] == 3 and jobs["train_all_subjects"] == 1
    assert jobs["decode_fold"] == 3 and jobs["evaluate"] == 3
    # landmarks depend on k, frame_skip and backend only; the data not at all
    assert not {"detect_landmarks", "generate_synthetic", "build_manifest"} & set(jobs)
    jobs = planned_jobs(work, *TINY_WORKFLOW, "--config", "features={k: 20}")
    assert jobs["detect_landmarks"] == 6 and jobs["extract_features"] == 6


CRASH_HOOK = """
import os, signal, sys
from pathlib import Path

if os.environ.get("MEPKG_TEST_CRASH_DIR") and sys.argv and sys.argv[0].endswith("train_fold.py"):
    import mepkg.train as _train

    _counter = Path(os.environ["MEPKG_TEST_CRASH_DIR"]) / "train_fold_jobs"
    _started = len(_counter.read_text()) if _counter.exists() else 0
    with open(_counter, "a") as _f:
        _f.write("x")
    if _started == 1:                       # the second train_fold job to start
        _write_csv = _train.write_csv

        def write_csv(df, path):            # after its first epoch's log: crash everything
            out = _write_csv(df, path)
            (_counter.parent / "crashed").write_text(str(Path(path).parent.name))
            os.killpg(os.getpgid(0), signal.SIGKILL)
            return out

        _train.write_csv = write_csv
"""


@pytest.mark.slow
def test_interrupted_training_resumes_without_redoing_finished_folds(tiny_run, tmp_path):
    """A crash at a fixed point: the second fold job to start (one at a time, so the
    first has finished) kills Snakemake and itself right after its first epoch's log
    (a sitecustomize hook on the job's PYTHONPATH; no polling)."""
    work, _, _ = tiny_run
    run = work / TINY_RUN
    shutil.rmtree(run / "folds")
    shutil.rmtree(run / "logs" / "train_fold", ignore_errors=True)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_HOOK)
    env = dict(os.environ, MEPKG_TEST_CRASH_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(filter(None, [str(hook),
                                                        os.environ.get("PYTHONPATH")])))
    folds = [f"{TINY_RUN}/folds/{s}/scores.h5" for s in ("001", "002", "003")]
    proc = subprocess.run([sys.executable, "-m", "snakemake", *folds, "--cores", "1",
                           *TINY_WORKFLOW],
                          cwd=work, env=env, capture_output=True, text=True, timeout=1800,
                          start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    crashed = (tmp_path / "crashed").read_text()
    done = sorted(p.parent.name for p in run.glob("folds/*/scores.h5"))
    assert len(done) == 1 and crashed not in done, (done, crashed)
    assert (run / "folds" / crashed / "train_log.csv").exists()       # it had started ...
    assert not (run / "folds" / crashed / "model.pt").exists()        # ... and not finished
    finished_before = mtimes(run / "folds" / s / "model.pt" for s in done)

    snakemake(work, "--unlock", *TINY_WORKFLOW)
    snakemake(work, "--cores", "2", *TINY_WORKFLOW)
    assert mtimes(run / "folds" / s / "model.pt" for s in done) == finished_before
    from mepkg.h5io import read_scores

    for subject in ("001", "002", "003"):
        assert read_scores(run / "folds" / subject / "scores.h5")   # complete and readable
    assert not list(run.rglob("*.tmp")), "temporary files left behind"
    assert planned_jobs(work, *TINY_WORKFLOW) == {}


# ---------------------------------------------------------------- SLURM (CI)
def _slurm_up() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "idle" in out.stdout


@pytest.mark.slow
@pytest.mark.slurm
@pytest.mark.skipif(not _slurm_up(), reason="no SLURM cluster (sinfo shows no idle node)")
def test_slurm_profile_runs_the_tiny_workflow_with_the_same_metrics(tiny_run, tmp_path):
    _, local, _ = tiny_run
    work = copy_workflow(tmp_path / "slurm")
    proc = snakemake(work, "--profile", "profiles/slurm", *TINY_WORKFLOW, timeout=3000)
    submitted = (proc.stdout + proc.stderr).count("has been submitted with SLURM jobid")
    assert submitted >= 20, f"only {submitted} jobs went through sbatch"
    metrics = json.loads((work / TINY_RUN / "metrics.json").read_text())
    for mode in ("official", "strict"):
        assert metrics[mode]["spotting"] == local[mode]["spotting"]
        assert metrics[mode]["strs"] == pytest.approx(local[mode]["strs"], abs=1e-12)


@pytest.mark.slow
def test_report_collects_figures_and_metrics(tiny_run, tmp_path):
    work, _, _ = tiny_run
    report = tmp_path / "report.html"
    snakemake(work, *TINY_WORKFLOW, "--report", str(report))
    text = report.read_text(errors="replace")
    for name in ("metrics.csv", "confusion.png", "fold_strs.png", "threshold_sweep.png"):
        assert name in text


@pytest.mark.slow
def test_model_all_is_usable_by_mepkg_spot(tiny_run, tmp_path):
    work, _, _ = tiny_run
    manifest = pd.read_csv(work / TINY_RUN / "manifest.csv", dtype=str)
    video = work / manifest.path.iloc[0]
    proc = subprocess.run([sys.executable, "-m", "mepkg.cli", "spot", str(video), "--model",
                           str(work / TINY_RUN / "model_all.pt"), "--fps", manifest.fps.iloc[0],
                           "--out", str(tmp_path / "spot")], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spot = pd.read_csv(tmp_path / "spot" / "intervals.csv", dtype={"subject": str, "video": str})
    # the same intervals as decoding the packaged model's curve of that video's features
    from mepkg.decode import DecodePriors, decode_videos
    from mepkg.intervals import apply_veto
    from mepkg.h5io import VideoScores, read_features
    from mepkg.model import load_model
    from mepkg.train import predict_video

    row = manifest.iloc[0]
    model, meta = load_model(work / TINY_RUN / "model_all.pt", "cpu")
    fs = read_features(work / TINY_RUN / "features" / f"{row.video_id}.h5")
    curve, logits = predict_video(model, fs.features)
    scores = VideoScores(video_id=row.video_id, subject=row.subject, video=row.video,
                         spot=curve, logits=logits, frame_skip=meta["frame_skip"], k=meta["k"],
                         fps=float(row.fps), n_frames=int(row.n_frames))
    priors = DecodePriors.from_dict(meta["decode"]["priors"])
    expected = apply_veto(decode_videos([scores], priors, meta["decode"]["k_prime"]))
    assert list(zip(spot.onset, spot.offset, spot.emotion)) == list(
        zip(expected.onset, expected.offset, expected.emotion))
    assert (spot.subject == row.subject).all() and (spot.video == row.video).all()
    assert (tmp_path / "spot" / "timeline.png").stat().st_size > 1000


# ---------------------------------------------------------------- the hazards variant (slow)
@pytest.mark.slow
def test_hazards_variant_runs_end_to_end_without_intervals_where_the_face_is_gone(tmp_path):
    """config/hazards.yaml at tiny size: occluder, drift out, leave and re-enter, flicker,
    features with match_brightness. No job fails, the unanalysed share is reported, and
    no decoded interval overlaps a recorded no-face stretch."""
    from mepkg.synth.hazards import intervals_over_no_face

    work = copy_workflow(tmp_path)
    start = time.perf_counter()
    snakemake(work, "--cores", "2", "--configfile", "config/tiny.yaml", "config/hazards.yaml")
    seconds = time.perf_counter() - start
    run = work / "results" / "synthetic-tiny-sammlv-hazards"
    (root,) = [p for p in (work / "resources" / "synthetic").glob("tiny-sammlv-0-hazards-*")
               if p.is_dir()]                # beside it: its .log and .benchmark.tsv
    hazards = pd.read_csv(root / "hazards.csv", dtype={"subject": str, "video": str})
    assert set(hazards.hazard) == {"occluder", "drift_out", "leave", "no_face"}
    assert (hazards.hazard == "leave").sum() == (hazards.hazard == "no_face").sum() == 6
    pred = pd.read_csv(run / "predictions.csv", dtype={"subject": str, "video": str})
    assert len(pred) > 0 and intervals_over_no_face(pred, hazards).empty
    summary = json.loads((run / "summary.json").read_text())
    assert summary["config"]["features"]["match_brightness"] is True
    assert 0.5 < summary["analysed"]["usable_share"] < 1.0
    assert all(v["reused_crop"] > 0 for v in summary["analysed"]["videos"].values())
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["strs"] <= 1.0
    print(f"tiny hazards workflow end to end: {seconds:.0f} s, spotting F1 "
          f"{metrics['spotting']['f1']:.3f}, usable {summary['analysed']['usable_share']:.2f}")
