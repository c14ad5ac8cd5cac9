"""The setup every workflow job shares (workflow_scripts/*.py call :func:`setup_job` first).

A job's compute threads, its log and its progress lines are set in one place:

- threads: the rule's ``threads`` (Snakemake already scales them down to
  ``--cores``; the Snakefile caps ``--cores`` at :func:`usable_cores`), and
  never more than the CPUs this process may run on (its affinity mask: the
  cores SLURM granted the job, or the machine's). The budget goes to every
  thread pool a job can start: OpenMP/BLAS (env vars, read when numpy, torch
  or numba load; Snakemake sets them per job, mepkg only where they differ),
  torch intra- and inter-op, OpenCV and numba.
- logging: to the rule's log file and to stderr; an uncaught exception is
  written with its traceback into the log before the job fails; Ctrl-C
  (KeyboardInterrupt) is one line, ``interrupted``, without a traceback.
- resources: :func:`per_attempt` scales a rule's mem_mb/runtime with each retry.
- progress: tqdm bars become a log line every ``PROGRESS_INTERVAL`` seconds
  (a bar redrawn with carriage returns is unreadable in a log file).

Call it before importing torch, numpy or cv2 where possible, so that the
thread env vars apply from the start.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import shutil
import sys

log = logging.getLogger(__name__)

# thread-count env vars of the pools a job may start. Snakemake sets these to
# the job's threads in every script/shell job's environment: OpenMP (torch,
# OpenCV builds with OpenMP), the BLAS libraries behind numpy/scipy, numexpr
SNAKEMAKE_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                         "GOTO_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# and these it does not know: numba's and OpenCV's own pools
THREAD_ENV_VARS = SNAKEMAKE_THREAD_VARS + ("NUMBA_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")
# How torch's OpenMP workers wait between ops: briefly spinning, then asleep.
# Spinning long (the OpenMP default spins ~3 ms) takes the cores the fused CPU
# kernels' threads need (mepkg.scan_cpu): on a busy 2-core machine 2 threads ran
# a step 3-5x slower than 1. Sleeping at once (PASSIVE) pays a wake-up per torch
# op: on free cores the paper model's step at 2 threads ran 1.45-1.49x its
# 1-thread rate; spinning 10,000 rounds (~0.1 ms) first: 1.69-1.76x
# (docs/benchmarks.md). GOMP_SPINCOUNT is GNU OpenMP's (the PyPI wheels'), where it
# overrides the policy; PASSIVE covers the other runtimes.
# Read when the OpenMP runtime loads (with torch); any of these in the
# environment wins over all of them.
OPENMP_WAIT = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}
OPENMP_WAIT_USER_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
PROGRESS_INTERVAL = 30.0   # seconds between progress lines in a job's log
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask (SLURM's grant, taskset), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # no affinity masks (macOS, Windows)
        return os.cpu_count() or 1


# what a machine on which torch can see a GPU has: NVIDIA's kernel driver (Linux,
# WSL through nvidia-smi) or AMD's ROCm device (torch's HIP builds answer to cuda)
GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")


def gpu_driver_present() -> bool:
    """Whether this machine has a GPU driver torch could use (no import of torch)."""
    return (any(os.path.exists(f) for f in GPU_DRIVER_FILES)
            or shutil.which("nvidia-smi") is not None)


def uses_gpu(device: str) -> bool:
    """Whether a job run with torch device ``device`` (auto | cpu | cuda[:n]) computes on a GPU.

    ``auto`` asks torch whether CUDA is available, as
    :func:`mepkg.train.resolve_device` does in the job; torch (~1-2 s to import,
    in every parse of the Snakefile) is imported only where a GPU driver is
    installed (:func:`gpu_driver_present`).
    """
    if device == "auto":
        if not gpu_driver_present():
            return False
        import torch

        return torch.cuda.is_available()
    return device.split(":", 1)[0] == "cuda"


def per_attempt(base: int):
    """A rule resource (mem_mb, runtime) that grows with each try: ``base`` x attempt.

    For ``resources:`` in rules/*.smk. The SLURM profile retries a failed job
    (``retries``); one killed for memory or time gets twice as much on its
    second try rather than the same again.
    """

    def value(wildcards, attempt: int) -> int:
        return base * attempt

    return value


def set_openmp_wait() -> None:
    """Set :data:`OPENMP_WAIT` unless the environment says how OpenMP workers wait.

    Call before torch loads: its OpenMP runtime reads these once.
    """
    if not any(var in os.environ for var in OPENMP_WAIT_USER_VARS):
        os.environ.update(OPENMP_WAIT)


def limit_threads(threads: int) -> int:
    """Cap every compute thread pool of this process at ``threads`` (and the usable cores).

    Returns the number applied. Env vars cover libraries loaded later; one
    that already holds the number (in a workflow job, Snakemake sets
    :data:`SNAKEMAKE_THREAD_VARS` to the job's threads) is left as it is.
    torch, OpenCV and numba are also set directly when already imported
    (OpenCV always: it is cheap to import and ignores env vars set late).
    """
    n = max(1, min(int(threads), usable_cores()))
    for var in THREAD_ENV_VARS:
        if var == "NUMBA_NUM_THREADS" and "numba" in sys.modules:
            continue   # read at import; changed later, it makes numba's next compile fail
        if os.environ.get(var) != str(n):
            os.environ[var] = str(n)
    set_openmp_wait()
    import cv2

    cv2.setNumThreads(n)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:   # only settable before torch's first parallel work
            pass
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return n


class _LogStream(io.TextIOBase):
    """A file for tqdm that turns each redraw into one log line."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.logger.info(line)
        return len(text)


def progress_to_log(interval: float = PROGRESS_INTERVAL) -> None:
    """Make every tqdm bar of this process log a line each ``interval`` s instead of redrawing."""
    import tqdm

    if getattr(tqdm.tqdm.__init__, "_mepkg_job", False):
        return
    init = functools.partialmethod(tqdm.tqdm.__init__, file=_LogStream(logging.getLogger("progress")),
                                   mininterval=interval, maxinterval=interval, ascii=True,
                                   ncols=100)
    init._mepkg_job = True
    tqdm.tqdm.__init__ = init


def log_to(path: str | os.PathLike | None, level: int = logging.INFO) -> None:
    """Root logging to ``path`` (when given) and stderr; uncaught exceptions logged with traceback."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handlers.insert(0, logging.FileHandler(path))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)

    def log_uncaught(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):   # Ctrl-C: one line, no traceback
            logging.getLogger("job").error("interrupted")
            return
        logging.getLogger("job").critical("job failed: %s: %s", kind.__name__, value,
                                          exc_info=(kind, value, tb))

    sys.excepthook = log_uncaught


def setup_job(smk) -> int:
    """Set up a workflow job from its ``snakemake`` object; returns its thread budget.

    Logging to ``smk.log[0]`` (and stderr), tracebacks into the log,
    progress bars as log lines, every thread pool capped at ``smk.threads``.
    """
    log_to(smk.log[0] if len(smk.log) else None)
    progress_to_log()
    threads = limit_threads(smk.threads)
    log.info("rule %s: %d thread(s) (%d usable cores)", smk.rule, threads, usable_cores())
    return threads
