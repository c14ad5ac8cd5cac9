"""Dataset adapters: label sheets -> labels table, dataset root -> manifest.

``read_labels(dataset, label_files)`` reads the label sheet(s) of CAS(ME)^3
Part A (``casme3``), SAMM-LV (``sammlv``) or a generic CSV (``generic``) into
one table, LABEL_COLUMNS, original 0-based frames. ``scan_dataset(dataset,
root)`` also finds the sheets and the videos under ``root`` and returns the
labels of the videos on disk with the manifest (MANIFEST_COLUMNS). The
layouts are described in each adapter module; frames are read with
``mepkg.datasets.frames.open_frames``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from mepkg.datasets import casme3, generic, sammlv
from mepkg.datasets.common import LABEL_COLUMNS, MANIFEST_COLUMNS, find_file

log = logging.getLogger(__name__)

DATASETS = ("casme3", "sammlv", "generic")
# Micro intervals longer than this (original frames) are flagged when read.
DEFAULT_MAX_DURATION = {"casme3": casme3.MAX_DURATION, "sammlv": sammlv.MAX_DURATION,
                        "generic": None}


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def read_labels(dataset: str, label_files: str | Path | Sequence[str | Path],
                emotion_map: dict[str, str] | None = None, *,
                max_duration: int | None = None,
                drop_longer_than: int | None = None) -> pd.DataFrame:
    """All labelled events of a dataset, one row each, LABEL_COLUMNS.

    ``label_files``: casme3 -> the Part A xlsx; sammlv -> the interval sheet
    and the FACS codes sheet, in either order; generic -> labels.csv (1-based
    frames). ``emotion_map`` (raw name -> class) extends the dataset's map.
    Micro events longer than ``max_duration`` frames (None: the dataset's
    default, casme3 1000, sammlv 500, generic no check) are kept and warned
    about; longer than ``drop_longer_than``, dropped. Frames are original 0-based indices; apex
    -1 = not annotated.
    """
    _check_dataset(dataset)
    files = [label_files] if isinstance(label_files, (str, Path)) else list(label_files)
    limits = {"max_duration": max_duration if max_duration is not None
              else DEFAULT_MAX_DURATION[dataset], "drop_longer_than": drop_longer_than}
    if dataset == "sammlv":
        labels = sammlv.read_sammlv_labels(files, emotion_map, **limits)
    elif len(files) != 1:
        raise ValueError(f"{dataset} takes one label file, got {len(files)}: "
                         f"{', '.join(map(str, files))}")
    elif dataset == "casme3":
        labels = casme3.read_casme3_labels(files[0], emotion_map, **limits)
    else:
        labels = generic.read_generic_labels(files[0], emotion_map, **limits)
    micro = labels[labels.type == "micro"]
    log.info("%s labels: %d events (%d micro), %d subjects, %d videos", dataset, len(labels),
             len(micro), labels.subject.nunique(), labels.groupby(["subject", "video"]).ngroups)
    return labels


def default_label_files(dataset: str, root: str | Path) -> list[Path]:
    """The label sheet(s) in their usual place: at ``root`` or anywhere below it."""
    _check_dataset(dataset)
    names = {"casme3": [casme3.LABEL_FILE],
             "sammlv": [sammlv.INTERVAL_FILE, sammlv.EMOTION_FILE],
             "generic": [generic.LABEL_FILE]}[dataset]
    return [find_file(root, name) for name in names]


def scan_manifest(dataset: str, root: str | Path) -> pd.DataFrame:
    """One row per video on disk, MANIFEST_COLUMNS (no label needed)."""
    _check_dataset(dataset)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    scan = {"casme3": casme3.scan_casme3, "sammlv": sammlv.scan_sammlv,
            "generic": generic.scan_generic}[dataset]
    return scan(root)[MANIFEST_COLUMNS].reset_index(drop=True)


def scan_dataset(dataset: str, root: str | Path,
                 label_files: str | Path | Sequence[str | Path] | None = None,
                 emotion_map: dict[str, str] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(labels, manifest)`` of a dataset root.

    The manifest lists every video on disk; the labels keep the events of
    those videos only (rows naming a video that is not on disk are skipped
    with a warning saying how many).
    """
    manifest = scan_manifest(dataset, root)
    if label_files is None:
        label_files = default_label_files(dataset, root)
    labels = read_labels(dataset, label_files, emotion_map)
    on_disk = set(zip(manifest.subject, manifest.video))
    present = [key in on_disk for key in zip(labels.subject, labels.video)]
    absent = labels[[not p for p in present]]
    if len(absent):
        missing = sorted(set(zip(absent.subject, absent.video)))
        log.warning("%s: %d label row(s) of %d video(s) not on disk skipped: %s", root,
                    len(absent), len(missing),
                    ", ".join(f"{s} {v}" for s, v in missing[:10]) +
                    (" ..." if len(missing) > 10 else ""))
    labels = labels[present].reset_index(drop=True)[LABEL_COLUMNS]
    log.info("%s: %d videos on disk, %d with labels, %d frames missing", root, len(manifest),
             len(set(zip(labels.subject, labels.video))), int(manifest.n_missing.sum()))
    return labels, manifest
