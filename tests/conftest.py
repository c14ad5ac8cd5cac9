"""Shared test helpers: where the dataset fixtures are.

Tests on the real CAS(ME)^3 label sheet, the SAMM-LV layout sheets and the
MEGC evaluator's example data read them from ``$MEPKG_TEST_FIXTURES``
(default: ``../shared/fixtures`` beside the repository, when present). They
are not in the repository (licensed data), so on a fresh clone these tests
are skipped with a reason, and the rest of the suite runs.
"""

from __future__ import annotations

import os
from pathlib import Path

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
