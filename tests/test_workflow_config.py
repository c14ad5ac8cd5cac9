"""One declaration per setting, params = what a script reads, and the thread budget.

Fast tests read config.yaml, the schema, the rule files and the scripts. The
slow ones run the tiny workflow once (with --cores 64, more than this
machine has) and dry-run changes against it.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import time
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from mepkg.decode import DecodePriors
from mepkg.features import FeatureConfig
from mepkg.jobs import usable_cores
from mepkg.metrics import EvaluateSettings
from mepkg.model import ModelConfig
from mepkg.plots import PlotSettings
from mepkg.quality import QualityPolicy
from mepkg.train import TrainConfig
from conftest import (ROOT, TINY_RUN, TINY_WORKFLOW, copy_workflow, planned_jobs,
                      snakemake)

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
SCHEMA = yaml.safe_load((ROOT / "rules" / "schemas" / "config.schema.yaml").read_text())


def schema_of(*path: str) -> dict:
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return node


def config_of(*path: str):
    node = CONFIG
    for key in path:
        node = node[key]
    return node


def settings(cls) -> dict:
    """A dataclass's defaults, tuples as lists (as YAML reads them)."""
    out = {}
    for f in dataclasses.fields(cls):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def drop(values: dict, names) -> dict:
    return {k: v for k, v in values.items() if k not in set(names)}


# (config path, the dataclass's defaults as config.yaml nests them)
def _features():
    values = drop(settings(FeatureConfig), FeatureConfig.FIXED)
    return {**drop(values, FeatureConfig.FLOW), "flow": {k: values[k] for k in FeatureConfig.FLOW}}


def _train():
    values = drop(settings(TrainConfig), TrainConfig.EXECUTION)
    values["model"] = drop(settings(ModelConfig), ModelConfig.STRUCTURAL)
    return values


STAGES = {
    "features": _features,
    "train": _train,
    "decode": lambda: settings(DecodePriors),
    "quality": lambda: settings(QualityPolicy),
    "evaluate": lambda: settings(EvaluateSettings),
    "plots": lambda: settings(PlotSettings),
}


def schema_defaults(node: dict):
    if node.get("type") == "object" and "properties" in node:
        return {k: schema_defaults(sub) for k, sub in node["properties"].items()}
    return node.get("default")


# ---------------------------------------------------------------- one declaration (fast)
@pytest.mark.parametrize("group", sorted(STAGES))
def test_dataclass_config_and_schema_declare_the_same_settings(group):
    """For every setting: config.yaml value == dataclass default == schema default."""
    declared = STAGES[group]()
    assert config_of(group) == declared, f"config.yaml {group} drifted from the dataclass"
    assert schema_defaults(schema_of(group)) == declared, f"schema {group} drifted"


def test_config_yaml_and_schema_agree_everywhere():
    """Also the groups without a dataclass (dataset, synthetic, compute)."""
    assert schema_defaults(SCHEMA) == CONFIG
    assert Draft202012Validator(SCHEMA).is_valid(CONFIG)


def test_execution_settings_live_in_compute():
    assert CONFIG["compute"]["train_device"] == TrainConfig.device
    assert CONFIG["compute"]["train_cuda_graph"] == TrainConfig.cuda_graph
    assert not set(TrainConfig.EXECUTION) & set(CONFIG["train"])


def _probes(node: dict) -> list:
    """Values around each bound of a numeric schema node (integers: every one within 3)."""
    values = []
    for key in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        if key in node:
            bound = node[key]
            values += (list(range(bound - 3, bound + 4)) if node.get("type") == "integer"
                       else [bound - 0.01, bound, bound + 0.01])
    return values


def _accepts(cls, name, value) -> bool:
    try:
        cls(**{name: value})
    except ValueError:
        return False
    return True


BOUNDED = [(cls, group, name) for group, cls, path in [
    ("features", FeatureConfig, ("features",)), ("train", TrainConfig, ("train",)),
    ("decode", DecodePriors, ("decode",)), ("model", ModelConfig, ("train", "model")),
    ("quality", QualityPolicy, ("quality",))]
    for name in schema_of(*path)["properties"]
    if name in {f.name for f in dataclasses.fields(cls)}
    and schema_of(*path)["properties"][name].get("type") in ("integer", "number")]


@pytest.mark.parametrize("cls,group,name", BOUNDED, ids=[f"{g}.{n}" for _, g, n in BOUNDED])
def test_schema_bounds_agree_with_what_the_dataclass_validates(cls, group, name):
    """Where a dataclass checks a setting, it accepts exactly what the schema accepts."""
    path = ("train", "model") if group == "model" else (group,)
    node = schema_of(*path)["properties"][name]
    probes = _probes(node)
    schema_ok = {v: Draft202012Validator(node).is_valid(v) for v in probes}
    class_ok = {v: _accepts(cls, name, v) for v in probes}
    if all(class_ok.values()):
        return          # not validated by the dataclass: the schema is the only check
    assert class_ok == schema_ok, f"{group}.{name}: schema {schema_ok} vs {cls.__name__} {class_ok}"


# ---------------------------------------------------------------- params (fast)
def rule_blocks() -> dict[str, dict]:
    """rule name -> {"params": set of names, "script": path, "text": block} from rules/*.smk."""
    rules = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        text = smk.read_text()
        for match in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", text, re.M):
            body = match.group(2)
            params = re.search(r"^    params:\n((?:        .*\n|\s*\n)+)", body, re.M)
            script = re.search(r"^    script:\n\s+\"\.\./(.+?)\"", body, re.M)
            names = set(re.findall(r"^        (\w+)=", params.group(1), re.M)) if params else set()
            rules[match.group(1)] = {"params": names, "text": body,
                                     "script": script.group(1) if script else None}
    return rules


def script_reads(path: Path) -> set[str]:
    """Names of snakemake.params.<name> (and params["name"]) a script uses."""
    reads = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "params" and getattr(node.value.value, "id", "") == "snakemake":
            reads.add(node.attr)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "params" and isinstance(node.slice, ast.Constant):
            reads.add(node.slice.value)
    return reads


RULES = {name: r for name, r in rule_blocks().items() if r["script"]}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_params_are_exactly_what_its_script_reads(rule):
    block = RULES[rule]
    script = ROOT / block["script"]
    assert block["params"] == script_reads(script), (
        f"rule {rule}: params {sorted(block['params'])}, {script.name} reads "
        f"{sorted(script_reads(script))}")
    source = script.read_text()
    assert "snakemake.config" not in source, f"{script.name} reads the config around its params"
    assert "setup_job(snakemake)" in source, f"{script.name} skips the shared job setup"


def test_no_execution_setting_is_a_param():
    for rule, block in RULES.items():
        params = block["text"].split("    params:", 1)[-1].split("\n    log:", 1)[0]
        if "    params:" in block["text"]:
            assert 'config["compute"]' not in params, f"rule {rule}: compute setting in params"


def test_every_rule_found():
    assert len(RULES) == len(list((ROOT / "workflow_scripts").glob("*.py"))) == 17


# ---------------------------------------------------------------- thread budget (fast)
def test_dry_run_with_more_cores_than_the_machine_caps_threads(tmp_path):
    work = copy_workflow(tmp_path)
    proc = snakemake(work, "-n", "--cores", "64", *TINY_WORKFLOW, "--config",
                     "compute={train_threads: 8}")
    out = proc.stdout + proc.stderr
    n = usable_cores()
    if n < 64:
        assert f"--cores 64 > {n} usable cores: running at most {n} threads of jobs at once" in out
    threads = {int(t) for t in re.findall(r"Training LOSO fold \w+ \(\d+ epochs, (\d+) threads\)", out)}
    assert threads == {min(8, n)}


def test_slurm_dry_run_is_not_capped(tmp_path):
    proc = snakemake(copy_workflow(tmp_path), "--profile", "profiles/slurm", "-n", *TINY_WORKFLOW)
    assert "usable cores" not in proc.stdout + proc.stderr


# ---------------------------------------------------------------- training jobs per GPU
def test_training_on_a_gpu_limits_jobs_per_gpu(tmp_path):
    """The training rules hold a GPU slot when they train on a GPU; the run limits the slots
    to compute.train_jobs_per_gpu (a dry run plans; nothing trains on this CUDA-less machine)."""
    work = copy_workflow(tmp_path)
    text = (ROOT / "rules" / "train.smk").read_text()
    for rule in ("train_fold", "train_all_subjects"):
        assert "**TRAIN_RESOURCES" in text.split(f"rule {rule}:", 1)[1].split("\nrule ", 1)[0]
    assert "gpu_slots=int(TRAIN_ON_GPU)" in text
    gpu = "compute={train_device: cuda, train_jobs_per_gpu: 3}"
    out = snakemake(work, "-n", "--cores", "2", *TINY_WORKFLOW, "--config", gpu)
    assert "training on the GPU: at most 3 training job(s) at once" in out.stdout + out.stderr
    out = snakemake(work, "-n", "--cores", "2", *TINY_WORKFLOW, "--config", "compute={train_device: cpu}")
    assert "training on the GPU" not in out.stdout + out.stderr
    out = snakemake(work, "-n", "--profile", "profiles/slurm", *TINY_WORKFLOW, "--config", gpu)
    assert "training on the GPU" not in out.stdout + out.stderr    # each SLURM job has its GPU


# ---------------------------------------------------------------- the tiny run (slow)
@pytest.fixture(scope="module")
def tiny_64(tmp_path_factory):
    """The tiny run with --cores 64; (workdir, seconds, snakemake output)."""
    work = copy_workflow(tmp_path_factory.mktemp("tiny64"))
    start = time.perf_counter()
    proc = snakemake(work, "--cores", "64", *TINY_WORKFLOW)
    return work, time.perf_counter() - start, proc.stdout + proc.stderr


def job_spans(logs: Path) -> list[tuple[float, float, int, str]]:
    """(start, end, threads, log) of every job, from its log's first and last timestamps."""
    from datetime import datetime

    spans = []
    for path in logs.rglob("*.log"):
        stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", path.read_text(), re.M)
        threads = re.search(r"rule \w+: (\d+) thread", path.read_text())
        if stamps and threads:
            t = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp() for s in stamps]
            spans.append((t[0], t[-1], int(threads.group(1)), path.name))
    return spans


@pytest.mark.slow
def test_more_cores_than_the_machine_never_oversubscribes(tiny_64):
    work, seconds, out = tiny_64
    n = usable_cores()
    spans = job_spans(work / TINY_RUN / "logs")
    assert len(spans) >= 30                     # every job logged its thread budget
    assert all(threads <= n for *_, threads, _ in spans)
    for start, *_ in spans:                     # threads of the jobs running at each start
        running = [s for s in spans if s[0] <= start < s[1]]
        assert sum(s[2] for s in running) <= n, f"at {start}: {running}"
    print(f"tiny workflow with --cores 64 on {n} usable cores: {seconds:.0f} s")


@pytest.mark.slow
def test_changing_the_sweep_reruns_only_the_sweep_plot(tiny_64):
    work, _, _ = tiny_64
    jobs = planned_jobs(work, *TINY_WORKFLOW, "--config", "evaluate={sweep_p: [0.5, 0.6]}")
    assert jobs.get("plot_threshold_sweep") == 1
    assert set(jobs) <= {"plot_threshold_sweep", "all"}, jobs


@pytest.mark.slow
def test_changing_compute_reruns_nothing(tiny_64):
    work, _, _ = tiny_64
    change = "compute={train_threads: 1, train_device: cpu, train_mem_mb: 4000, train_gpus: 1}"
    assert planned_jobs(work, *TINY_WORKFLOW, "--config", change) == {}


@pytest.mark.slow
def test_decode_records_the_k_prime_it_used(tiny_64):
    from mepkg.decode import fold_k_primes, read_priors

    work, _, _ = tiny_64
    run = work / TINY_RUN
    import pandas as pd

    labels = pd.read_csv(run / "labels.csv", dtype={"subject": str, "video": str})
    folds = sorted(p.stem for p in (run / "decode" / "folds").glob("*.csv"))
    expected = fold_k_primes(labels, 7, folds, DecodePriors(k_rule="train"))
    for fold in folds:
        priors, k_prime = read_priors(run / "decode" / "folds" / f"{fold}.priors.yaml")
        assert k_prime == expected[fold] and priors == DecodePriors(k_prime=expected[fold])


@pytest.mark.slow
def test_jobs_per_gpu_cap_holds_in_a_real_run(tiny_64, tmp_path):
    """The tiny run's training again, each job holding one GPU slot as on a GPU machine
    (this machine has no CUDA, so the rules declare 0: --set-resources gives them 1), at
    1 thread each on 2 cores: with compute.train_jobs_per_gpu 1 no two training jobs
    overlap (the cores would allow two); with 2, two run at once."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(tiny_64[0], work, symlinks=True)
    run = work / TINY_RUN
    targets = [f"{TINY_RUN}/folds/{s}/scores.h5" for s in ("001", "002", "003")]
    targets.append(f"{TINY_RUN}/model_all/model.pt")
    pretend_gpu = ["--set-resources", "train_fold:gpu_slots=1", "train_all_subjects:gpu_slots=1"]
    most = {}
    for per_gpu in (1, 2):
        for path in (run / "folds", run / "model_all", run / "logs" / "train_fold"):
            shutil.rmtree(path, ignore_errors=True)
        (run / "logs" / "train_all_subjects.log").unlink(missing_ok=True)
        snakemake(work, *targets, "--cores", "2", *TINY_WORKFLOW, *pretend_gpu, "--config",
                  f"compute={{train_threads: 1, train_jobs_per_gpu: {per_gpu}}}")
        spans = job_spans(run / "logs" / "train_fold") + [
            s for s in job_spans(run / "logs") if s[3] == "train_all_subjects.log"]
        assert len(spans) == 4, spans
        most[per_gpu] = max(sum(1 for s in spans if s[0] <= start < s[1])
                            for start, *_ in spans)
    assert most == {1: 1, 2: 2}, most
    print(f"training jobs at once with compute.train_jobs_per_gpu 1 and 2: {most[1]}, {most[2]}")
