"""Shared test helpers, one meaning per name.

Fixtures: tests on the real CAS(ME)^3 label sheet, the SAMM-LV layout sheets
and the MEGC evaluator's example data read them from ``$MEPKG_TEST_FIXTURES``
(default: ``../shared/fixtures`` beside the repository, when present). They
are not in the repository (licensed data), so on a fresh clone these tests
are skipped with a reason, and the rest of the suite runs.

Models and folds: ``TINY_MODEL`` (SlowFastMamba arguments of seconds per fold
on CPU), ``small_model_file`` (an untrained model file), ``synthetic_fold``
(in-memory features and labels at ``FOLD_K`` / ``FOLD_FRAME_SKIP``).
Workflow: ``copy_workflow``, ``snakemake``, ``planned_jobs``;
``TINY_WORKFLOW`` (Snakemake arguments of the tiny synthetic run) and
``TINY_RUN`` (its results folder). Dataset files: ``write_xlsx``,
``casme3_sheet``, ``frame_folder``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES_ENV = "MEPKG_TEST_FIXTURES"


def _fixtures_root() -> Path:
    given = os.environ.get(FIXTURES_ENV)
    return Path(given).expanduser() if given else ROOT.parent / "shared" / "fixtures"


# The folder (which may not exist); use fixture_path / needs_fixture in tests.
FIXTURES = _fixtures_root()


def fixture_path(*parts: str) -> Path:
    """A path under the fixtures folder (it may not exist: mark the test needs_fixture)."""
    return FIXTURES.joinpath(*parts)


def needs_fixture(*parts: str):
    """Skip marker: the test needs ``FIXTURES/<parts>``."""
    path = fixture_path(*parts)
    return pytest.mark.skipif(
        not path.exists(),
        reason=f"needs the dataset fixture {'/'.join(parts) or '.'} (not found in {FIXTURES}): "
               f"set {FIXTURES_ENV} to the fixtures folder")


@pytest.fixture
def fixtures_dir() -> Path:
    """The fixtures folder; skips the test when it is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"needs the dataset fixtures (not found in {FIXTURES}): set {FIXTURES_ENV}")
    return FIXTURES


def small_model_file(folder: Path):
    """A small untrained SlowFastMamba (seed 0: d_model 16, depth 1, d_state 4) and
    its raw model file ``folder/raw.pt`` (k 10, frame_skip 1, trained at 30 fps)."""
    import torch

    from mepkg.model import SlowFastMamba, save_model_file

    torch.manual_seed(0)
    net = SlowFastMamba(d_model=16, depth=1, d_state=4)
    return net, save_model_file(folder / "raw.pt", net, k=10, frame_skip=1, fps=30.0)


# ---------------------------------------------------------------- models and folds
TINY_MODEL = dict(d_model=16, depth=1, d_state=8)   # SlowFastMamba arguments: seconds per fold


def two_peak_curve():
    """A 60-frame spot curve: 0.5 on 20..34 with s[22] = s[31] = 1. At k' = 3 its smoothed
    peaks are 24 and 30 (worked out in tests/test_decode_variants.py)."""
    s = np.zeros(60)
    s[20:35] = 0.5
    s[22] = s[31] = 1.0
    return s


def tiny_training_losses(batch: int, k: int, steps: int = 20):
    """Losses of ``steps`` Adam steps of a fresh TINY_MODEL (seed 0) on one fixed random batch,
    as float64: for comparing the selective-scan paths through a whole training step."""
    import torch
    import torch.nn.functional as F

    from mepkg.model import SlowFastMamba

    torch.manual_seed(0)
    model = SlowFastMamba(**TINY_MODEL).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, target = torch.randn(batch, 36, k), torch.rand(batch, k)
    out = []
    for _ in range(steps):
        spot, logits = model(x)
        loss = F.mse_loss(spot, target) + 0.1 * logits.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return torch.tensor(out, dtype=torch.float64)
FOLD_K, FOLD_FRAME_SKIP = 10, 2                     # windows and sampling of synthetic_fold


def synthetic_fold(subjects=("s1", "s2", "s3"), videos_per_subject=2, n_sampled=120,
                   events_per_video=3, seed=0):
    """In-memory features whose MEs are a clear bump in channels 0-7, plus labels.

    Like the real features, window t-th step = signal[start + t] - signal[start]
    (flow against the reference frame), with noise on every channel.
    """
    from mepkg.h5io import FeatureSet

    rng = np.random.default_rng(seed)
    emotions = ["negative", "positive", "surprise", "others"]
    sets, rows = [], []
    for subject in subjects:
        for v in range(videos_per_subject):
            signal = np.zeros(n_sampled)
            slots = rng.permutation(np.arange(1, n_sampled // 14 - 1))[:events_per_video]
            for j, slot in enumerate(sorted(slots)):
                on = int(slot * 14 + rng.integers(0, 4))
                off = on + int(rng.integers(5, 8))               # sampled onset..offset
                signal[on:off + 1] += np.hanning(off - on + 3)[1:-1] * 3.0
                rows.append(dict(subject=subject, video=f"{subject}_{v}",
                                 onset=on * FOLD_FRAME_SKIP,
                                 apex=(on + off) // 2 * FOLD_FRAME_SKIP,
                                 offset=off * FOLD_FRAME_SKIP,
                                 type="micro", emotion_raw=emotions[j % 4],
                                 emotion=emotions[j % 4]))
            n_win = n_sampled // (FOLD_K // 2) - 1
            starts = np.arange(n_win) * (FOLD_K // 2)
            idx = starts[:, None] + np.arange(FOLD_K)
            motion = signal[idx] - signal[starts][:, None]                      # W x k
            feats = rng.normal(0, 0.1, (n_win, 36, FOLD_K)).astype(np.float32)
            feats[:, :8] += motion[:, None, :]
            sets.append(FeatureSet(
                features=feats, window_start=starts.astype(np.int64),
                landmarks=np.zeros((n_win, 68, 2), np.float32),
                crop_box=np.zeros((n_win, 4), np.int32), quality=np.zeros(n_win, np.uint8),
                attrs=dict(video_id=f"{subject}_{v}", subject=subject, video=f"{subject}_{v}",
                           fps=100.0, frame_skip=FOLD_FRAME_SKIP, k=FOLD_K,
                           n_frames=n_sampled * FOLD_FRAME_SKIP,
                           landmark_backend="none", flow_params="{}", mepkg_version="test")))
    return sets, pd.DataFrame(rows)


# ---------------------------------------------------------------- the workflow
WORKFLOW = ["Snakefile", "config.yaml", "config", "rules", "workflow_scripts", "profiles",
            "envs", "report"]
TINY_WORKFLOW = ["--configfile", "config/tiny.yaml"]   # snakemake arguments of the tiny run
TINY_RUN = "results/synthetic-tiny"                    # its results folder


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow (Snakefile, config, rules, scripts, ...) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800):
    """Run Snakemake in ``workdir``; AssertionError with its output tails when it fails."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of a dry run (Snakemake's "Job stats" table); {} if nothing to do."""
    proc = snakemake(workdir, "-n", *args)
    out = proc.stdout + proc.stderr
    if "Job stats:" not in out:
        assert "Nothing to be done" in out, out[-3000:]
        return {}
    jobs = {}
    for line in out.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


# ---------------------------------------------------------------- dataset files
def write_xlsx(path: Path, rows: list[list]) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.title = "label"
    for row in rows:
        workbook.active.append(row)
    workbook.save(path)
    return path


CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class",
                 "emotion"]


def casme3_sheet(path: Path, rows: list[list]) -> Path:
    """A CAS(ME)^3 label sheet of ``rows`` (CASME3_HEADER's columns)."""
    return write_xlsx(path, [CASME3_HEADER] + rows)


def frame_folder(folder: Path, n: int = 3) -> Path:
    """``n`` black 8x8 frames 0.jpg .. in ``folder``."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i}.jpg"), np.zeros((8, 8, 3), np.uint8))
    return folder
