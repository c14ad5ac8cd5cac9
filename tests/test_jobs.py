"""mepkg.jobs: the setup every workflow job shares (threads, logging, progress).

Each test runs in a fresh Python process: thread pools and logging are
process-wide state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mepkg.jobs import SNAKEMAKE_THREAD_VARS, THREAD_ENV_VARS, usable_cores

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, tmp_path: Path, env: dict | None = None):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(code))
    environ = {k: v for k, v in os.environ.items()
               if k not in THREAD_ENV_VARS}   # what the parent had must not leak in
    environ.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=environ, timeout=300)


FAKE_SNAKEMAKE = """
    from types import SimpleNamespace
    snakemake = SimpleNamespace(log=[{log!r}], threads={threads}, rule="fake_rule")
"""


def test_usable_cores_is_the_affinity_mask():
    assert usable_cores() == len(os.sched_getaffinity(0)) >= 1


def test_job_threads_cap_every_pool_before_and_after_import(tmp_path):
    """A 1-thread job: torch (imported after setup), OpenCV, BLAS env vars, numba all at 1."""
    proc = run_python(FAKE_SNAKEMAKE.format(log=str(tmp_path / "job.log"), threads=1) + """
    from mepkg.jobs import setup_job, THREAD_ENV_VARS
    import os, json
    n = setup_job(snakemake)
    import torch, cv2
    out = {"n": n, "torch": torch.get_num_threads(), "cv2": cv2.getNumThreads(),
           "env": {v: os.environ[v] for v in THREAD_ENV_VARS}}
    try:
        import numba
        out["numba"] = numba.get_num_threads()
    except ImportError:
        out["numba"] = 1
    print(json.dumps(out))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["n"] == 1 and out["torch"] == 1 and out["cv2"] == 1 and out["numba"] == 1
    assert set(out["env"].values()) == {"1"}


@pytest.mark.parametrize("given, expected", [
    ({}, {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": None}),
    ({"GOMP_SPINCOUNT": "0"}, {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "0"}),
])
def test_jobs_openmp_workers_spin_briefly_between_ops_unless_told(tmp_path, given, expected):
    # set before torch loads its OpenMP runtime, which reads them once; a user's
    # word on waiting (either variable) wins over both
    code = FAKE_SNAKEMAKE.format(log=str(tmp_path / "job.log"), threads=2) + """
    import json, os, sys
    from mepkg.jobs import setup_job
    setup_job(snakemake)
    assert "torch" not in sys.modules
    print(json.dumps({v: os.environ.get(v) for v in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}))
    """
    environ_before = {v: os.environ.pop(v, None) for v in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                                           "KMP_BLOCKTIME")}
    try:
        proc = run_python(code, tmp_path, given)
    finally:
        os.environ.update({v: x for v, x in environ_before.items() if x is not None})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == expected


def test_job_threads_never_exceed_the_usable_cores(tmp_path):
    """A rule asking for 64 threads on a smaller machine gets the usable cores."""
    proc = run_python(FAKE_SNAKEMAKE.format(log=str(tmp_path / "job.log"), threads=64) + """
    import torch
    from mepkg.jobs import setup_job
    n = setup_job(snakemake)
    print(n, torch.get_num_threads())
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    n, torch_threads = map(int, proc.stdout.split()[-2:])
    assert n == torch_threads == min(64, usable_cores())


def test_failing_job_writes_its_traceback_into_the_log(tmp_path):
    log = tmp_path / "logs" / "job.log"
    proc = run_python(FAKE_SNAKEMAKE.format(log=str(log), threads=1) + """
    import logging
    from mepkg.jobs import setup_job
    setup_job(snakemake)
    logging.getLogger("mepkg.x").info("reading the inputs")

    def decode():
        raise ValueError("scores.h5: no curve for video 006_1")

    decode()
    """, tmp_path)
    assert proc.returncode == 1
    text = log.read_text()
    assert "reading the inputs" in text
    assert "Traceback (most recent call last)" in text
    assert "in decode" in text and "ValueError: scores.h5: no curve for video 006_1" in text
    assert "ValueError: scores.h5" in proc.stderr          # and on stderr, once
    assert proc.stderr.count("Traceback") == 1


def test_progress_bars_become_log_lines(tmp_path):
    log = tmp_path / "job.log"
    proc = run_python(FAKE_SNAKEMAKE.format(log=str(log), threads=1) + """
    from mepkg.jobs import setup_job
    setup_job(snakemake)
    from tqdm import tqdm
    for _ in tqdm(range(50), desc="features 006_1", unit="frame"):
        pass
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in log.read_text().splitlines() if "features 006_1" in line]
    assert lines and "50/50" in lines[-1]
    assert "\r" not in log.read_text()
    assert len(lines) <= 3        # start and end, not one line per redraw


def test_thread_vars_snakemake_set_are_not_set_again(tmp_path):
    """In a Snakemake job the OpenMP/BLAS vars already hold the job's threads: mepkg
    writes only those Snakemake does not set (numba's and OpenCV's)."""
    proc = run_python(FAKE_SNAKEMAKE.format(log=str(tmp_path / "job.log"), threads=1) + """
    import os
    from mepkg import jobs

    class Recording(dict):
        written = []
        def __setitem__(self, key, value):
            self.written.append(key)
            super().__setitem__(key, value)

    os.environ = Recording(os.environ)
    n = jobs.setup_job(snakemake)
    print(" ".join(sorted(set(os.environ.written) & set(jobs.THREAD_ENV_VARS))))
    """, tmp_path, env={var: "1" for var in SNAKEMAKE_THREAD_VARS})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["NUMBA_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"]


@pytest.mark.parametrize("threads", [1, 2])
def test_snakemake_script_threads_reach_the_job(tmp_path, threads):
    """Through Snakemake: --cores 64 on this machine, the rule asks for `threads`."""
    (tmp_path / "job.py").write_text(
        "from mepkg.jobs import setup_job\n"
        "n = setup_job(snakemake)\n"
        "import torch\n"
        "open(snakemake.output[0], 'w').write(f'{n} {torch.get_num_threads()}')\n")
    (tmp_path / "Snakefile").write_text(textwrap.dedent(f"""
        rule job:
            output: "out.txt"
            log: "job.log"
            threads: {threads}
            script: "job.py"
        """))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "64"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    n, torch_threads = map(int, (tmp_path / "out.txt").read_text().split())
    assert n == torch_threads == min(threads, usable_cores())
    assert "rule job:" in (tmp_path / "job.log").read_text()


def test_uses_gpu_reads_the_torch_device():
    import torch

    from mepkg.jobs import uses_gpu

    assert not uses_gpu("cpu")
    assert uses_gpu("cuda") and uses_gpu("cuda:1")
    assert uses_gpu("auto") == torch.cuda.is_available()


def test_uses_gpu_auto_does_not_import_torch_without_a_gpu_driver(tmp_path, monkeypatch):
    from mepkg import jobs

    if not jobs.gpu_driver_present():      # this machine: the Snakefile's parse stays light
        proc = run_python("""
        import sys
        from mepkg.jobs import uses_gpu
        assert uses_gpu("auto") is False and "torch" not in sys.modules
        """, tmp_path)
        assert proc.returncode == 0, proc.stderr
    monkeypatch.setattr(jobs, "GPU_DRIVER_FILES", ())
    monkeypatch.setattr(jobs.shutil, "which", lambda name: None)
    assert jobs.uses_gpu("auto") is False and jobs.uses_gpu("cuda")
