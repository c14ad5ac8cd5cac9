"""The workflow's own Python: config shorthands and validation, run names, the parse-time plan.

The Snakefile and rules/*.smk declare rules; what they compute at parse time
lives here, as plain functions of the config dict, so that it is tested
without running Snakemake (tests/test_workflow_plan.py):

- :func:`finalise_config`: expand the command-line shorthands, give typed
  values to nested ``--config`` strings, validate against
  rules/schemas/config.schema.yaml and fill its defaults (one-line errors);
- :func:`protocol_name` / :func:`protocol_file` / :func:`synthetic_file`: the
  per-dataset protocol file (docs/method.md §1.6) and the synthetic
  benchmark's settings, applied over config.yaml;
- :func:`run_name`, :func:`synthetic_root`, :func:`label_files`;
- :func:`workflow_plan`: which videos and which LOSO folds, before any job
  runs (from the label sheets, or the synthetic generator's plan);
- :func:`metric_settings`: the config groups summary.json records;
- :func:`module_file`: a mepkg module's source, as a rule input.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

SCHEMA = Path("rules", "schemas", "config.schema.yaml")   # under the workflow's folder
PROTOCOLS = ("sammlv", "casme3")   # datasets with a protocol file config/datasets/<name>.yaml
# settings that change no metric: execution (compute), figure formats (plots) and
# the sweep plot's p values
NOT_METRIC_SETTINGS = {"compute": None, "plots": None, "evaluate": ("sweep_p",)}


def _dataset_name(config: dict) -> str:
    """dataset.name, also when given as the shorthand --config dataset=<name>."""
    group = config.get("dataset", {})
    return group if isinstance(group, str) else group.get("name", "synthetic")


def protocol_name(config: dict) -> str | None:
    """Whose docs/method.md §1 protocol applies: the dataset's, or the synthetic layout's."""
    name = _dataset_name(config)
    if name == "synthetic":
        name = config.get("synthetic", {}).get("layout", "sammlv")
    return name if name in PROTOCOLS else None


def protocol_file(config: dict, basedir) -> str | None:
    """config/datasets/<protocol>.yaml under ``basedir``, when the protocol has one."""
    name = protocol_name(config)
    path = Path(basedir) / "config" / "datasets" / f"{name}.yaml"
    return str(path) if name and path.exists() else None


def synthetic_file(config: dict, basedir) -> str | None:
    """The synthetic benchmark's own settings (a CPU-sized model), applied after the protocol."""
    if _dataset_name(config) != "synthetic":
        return None
    return str(Path(basedir) / "config" / "synthetic.yaml")


def finalise_config(config: dict, basedir) -> dict:
    """Expand the command-line shorthands, validate, fill defaults (in place).

    `--config dataset=sammlv data_root=/data` means dataset.name=sammlv,
    dataset.data_root=/data; the other dataset keys keep config.yaml's values.
    `folder_fps=200` likewise means dataset.folder_fps=200. ``basedir``: the
    workflow's folder (config.yaml and the schema).
    """
    from snakemake.utils import validate

    schema_path = Path(basedir) / SCHEMA
    if isinstance(config.get("dataset"), str):
        base = yaml.safe_load(Path(basedir, "config.yaml").read_text())
        config["dataset"] = {**base.get("dataset", {}), "name": config["dataset"]}
    if "data_root" in config:
        config.setdefault("dataset", {})["data_root"] = str(config.pop("data_root"))
    if "folder_fps" in config:
        config.setdefault("dataset", {})["folder_fps"] = config.pop("folder_fps")
    schema = yaml.safe_load(schema_path.read_text())
    coerce_strings(config, schema)
    try:
        validate(config, str(schema_path))  # fills in the schema's defaults
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
    from mepkg.inputs import check_finite_settings

    check_finite_settings(config)  # NaN passes every schema minimum/maximum
    name = config["dataset"]["name"]
    if name != "synthetic" and not config["dataset"]["data_root"]:
        raise ValueError(
            f"config: dataset.name={name} needs dataset.data_root, the root of your "
            f"licensed copy, e.g. --config dataset={name} data_root=/data/{name}"
        )
    return config


def coerce_strings(node, schema: dict) -> None:
    """Give typed values to nested --config entries, in place.

    Snakemake reads `--config 'decode={p: 0.6}'` with YAML's BaseLoader, so
    every nested value arrives as a string; where the schema wants a number,
    a boolean or a list, the string is read again as YAML.
    """
    for key, sub in schema.get("properties", {}).items():
        if not isinstance(node, dict) or key not in node:
            continue
        value = node[key]
        kinds = sub.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]  # e.g. [boolean, "null"]
        if isinstance(value, str) and any(
                kind in ("number", "integer", "boolean", "array") for kind in kinds):
            node[key] = yaml.safe_load(value)
        elif isinstance(value, list) and sub.get("type") == "array":
            item = sub.get("items", {})
            node[key] = [yaml.safe_load(v) if isinstance(v, str) and
                         item.get("type") in ("number", "integer", "boolean") else v
                         for v in value]
        elif isinstance(value, dict):
            coerce_strings(value, sub)


def run_name(config: dict) -> str:
    """results/<run>/: config run_name, else derived from the dataset."""
    if config["run_name"]:
        return config["run_name"]
    name = config["dataset"]["name"]
    if name != "synthetic":
        return name
    syn = config["synthetic"]
    seed = f"-seed{syn['seed']}" if syn["seed"] else ""
    return f"synthetic-{syn['size']}-{syn['layout']}{seed}{hazards_tag(config, '-hazards')}"


def hazards_tag(config: dict, prefix: str) -> str:
    """'' for the clean synthetic benchmark; else ``prefix`` (+ a digest of the hazards
    for the data folder, so two hazard settings never share one)."""
    import hashlib
    import json

    from mepkg.synth.hazards import HazardConfig

    hazards = HazardConfig.from_dict(config["synthetic"]["hazards"])
    if not hazards.enabled:
        return ""
    if prefix == "-hazards":
        return prefix
    digest = hashlib.sha1(json.dumps(hazards.to_dict(), sort_keys=True).encode()).hexdigest()
    return f"{prefix}{digest[:8]}"


def synthetic_root(config: dict) -> str:
    syn = config["synthetic"]
    return (f"resources/synthetic/{syn['size']}-{syn['layout']}-{syn['seed']}"
            f"{hazards_tag(config, '-hazards-')}")


def label_files(config: dict) -> list[str]:
    """Label sheets as given (empty list: the adapter's usual place under data_root)."""
    return [str(p) for p in config["dataset"]["label_files"]]


def workflow_plan(config: dict) -> dict:
    """{"videos": {video_id: subject}, "folds": [subject, ...], "warnings": [line, ...]}
    at parse time.

    Kept videos: those with >= 1 micro event whose emotion maps to a class
    (docs/method.md §1 reference protocol), or every video of the root when
    dataset.evaluate_all_videos. Folds: subjects with >= 1 labelled ME video.
    Warnings: lines for the workflow to log (a sampled rate far from the
    protocols' ~30 frames/s; videos too short for one window, which get no job).
    """
    from mepkg.datasets.common import video_id
    from mepkg.manifest import drop_long_events

    ds = config["dataset"]
    warnings = []
    short = set()  # (subject, video) too short for one window: no job
    if ds["name"] == "synthetic":
        from mepkg.synth import plan_benchmark

        syn = config["synthetic"]
        plan = plan_benchmark(syn["size"], syn["layout"], syn["seed"])
        events = plan.truth()
        every_video = [(str(v.subject), str(v.video)) for v in plan.videos]
    else:  # fails here, at parse time, on corrupt sheets, missing videos, roots without frames
        from mepkg.datasets import plan_dataset
        from mepkg.manifest import sampled_rate_warning, too_short_videos

        events, manifest = plan_dataset(ds["name"], ds["data_root"], label_files(config),
                                        ds["emotion_map"], folder_fps=ds["folder_fps"])
        every_video = list(zip(manifest["subject"].astype(str), manifest["video"].astype(str)))
        warning = sampled_rate_warning(manifest["fps"], config["features"]["frame_skip"],
                                       ds["name"])
        if warning:
            warnings.append(warning)
        short, short_warning = too_short_videos(manifest, config["features"]["k"],
                                                config["features"]["frame_skip"])
        if short_warning:
            warnings.append(short_warning)
            events = events[[(str(s), str(v)) not in short
                             for s, v in zip(events["subject"], events["video"])]]
            every_video = [key for key in every_video if key not in short]
    events = drop_long_events(events, ds["max_duration"])
    me = events[(events["type"] == "micro") & (events["emotion"].astype(str) != "")]
    me_videos = sorted({(str(s), str(v)) for s, v in zip(me["subject"], me["video"])})
    kept = every_video if ds["evaluate_all_videos"] else me_videos
    videos = {video_id(s, v): s for s, v in sorted(kept)}
    folds = sorted({s for s, _ in me_videos})
    if not folds:
        raise ValueError(
            f"dataset {ds['name']}: no video with a labelled micro-expression "
            f"whose emotion maps to a class"
            + (f" long enough for one window: {short_warning}" if short else
               "; check dataset.label_files and emotion_map")
        )
    return {"videos": videos, "folds": folds, "warnings": warnings}


def module_file(name: str) -> str:
    """The source file of a mepkg module, named as an input so that editing it
    re-runs the (cheap) rule that calls it. Expensive stages (features,
    training) do not name theirs: force them with -R <rule> after a change."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        raise ValueError(f"module {name} not importable: pip install -e . in the checkout")
    return spec.origin


def metric_settings(config: dict) -> dict:
    """The config groups the metrics depend on, as summary.json records them."""
    settings = {k: v for k, v in config.items() if k not in NOT_METRIC_SETTINGS}
    for group, keys in NOT_METRIC_SETTINGS.items():
        if keys:
            settings[group] = {k: v for k, v in config[group].items() if k not in keys}
    return settings
