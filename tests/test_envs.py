"""envs/mepkg.yaml (the rules' conda environment) agrees with pyproject.toml.

Every [project] dependency appears in the environment, conda or pip part,
under the same name with the same version specifier, and nothing else is
pinned there; the environment installs mepkg itself from the checkout.
"""

from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "envs" / "mepkg.yaml"


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
            key = canonicalize_name(name)
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


def test_environment_installs_mepkg_from_the_checkout():
    _, options = _env_requirements()
    editable = [o.split(None, 1)[1] for o in options if o.startswith("--editable")]
    assert editable, f"{ENV_FILE}: no `--editable <checkout>` entry, the rules could not import mepkg"
    assert (ENV_FILE.parent / editable[0] / "pyproject.toml").exists()


@pytest.mark.parametrize("rule_file", sorted((ROOT / "rules").glob("*.smk")))
def test_every_rule_uses_the_environment(rule_file):
    text = rule_file.read_text()
    n_rules = text.count("\nrule ") + text.startswith("rule ")
    assert text.count('"../envs/mepkg.yaml"') == n_rules, f"{rule_file.name}: a rule lacks conda:"
