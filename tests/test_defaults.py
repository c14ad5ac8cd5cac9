"""One declaration of every default (docs/architecture.md, "Settings: one declaration each").

The settings dataclasses hold the defaults; config.yaml and the schema mirror
them (tests/test_workflow_config.py). Here: no function of mepkg and no option
of the CLI declares a setting's default again as a literal, and every list of
names a user chooses from (datasets, sizes, backends, modes, presets, classes)
is the one in mepkg.constants wherever it is used.
"""

from __future__ import annotations

import ast
import dataclasses

import pytest
import yaml
from conftest import ROOT

from mepkg import constants
from mepkg.decode import DECODE_PRESETS, INTERVAL_STRATEGIES, K_RULES, SYNERGY_LEVELS, DecodePriors
from mepkg.features import FeatureConfig
from mepkg.metrics import SCORING_MODES, EvaluateSettings
from mepkg.model import ModelConfig
from mepkg.train import TrainConfig

SETTINGS = (FeatureConfig, TrainConfig, ModelConfig, DecodePriors, EvaluateSettings)
SETTING_NAMES = {f.name for cls in SETTINGS for f in dataclasses.fields(cls)}

# Parameters named like a setting that mean something else, each with its reason.
OTHER_MEANING = {
    ("mepkg/datasets/frames.py", "open_frames", "frame_skip"): "a reader's stride; 1: every frame",
    ("mepkg/datasets/frames.py", "FolderFrames.__init__", "frame_skip"): "a reader's stride",
    ("mepkg/datasets/frames.py", "VideoFrames.__init__", "frame_skip"): "a reader's stride",
    ("mepkg/model.py", "DropPath.__init__", "p"): "a drop probability, not the threshold prior",
    ("mepkg/model.py", "load_model", "device"): "where a model file is loaded, not training's",
    ("mepkg/synth/layouts.py", "generate_benchmark", "seed"): "the synthetic benchmark's seed",
    ("mepkg/synth/layouts.py", "render_video", "seed"): "the synthetic benchmark's seed",
    ("mepkg/synth/plan.py", "plan_benchmark", "seed"): "the synthetic benchmark's seed",
    ("mepkg/synth/plan.py", "plan_video", "seed"): "the synthetic benchmark's seed",
    ("mepkg/cli.py", "synth", "seed"): "the synthetic benchmark's seed",
    ("mepkg/train_step.py", "TrainStep.__init__", "mode"): "how a step runs (eager/graph), "
                                                              "not a scoring mode",
    ("mepkg/train_step.py", "Predictor.__init__", "mode"): "how a batch runs (eager/graph), "
                                                             "not a scoring mode",
}


def _literal(node) -> bool:
    """A default written as a value (not None, not a name that reads the settings)."""
    if isinstance(node, ast.Constant):
        return node.value is not None
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_literal(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    return False


def literal_setting_defaults(source: str, path: str) -> list[tuple[str, str, str, str]]:
    """(path, function, parameter, default) for every parameter named like a setting
    whose default is a literal, and every CLI option (``--frame-skip`` -> frame_skip)
    named like a setting with a literal ``default=``."""
    found = []

    def visit(node, scope: str, command: str):
        for child in ast.iter_child_nodes(node):
            name = scope
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{scope}.{child.name}" if scope else child.name
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = child.args
                positional = args.posonlyargs + args.args
                pairs = list(zip(positional[len(positional) - len(args.defaults):],
                                 args.defaults))
                pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults)
                          if d is not None]
                found.extend((path, name, a.arg, ast.unparse(d)) for a, d in pairs
                             if a.arg in SETTING_NAMES and _literal(d))
            if isinstance(child, ast.Assign) and isinstance(child.value, ast.Call) \
                    and (getattr(child.value.func, "attr", "") == "add_parser"
                         or getattr(child.value.func, "id", "") == "command"):
                first = child.value.args[0]     # p = sub.add_parser("synth") / command("synth")
                command = first.value if isinstance(first, ast.Constant) else name
            if isinstance(child, ast.Call) and getattr(child.func, "attr", "") == "add_argument":
                options = [a.value for a in child.args if isinstance(a, ast.Constant)]
                dest = next((o[2:].replace("-", "_") for o in options if o.startswith("--")),
                            None)
                for kw in child.keywords:
                    if kw.arg == "default" and dest in SETTING_NAMES and _literal(kw.value):
                        found.append((path, command, dest, ast.unparse(kw.value)))
            visit(child, name, command)

    visit(ast.parse(source), "", "")
    return found


def test_no_function_or_cli_option_declares_a_setting_default_again():
    found = []
    for file in sorted((ROOT / "mepkg").rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        found += [hit for hit in literal_setting_defaults(file.read_text(), path)
                  if hit[:3] not in OTHER_MEANING]
    assert not found, ("settings' defaults declared again (take the settings object, a "
                       "required argument, or read the dataclass, e.g. `p=PAPER_PRIORS.p`):\n"
                       + "\n".join(f"{p}: {f}({a}={d})" for p, f, a, d in found))


def test_the_scan_finds_a_planted_default():
    source = '''
def decode(curve, p=0.55, k=None, other=3):
    pass

class Reader:
    def __init__(self, frame_skip: int = 7, smooth_factor=PAPER_PRIORS.smooth_factor):
        pass

def build_parser():
    p = sub.add_parser("features")
    p.add_argument("--crop-size", type=int, default=320)
    p.add_argument("--out", default="x")
'''
    assert literal_setting_defaults(source, "m.py") == [
        ("m.py", "decode", "p", "0.55"), ("m.py", "Reader.__init__", "frame_skip", "7"),
        ("m.py", "features", "crop_size", "320")]


def test_every_exception_still_exists():
    """An entry of OTHER_MEANING that matches nothing any more is stale."""
    hits = set()
    for file in sorted((ROOT / "mepkg").rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        hits |= {hit[:3] for hit in literal_setting_defaults(file.read_text(), path)}
    assert set(OTHER_MEANING) <= hits, set(OTHER_MEANING) - hits


# ---------------------------------------------------------------- one list of each set of names
SCHEMA = yaml.safe_load((ROOT / "rules" / "schemas" / "config.schema.yaml").read_text())


def enum(*path: str) -> list:
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return node.get("enum") or node["items"]["enum"]


@pytest.mark.parametrize("where, names, expected", [
    ("mepkg.metrics.SCORING_MODES", tuple(SCORING_MODES), constants.MODES),
    ("mepkg.decode.DECODE_PRESETS", tuple(DECODE_PRESETS), constants.DECODE_PRESET_NAMES),
    ("schema evaluate.mode", tuple(enum("evaluate", "mode")), constants.MODES),
    ("schema decode.preset", tuple(enum("decode", "preset")), ("",) + constants.DECODE_PRESET_NAMES),
    ("schema dataset.name", tuple(sorted(enum("dataset", "name"))),
     tuple(sorted(("synthetic",) + constants.DATASETS))),
    ("schema synthetic.layout", tuple(sorted(enum("synthetic", "layout"))),
     tuple(sorted(constants.DATASETS))),
    ("schema synthetic.size", tuple(enum("synthetic", "size")), constants.SYNTHETIC_SIZES),
    ("schema features.backend", tuple(enum("features", "backend")), constants.LANDMARK_BACKENDS),
    ("schema decode.k_rule", tuple(enum("decode", "k_rule")), K_RULES),
    ("schema decode.interval", tuple(enum("decode", "interval")), INTERVAL_STRATEGIES),
    ("schema decode.synergy", tuple(enum("decode", "synergy")), SYNERGY_LEVELS),
    ("schema dataset.emotion_map", tuple(SCHEMA["properties"]["dataset"]["properties"]
                                         ["emotion_map"]["additionalProperties"]["enum"]),
     constants.EMOTIONS),
    ("schema evaluate.emotions", tuple(enum("evaluate", "emotions")), constants.EMOTIONS),
])
def test_each_list_of_names_is_the_one_in_constants(where, names, expected):
    assert names == expected, where


def test_the_synthetic_sizes_are_the_generator_s():
    from mepkg.synth import SIZES

    assert tuple(SIZES) == constants.SYNTHETIC_SIZES
