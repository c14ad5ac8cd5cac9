"""envs/mepkg.yaml (the rules' conda environment) agrees with pyproject.toml.

Every [project] dependency appears in the environment, conda or pip part,
under the same name (conda-forge's ``pytorch`` is PyPI's ``torch``) with the
same version specifier, and nothing else is listed there; the environment
installs mepkg itself from the checkout wherever Snakemake copies the file.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "envs" / "mepkg.yaml"
CONDA_NAMES = {"pytorch": "torch"}          # conda-forge name -> PyPI name


def _pyproject_requirements() -> dict[str, SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return {canonicalize_name(r.name): r.specifier for r in reqs}


def _env() -> dict:
    return yaml.safe_load(ENV_FILE.read_text())


def _env_requirements() -> tuple[dict[str, SpecifierSet], list[str]]:
    """Package -> specifier over the conda and pip parts; the pip options/paths apart."""
    found, other = {}, []
    for dep in _env()["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            if entry.startswith("-"):
                other.append(entry)
                continue
            name, spec = entry, ""
            if isinstance(dep, str) and "=" in entry and not any(op in entry for op in "<>!~"):
                name, spec = entry.split("=", 1)        # conda's python=3.11 form
                spec = f"=={spec}.*"
            else:
                req = Requirement(entry)
                name, spec = req.name, str(req.specifier)
            key = canonicalize_name(CONDA_NAMES.get(name, name) if isinstance(dep, str) else name)
            assert key not in found, f"{ENV_FILE}: {name} listed twice"
            found[key] = SpecifierSet(spec)
    return found, other


def test_every_dependency_is_in_the_environment_with_the_same_pin():
    wanted = _pyproject_requirements()
    found, _ = _env_requirements()
    missing = sorted(set(wanted) - set(found))
    assert not missing, f"{ENV_FILE} lacks pyproject dependencies {missing}"
    differ = {n: (str(wanted[n]), str(found[n])) for n in wanted if wanted[n] != found[n]}
    assert not differ, f"pins differ (pyproject, env): {differ}"


def test_environment_adds_only_python_and_pip():
    found, _ = _env_requirements()
    extra = sorted(set(found) - set(_pyproject_requirements()))
    assert extra == ["pip", "python"], f"{ENV_FILE} has packages pyproject lacks: {extra}"


def test_environment_python_satisfies_requires_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found, _ = _env_requirements()
    python = str(found["python"]).removeprefix("==").removesuffix(".*")
    assert SpecifierSet(project["requires-python"]).contains(python + ".0")


def test_environment_installs_mepkg_from_the_checkout_wherever_snakemake_copies_it(
        tmp_path, monkeypatch):
    """Resolve the editable path as `snakemake --sdm conda` and conda do.

    Snakemake writes the env file to <workdir>/.snakemake/conda/<hash>.yaml and
    runs `conda env create --file` on that copy; conda writes the pip part to a
    requirements file beside it and runs pip there (cwd = that folder), and pip
    expands ${VAR} from the environment, which rules/common.smk sets.
    """
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import parse_requirements

    variable = re.search(r"os\.environ\.update\((\w+)=str\(Path\(workflow\.basedir\)",
                         (ROOT / "rules" / "common.smk").read_text())
    assert variable, "rules/common.smk does not export the checkout for envs/mepkg.yaml"
    conda_dir = tmp_path / "work" / ".snakemake" / "conda"
    conda_dir.mkdir(parents=True)
    shutil.copy(ENV_FILE, conda_dir / "0123abcd.yaml")
    pip_part = next(d["pip"] for d in yaml.safe_load((conda_dir / "0123abcd.yaml").read_text())
                    ["dependencies"] if isinstance(d, dict))
    requirements = conda_dir / "condaenv.x.requirements.txt"
    requirements.write_text("\n".join(pip_part) + "\n")
    monkeypatch.chdir(conda_dir)
    monkeypatch.setenv(variable.group(1), str(ROOT))
    editable = [r.requirement for r in parse_requirements(str(requirements), PipSession())
                if r.is_editable]
    assert len(editable) == 1, f"{ENV_FILE}: one --editable entry expected, got {editable}"
    checkout = Path(os.path.abspath(editable[0]))
    assert checkout == ROOT, f"the env would install mepkg from {checkout}, not the checkout"
    assert tomllib.loads((checkout / "pyproject.toml").read_text())["project"]["name"] == "mepkg"


def test_environment_leaves_the_torch_build_to_conda():
    """GPU torch possible: no CPU-only index, torch from conda-forge (CUDA build with a driver)."""
    found, options = _env_requirements()
    assert not [o for o in options if "index-url" in o or "find-links" in o], options
    assert "pytorch" in [d.split("<")[0].split(">")[0].split("=")[0]
                         for d in _env()["dependencies"] if isinstance(d, str)]


@pytest.mark.parametrize("rule_file", sorted((ROOT / "rules").glob("*.smk")))
def test_every_rule_uses_the_environment(rule_file):
    text = rule_file.read_text()
    n_rules = text.count("\nrule ") + text.startswith("rule ")
    assert text.count('"../envs/mepkg.yaml"') == n_rules, f"{rule_file.name}: a rule lacks conda:"
