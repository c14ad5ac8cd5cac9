# Config loading and the parse-time plan (which videos, which LOSO folds).
#
# Snakemake must know every video and every fold before it runs a job, so the
# plan comes from the label sheets (real datasets, mepkg.datasets.read_labels)
# or from the synthetic generator's plan (mepkg.synth.plan_benchmark, no
# rendering). Both are cheap.

import hashlib
import importlib.util
import json
from pathlib import Path

import yaml
from snakemake.utils import validate

SCHEMA = Path(workflow.basedir, "rules", "schemas", "config.schema.yaml")
PROTOCOLS = ("sammlv", "casme3")  # datasets with a protocol file config/datasets/<name>.yaml


def _dataset_name(config):
    """dataset.name, also when given as the shorthand --config dataset=<name>."""
    group = config.get("dataset", {})
    return group if isinstance(group, str) else group.get("name", "synthetic")


def protocol_name(config):
    """Whose docs/method.md §1 protocol applies: the dataset's, or the synthetic layout's."""
    name = _dataset_name(config)
    if name == "synthetic":
        name = config.get("synthetic", {}).get("layout", "sammlv")
    return name if name in PROTOCOLS else None


def _protocol_file(config):
    name = protocol_name(config)
    path = Path(workflow.basedir) / "config" / "datasets" / f"{name}.yaml"
    return str(path) if name and path.exists() else None


PROTOCOL_FILE = _protocol_file(config)
# the synthetic benchmark's own settings (a CPU-sized model), after the protocol
SYNTHETIC_FILE = (
    str(Path(workflow.basedir) / "config" / "synthetic.yaml")
    if _dataset_name(config) == "synthetic"
    else None
)


def finalise_config(config):
    """Expand the command-line shorthands, validate, fill defaults (in place).

    `--config dataset=sammlv data_root=/data` means dataset.name=sammlv,
    dataset.data_root=/data; the other dataset keys keep config.yaml's values.
    `folder_fps=200` likewise means dataset.folder_fps=200.
    """
    if isinstance(config.get("dataset"), str):
        base = yaml.safe_load(Path(workflow.basedir, "config.yaml").read_text())
        config["dataset"] = {**base.get("dataset", {}), "name": config["dataset"]}
    if "data_root" in config:
        config.setdefault("dataset", {})["data_root"] = str(config.pop("data_root"))
    if "folder_fps" in config:
        config.setdefault("dataset", {})["folder_fps"] = config.pop("folder_fps")
    schema = yaml.safe_load(SCHEMA.read_text())
    _coerce_strings(config, schema)
    try:
        validate(config, str(SCHEMA))  # fills in the schema's defaults
    except Exception:
        # name the bad key in one line rather than Snakemake's schema dump
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import best_match

        error = best_match(Draft202012Validator(schema).iter_errors(config))
        if error is None:
            raise
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ValueError(
            f"config: bad value for '{where}': {error.message}. "
            f"See the comments in config.yaml and rules/schemas/config.schema.yaml."
        ) from None
    name = config["dataset"]["name"]
    if name != "synthetic" and not config["dataset"]["data_root"]:
        raise ValueError(
            f"config: dataset.name={name} needs dataset.data_root, the root of your "
            f"licensed copy, e.g. --config dataset={name} data_root=/data/{name}"
        )
    return config


def _coerce_strings(node, schema):
    """Give typed values to nested --config entries, in place.

    Snakemake reads `--config 'decode={p: 0.6}'` with YAML's BaseLoader, so
    every nested value arrives as a string; where the schema wants a number,
    a boolean or a list, the string is read again as YAML.
    """
    for key, sub in schema.get("properties", {}).items():
        if not isinstance(node, dict) or key not in node:
            continue
        value = node[key]
        if isinstance(value, str) and sub.get("type") in ("number", "integer", "boolean", "array"):
            node[key] = yaml.safe_load(value)
        elif isinstance(value, list) and sub.get("type") == "array":
            item = sub.get("items", {})
            node[key] = [yaml.safe_load(v) if isinstance(v, str) and
                         item.get("type") in ("number", "integer", "boolean") else v
                         for v in value]
        elif isinstance(value, dict):
            _coerce_strings(value, sub)


def run_name(config):
    """results/<run>/: config run_name, else derived from the dataset."""
    if config["run_name"]:
        return config["run_name"]
    name = config["dataset"]["name"]
    if name != "synthetic":
        return name
    syn = config["synthetic"]
    seed = f"-seed{syn['seed']}" if syn["seed"] else ""
    return f"synthetic-{syn['size']}-{syn['layout']}{seed}{hazards_tag(config, '-hazards')}"


def hazards_tag(config, prefix):
    """'' for the clean synthetic benchmark; else ``prefix`` (+ a digest of the hazards
    for the data folder, so two hazard settings never share one)."""
    from mepkg.synth.hazards import HazardConfig

    hazards = HazardConfig.from_dict(config["synthetic"]["hazards"])
    if not hazards.enabled:
        return ""
    if prefix == "-hazards":
        return prefix
    digest = hashlib.sha1(json.dumps(hazards.to_dict(), sort_keys=True).encode()).hexdigest()
    return f"{prefix}{digest[:8]}"


def synthetic_root(config):
    syn = config["synthetic"]
    return (f"resources/synthetic/{syn['size']}-{syn['layout']}-{syn['seed']}"
            f"{hazards_tag(config, '-hazards-')}")


def workflow_plan(config):
    """{"videos": {video_id: subject}, "folds": [subject, ...]} at parse time.

    Kept videos: those with >= 1 micro event whose emotion maps to a class
    (docs/method.md §1 reference protocol), or every video of the root when
    dataset.evaluate_all_videos. Folds: subjects with >= 1 labelled ME video.
    """
    import pandas as pd
    from mepkg.datasets.common import video_id

    ds = config["dataset"]
    every_video = None  # (subject, video) of the whole root, when all videos are scored
    if ds["name"] == "synthetic":
        from mepkg.synth import plan_benchmark

        syn = config["synthetic"]
        plan = plan_benchmark(syn["size"], syn["layout"], syn["seed"])
        events = plan.truth()
        every_video = [(str(v.subject), str(v.video)) for v in plan.videos]
    else:  # fails here, at parse time, on corrupt sheets, missing videos, roots without frames
        from mepkg.datasets import plan_dataset

        events, manifest = plan_dataset(ds["name"], ds["data_root"], label_files(config),
                                        ds["emotion_map"], folder_fps=ds["folder_fps"])
        every_video = list(zip(manifest["subject"].astype(str), manifest["video"].astype(str)))
        from mepkg.manifest import sampled_rate_warning

        warning = sampled_rate_warning(manifest["fps"], config["features"]["frame_skip"],
                                       ds["name"])
        if warning:
            logger.warning(warning)
    from mepkg.manifest import drop_long_events

    events = drop_long_events(events, ds["max_duration"])
    me = events[(events["type"] == "micro") & (events["emotion"].astype(str) != "")]
    me_videos = sorted({(str(s), str(v)) for s, v in zip(me["subject"], me["video"])})
    kept = every_video if ds["evaluate_all_videos"] else me_videos
    videos = {video_id(s, v): s for s, v in sorted(kept)}
    folds = sorted({s for s, _ in me_videos})
    if not folds:
        raise ValueError(
            f"dataset {ds['name']}: no video with a labelled micro-expression "
            f"whose emotion maps to a class; check dataset.label_files and emotion_map"
        )
    return {"videos": videos, "folds": folds}


def label_files(config):
    """Label sheets as given (empty list: the adapter's usual place under data_root)."""
    return [str(p) for p in config["dataset"]["label_files"]]


def module_file(name):
    """The source file of a mepkg module, named as an input so that editing it
    re-runs the (cheap) rule that calls it. Expensive stages (features,
    training) do not name theirs: force them with -R <rule> after a change."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        raise ValueError(f"module {name} not importable: pip install -e . in the checkout")
    return spec.origin


def manifest_root(wildcards, input):
    """The folder build_manifest scans: the rendered synthetic benchmark, or data_root."""
    if input.synthetic:
        return str(input.synthetic)
    return config["dataset"]["data_root"]


def all_features(wildcards):
    """Every planned video's features: the training set of every fold."""
    return expand(rules.extract_features.output.features, video_id=sorted(VIDEOS))


def fold_outputs(pattern):
    """One path per LOSO fold."""
    return expand(pattern, subject=FOLDS)


# settings that change no metric: execution (compute) and the sweep plot's p values
NOT_METRIC_SETTINGS = {"compute": None, "evaluate": ("sweep_p",)}


def metric_settings(config):
    """The config groups the metrics depend on, as summary.json records them."""
    settings = {k: v for k, v in config.items() if k not in NOT_METRIC_SETTINGS}
    for group, keys in NOT_METRIC_SETTINGS.items():
        if keys:
            settings[group] = {k: v for k, v in config[group].items() if k not in keys}
    return settings
