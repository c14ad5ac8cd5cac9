"""The workflow's files suit Snakemake's tools: snakefmt, retries with more resources.

`snakemake --lint` is checked in tests/test_workflow.py; thread variables set
once per job in tests/test_jobs.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
# Python's encoding declaration (PEP 263): snakefmt, black and Python itself read
# "# Decoding: a ..." in the first two lines as the encoding "a"
CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_workflow_file_starts_with_an_encoding_declaration(path):
    head = path.read_text().splitlines()[:2]
    assert not [line for line in head if CODING.match(line)], f"{path.name}: {head}"


@pytest.mark.skipif(importlib.util.find_spec("snakefmt") is None,
                    reason="snakefmt not installed (pip install -e '.[test]')")
def test_workflow_files_are_snakefmt_clean():
    """With the settings in pyproject.toml [tool.snakefmt]; fix: `snakefmt Snakefile rules`."""
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--compact-diff",
                           "Snakefile", "rules"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_rule_memory_and_runtime_grow_with_the_attempt(path):
    """A job retried after running out of memory or time gets more (mepkg.jobs.per_attempt)."""
    fixed = [line.strip() for line in path.read_text().splitlines()
             if re.match(r"\s+(mem_mb|runtime)=", line) and "per_attempt(" not in line]
    assert not fixed, f"{path.name}: resources not scaled per attempt: {fixed}"


def test_a_retried_job_gets_twice_the_memory_and_runtime(tmp_path):
    """Through Snakemake: the job fails on its first try and records its resources."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent("""
        from mepkg.jobs import per_attempt

        rule job:
            output: "out.txt"
            resources:
                mem_mb=per_attempt(1500),
                runtime=per_attempt(20),
            retries: 1
            shell:
                "echo {resources.mem_mb} {resources.runtime} >> tries.txt; "
                "test $(wc -l < tries.txt) -ge 2 && touch {output}"
        """))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "tries.txt").read_text().split("\n")[:2] == ["1500 20", "3000 40"]
