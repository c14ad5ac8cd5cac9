"""mepkg.workflow: the workflow's parse-time Python (config, names, plan), without Snakemake."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import ROOT

from mepkg.workflow import (coerce_strings, finalise_config, label_files, metric_settings,
                            module_file, protocol_file, protocol_name, run_name,
                            synthetic_file, synthetic_root, workflow_plan)

BASE = yaml.safe_load((ROOT / "config.yaml").read_text())


def config(**groups):
    """config.yaml with ``groups`` merged into its groups (what Snakemake hands over)."""
    out = copy.deepcopy(BASE)
    for group, values in groups.items():
        if isinstance(values, dict) and isinstance(out.get(group), dict):
            out[group].update(values)
        else:
            out[group] = values
    return out


def test_shorthands_expand_and_defaults_fill():
    given = {"dataset": "sammlv", "data_root": "/data/SAMM", "folder_fps": 200}
    done = finalise_config(given, ROOT)
    assert done["dataset"]["name"] == "sammlv" and done["dataset"]["data_root"] == "/data/SAMM"
    assert done["dataset"]["folder_fps"] == 200 and "data_root" not in done
    assert done["dataset"]["max_duration"] == BASE["dataset"]["max_duration"]   # config.yaml's
    assert done["decode"]["p"] == BASE["decode"]["p"]                           # schema default


def test_nested_command_line_strings_get_their_types():
    schema = yaml.safe_load((ROOT / "rules" / "schemas" / "config.schema.yaml").read_text())
    node = {"decode": {"p": "0.6", "drop_neutral": "false", "k_rule": "train"},
            "evaluate": {"sweep_p": ["0.4", "0.5"], "emotions": ["negative"]}}
    coerce_strings(node, schema)
    assert node["decode"] == {"p": 0.6, "drop_neutral": False, "k_rule": "train"}
    assert node["evaluate"] == {"sweep_p": [0.4, 0.5], "emotions": ["negative"]}


def test_a_bad_value_is_one_line_naming_the_key():
    with pytest.raises(ValueError, match=r"^config: bad value for 'features.frame_skip': "):
        finalise_config(config(features={"frame_skip": 0}), ROOT)
    with pytest.raises(ValueError, match="dataset.name=casme3 needs dataset.data_root"):
        finalise_config(config(dataset={"name": "casme3"}), ROOT)


def test_protocol_and_synthetic_files():
    assert protocol_name(config()) == "sammlv"                          # the synthetic layout's
    assert protocol_name(config(synthetic={"layout": "generic"})) is None
    assert protocol_name({"dataset": "casme3"}) == "casme3"
    assert protocol_file(config(dataset={"name": "casme3"}), ROOT) == str(
        ROOT / "config" / "datasets" / "casme3.yaml")
    assert protocol_file(config(dataset={"name": "generic"}), ROOT) is None
    assert synthetic_file(config(), ROOT) == str(ROOT / "config" / "synthetic.yaml")
    assert synthetic_file(config(dataset={"name": "sammlv"}), ROOT) is None


def test_run_names_and_paths():
    assert run_name(config()) == "synthetic-small-sammlv"
    assert run_name(config(synthetic={"seed": 3})) == "synthetic-small-sammlv-seed3"
    assert run_name(config(dataset={"name": "casme3"})) == "casme3"
    assert run_name(config(run_name="mine")) == "mine"
    assert synthetic_root(config()) == "resources/synthetic/small-sammlv-0"
    assert label_files(config(dataset={"label_files": ["a.xlsx"]})) == ["a.xlsx"]


def test_plan_of_the_tiny_benchmark():
    from mepkg.synth import plan_benchmark

    truth = plan_benchmark("tiny", "sammlv", 0).truth()
    plan = workflow_plan(config(synthetic={"size": "tiny"}))
    me = truth[(truth["type"] == "micro") & (truth["emotion"] != "")]
    assert plan["folds"] == sorted(set(me["subject"].astype(str)))
    assert set(plan["videos"].values()) == set(plan["folds"])
    assert plan["warnings"] == []
    # a max_duration below every ME drops them all: no fold left is an error naming the fix
    with pytest.raises(ValueError, match="no video with a labelled micro-expression"):
        workflow_plan(config(synthetic={"size": "tiny"}, dataset={"max_duration": 1}))


def test_metric_settings_leave_out_execution_and_the_sweep():
    settings = metric_settings(config())
    assert "compute" not in settings and "sweep_p" not in settings["evaluate"]
    assert settings["decode"] == BASE["decode"]


def test_module_file_names_the_source():
    assert module_file("mepkg.workflow").endswith("mepkg/workflow.py")
    with pytest.raises(ValueError, match="not importable"):
        module_file("mepkg.no_such_module")
