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

from mepkg.inputs import InputError, read_labels_table
from mepkg.decode import DecodePriors, k_prime_from_labels

log = logging.getLogger(__name__)


def package_model(model_file: str | os.PathLike, labels: str | os.PathLike | pd.DataFrame,
                  out: str | os.PathLike, priors: DecodePriors | dict | None = None,
                  k_prime: int | None = None) -> Path:
    """Add the decoding priors and k' to a trained model file, for ``mepkg spot``.

    k' is ``k_prime`` when given, else the priors' fixed ``k_prime`` (a preset),
    else it comes from the micro-expressions of ``labels`` (the subjects the
    model was trained on) at the model's frame_skip.
    """
    from mepkg.model import read_model_file, write_model_file   # torch: imported when used

    priors = priors if isinstance(priors, DecodePriors) else DecodePriors.from_dict(priors or {})
    payload = read_model_file(model_file)
    check_model_settings(payload, model_file)
    k_prime = k_prime or priors.k_prime
    if k_prime is None:
        table = read_labels_table(labels)
        if not (table["type"] == "micro").any():
            raise InputError(f"{labels}: no micro-expression row (type micro) to estimate k' "
                             f"from; give the labels.csv of the training subjects")
        k_prime = k_prime_from_labels(table, int(payload["frame_skip"]))
    payload["decode"] = {"priors": asdict(priors), "k_prime": int(k_prime)}
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

