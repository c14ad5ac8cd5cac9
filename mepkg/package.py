"""Packaging a trained model for ``mepkg spot``: ``mepkg package-model``.

Reads   a model file of ``mepkg train-fold --subject all`` (or of
        ``mepkg convert-checkpoint``) and the labels of the subjects it was
        trained on.
Writes  the same model file with ``decode`` added: the decoding priors and k'
        (:func:`mepkg.model.write_model_file`, the one model-file writer).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from mepkg.decode import DecodePriors, resolve_k_prime
from mepkg.inputs import read_labels_table

log = logging.getLogger(__name__)


def package_model(model_file: str | os.PathLike, labels: str | os.PathLike | pd.DataFrame,
                  out: str | os.PathLike, priors: DecodePriors | dict | None = None,
                  k_prime: int | None = None, trained_on: dict | None = None) -> Path:
    """Add the decoding priors and k' to a trained model file, for ``mepkg spot``.

    k' is :func:`mepkg.decode.resolve_k_prime`: the priors' fixed ``k_prime``
    (a preset), else ``k_prime`` when given, else from the micro-expressions of
    ``labels`` (the subjects the model was trained on) at the model's frame_skip. ``trained_on`` (e.g.
    ``{"dataset": "sammlv", "protocol": "sammlv"}``) is merged into the model
    file's ``trained_on`` record (see :mod:`mepkg.model`).
    """
    from mepkg.model import read_model_file, write_model_file   # torch: imported when used

    priors = DecodePriors.of(priors, source="priors")
    payload = read_model_file(model_file)
    check_model_settings(payload, model_file)
    table = None
    if priors.k_prime is None and k_prime is None:
        table = read_labels_table(labels)
    k_prime = resolve_k_prime(priors, k_prime, labels=table,
                              frame_skip=int(payload["frame_skip"]), source=labels)
    payload["decode"] = {"priors": asdict(priors), "k_prime": int(k_prime)}
    payload["trained_on"] = {**payload["trained_on"], **(trained_on or {})}
    write_model_file(out, payload)
    log.info("%s: model with decoding priors (k'=%d, p=%.2f)", out, k_prime, priors.p)
    return Path(out)


def check_model_settings(meta: dict, path) -> None:
    """ValueError naming what a model file lacks for ``spot``: k, frame_skip, fps."""
    lacking = [key for key in ("k", "frame_skip", "fps") if not meta.get(key)]
    if lacking:
        raise ValueError(f"{path}: the model file records no {', '.join(lacking)}; a converted "
                         f"release needs `mepkg convert-checkpoint --k K --frame-skip S --fps F`, "
                         f"a trained model comes from `mepkg train-fold` with its features")


def model_feature_config(meta: dict, path):
    """The FeatureConfig a model's training windows were extracted with (its ``features``).

    Settings the file does not record take the FeatureConfig defaults: named in
    one warning line for a format-1 file (it records only k and frame_skip);
    silently for settings newer than a file that records the others (they
    default to what the mepkg that wrote it did, e.g. ``match_brightness`` off).
    """
    from mepkg.features import FeatureConfig

    recorded = dict(meta.get("features") or {})
    format_1 = not set(recorded) - {"k", "frame_skip"}
    recorded.setdefault("k", meta.get("k"))
    recorded.setdefault("frame_skip", meta.get("frame_skip"))
    defaults = FeatureConfig().settings()
    unknown = sorted(set(recorded) - set(defaults))
    if unknown:
        raise ValueError(f"{path}: feature settings {', '.join(unknown)} are unknown to this "
                         f"mepkg; use the mepkg version that trained the model")
    assumed = {key: value for key, value in defaults.items() if key not in recorded}
    if assumed and format_1:
        log.warning("%s: the model file records no feature settings but k and frame_skip; "
                    "assuming the defaults %s", path,
                    ", ".join(f"{key}={value}" for key, value in assumed.items()))
    return FeatureConfig(**{**defaults, **recorded})

