"""Mutation testing of the modules whose bugs a test must catch.

    pip install -e .[dev]                  # mutmut
    python benchmarks/mutation.py          # decode, metrics, targets, train's fold split
    python benchmarks/mutation.py metrics  # one module
    python benchmarks/mutation.py --show-survivors decode

Each module runs in its own scratch copy of the checkout (``--workdir``,
default /tmp/mepkg-mutation/<module>) with mutmut 3 configured to mutate that
one file and to run only that module's fast targeted tests (``RUNNERS``), so a
mutant costs a few seconds. For train.py only the mutants of ``_run_fold``
whose change touches the leave-one-subject-out split (``FOLD_SPLIT_LINES``)
are counted; the rest of ``_run_fold`` is the training loop, which the
training tests check as a whole.

Writes ``<workdir>/summary.json`` and prints killed/total per module; the
numbers of the last run are in docs/testing.md. Not part of CI: a full run
takes tens of minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> (file to mutate, fast tests that are its runner, mutant-name glob)
RUNNERS = {
    "decode": ("mepkg/decode.py", ["tests/test_decode.py", "tests/test_decode_edges.py",
                                   "tests/test_settings.py", "tests/test_decode_variants.py",
                                   "-m", "not slow"], "mepkg.decode.*"),
    "metrics": ("mepkg/metrics.py", ["tests/test_metrics.py", "tests/test_release.py",
                                     "-m", "not slow"], "mepkg.metrics.*"),
    "targets": ("mepkg/targets.py", ["tests/test_targets.py", "-m", "not slow"],
                "mepkg.targets.*"),
    "train": ("mepkg/train.py", ["tests/test_loso.py", "tests/test_train.py", "-m", "not slow"],
              "mepkg.train.x__run_fold*"),
}
# a train.py mutant counts for "the fold split" when its diff touches one of these
FOLD_SPLIT_LINES = re.compile(r"ALL_SUBJECTS|\bheld\b|\btrain\b|attrs\[\"subject\"\]")
COPY = ["mepkg", "tests", "pyproject.toml", "config.yaml", "workflow_scripts"]
KILLED = {"killed"}


def scratch_copy(module: str, workdir: Path) -> Path:
    path, tests, _ = RUNNERS[module]
    dest = workdir / module
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    args = ", ".join(json.dumps(a) for a in ["-x", "-q", "-p", "no:cacheprovider", *tests])
    with open(dest / "pyproject.toml", "a") as f:
        f.write(f"""
[tool.mutmut]
source_paths = ["mepkg"]
only_mutate = ["{path}"]
pytest_add_cli_args_test_selection = [{args}]
also_copy = ["config.yaml", "workflow_scripts"]
process_isolation = "forkserver"
use_git_change_detection = false
""")
    return dest


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)     # the scratch copy's mutants/ must be what is imported
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_module(module: str, workdir: Path, max_children: int) -> dict:
    dest = scratch_copy(module, workdir)
    _, _, glob = RUNNERS[module]
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    proc = subprocess.run(cmd, cwd=dest, env=_env(), capture_output=True, text=True)
    (dest / "mutmut-run.log").write_text(proc.stdout + proc.stderr)
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                         cwd=dest, env=_env(), capture_output=True, text=True).stdout
    status = dict(re.findall(r"^\s+(\S+): (.+)$", out, flags=re.M))
    pattern = re.compile(glob.replace(".", r"\.").replace("*", ".*") + "$")
    status = {name: s.strip() for name, s in status.items() if pattern.match(name)}
    diffs = {}
    for name in status:
        if status[name] not in KILLED or module == "train":
            diffs[name] = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=dest,
                                         env=_env(), capture_output=True, text=True).stdout
    if module == "train":       # only the mutants of the LOSO split itself
        changed = {n: "\n".join(l for l in d.splitlines() if l[:1] in "+-"
                                and not l.startswith(("+++", "---"))) for n, d in diffs.items()}
        status = {n: s for n, s in status.items() if FOLD_SPLIT_LINES.search(changed[n])}
    killed = sum(s in KILLED for s in status.values())
    survivors = {n: diffs[n] for n, s in status.items() if s not in KILLED}
    return {"module": module, "file": RUNNERS[module][0], "killed": killed,
            "total": len(status), "score": killed / len(status) if status else None,
            "by_status": {s: sum(v == s for v in status.values()) for s in set(status.values())},
            "survivors": survivors, "returncode": proc.returncode}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(RUNNERS), choices=[*RUNNERS, []])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mepkg-mutation"))
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--show-survivors", action="store_true")
    args = parser.parse_args(argv)
    results = {}
    for module in args.modules:
        r = run_module(module, args.workdir, args.max_children)
        results[module] = r
        score = f"{100 * r['score']:.1f}%" if r["score"] is not None else "n/a"
        print(f"{r['file']:<18} killed {r['killed']:>4} / {r['total']:<4} ({score}) "
              f"{r['by_status']}", flush=True)
        if args.show_survivors:
            for name, diff in r["survivors"].items():
                print(f"--- {name}\n{diff}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    summary = args.workdir / "summary.json"
    old = json.loads(summary.read_text()) if summary.exists() else {}
    summary.write_text(json.dumps({**old, **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
