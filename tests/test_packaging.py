"""Package metadata fits beside a user's environment: ranges, licence, citation.

pyproject.toml states version ranges only (a user's own torch that satisfies
them is kept); the tested versions live in constraints.txt, which the README's
commands and .ci/run pass with -c. The licence is declared in SPDX form and
shipped as LICENSE; CITATION.cff names the paper and this software.
"""

from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def _all_requirements() -> list[tuple[str, Requirement]]:
    reqs = [("dependencies", Requirement(r)) for r in PROJECT["dependencies"]]
    for extra, items in PROJECT.get("optional-dependencies", {}).items():
        reqs += [(f"extra {extra}", Requirement(r)) for r in items]
    reqs += [("build-system", Requirement(r)) for r in PYPROJECT["build-system"]["requires"]]
    return reqs


def test_no_requirement_is_pinned_to_one_version():
    pinned = [f"{where}: {req}" for where, req in _all_requirements()
              for spec in req.specifier if spec.operator in ("==", "===")]
    assert not pinned, f"exact pins in pyproject.toml (state a range): {pinned}"


def test_torch_range_keeps_any_torch_from_2_4():
    """2.4: the oldest torch with the fused CPU Adam (mepkg.train_step.make_optimizer) and a
    triton >= 3.0 for the CUDA scan (docs/architecture.md, selective-scan backends)."""
    torch = next(r for w, r in _all_requirements() if r.name == "torch" and w == "dependencies")
    for version in ("2.4.0", "2.5.1+cu124", "2.13.0+cpu", "2.15.0"):
        assert torch.specifier.contains(version, prereleases=False), version
    assert not torch.specifier.contains("2.3.1")


def test_triton_is_in_no_requirement_and_its_range_in_the_constraints():
    assert not [w for w, r in _all_requirements() if canonicalize_name(r.name) == "triton"]
    lines = [line.split("#")[0].strip() for line in
             (ROOT / "constraints.txt").read_text().splitlines()]
    names = {canonicalize_name(Requirement(line).name): Requirement(line)
             for line in lines if line and not line.startswith("-")}
    assert {"torch", "triton"} <= set(names)
    run = (ROOT / ".ci" / "run").read_text()
    assert "pip install triton -c constraints.txt" in run
    assert "-c constraints.txt" in (ROOT / "README.md").read_text()


def test_face_alignment_extra_brings_one_opencv():
    """The extra plus the headless OpenCV cover face-alignment's requirements but its
    opencv-python (installed with --no-deps, README), so one cv2 is installed."""
    import importlib.metadata

    base = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    extra = {canonicalize_name(Requirement(r).name)
             for r in PROJECT["optional-dependencies"]["face-alignment"]}
    opencv = {n for n in base | extra if n.startswith("opencv")}
    assert opencv == {"opencv-python-headless"}
    try:
        wanted = importlib.metadata.requires("face-alignment") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("face-alignment not installed: its requirements cannot be read")
    needed = {canonicalize_name(Requirement(r).name) for r in wanted
              if Requirement(r).marker is None}
    assert needed - base - extra == {"opencv-python"}


def test_licence_is_spdx_and_shipped():
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    setuptools = next(r for w, r in _all_requirements() if r.name == "setuptools")
    assert not setuptools.specifier.contains("76.1"), "SPDX license needs setuptools >= 77"


def test_citation_names_the_paper_and_this_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == PROJECT["version"] and cff["license"] == PROJECT["license"]
    paper = cff["preferred-citation"]
    assert paper["title"] == ("Boosting Micro-Expression Analysis via Prior-Guided "
                              "Video-Level Regression")
    assert paper["year"] == 2025 and paper["authors"][0]["family-names"] == "Guo"
