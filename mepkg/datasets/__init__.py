"""Dataset adapters: label sheets -> labels table, dataset root -> manifest.

``read_labels(dataset, label_files)`` reads the label sheet(s) of CAS(ME)^3
Part A (``casme3``), SAMM-LV (``sammlv``) or a generic CSV (``generic``) into
one table, LABEL_COLUMNS, original 0-based frames. ``scan_dataset(dataset,
root)`` also finds the sheets and the videos under ``root`` and returns the
labels of the videos on disk with the manifest (MANIFEST_COLUMNS). The
layouts are described in each adapter module; frames are read with
``mepkg.datasets.frames.open_frames``. A generic root's frame folders record
no frame rate: ``folder_fps`` gives it (the CAS(ME)^3 and SAMM-LV rates are
known, 30 and 200 fps, and video files carry theirs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from mepkg.constants import (CASME3_COLOR_DIR, CASME3_LABEL_SHEET, DATASETS, GENERIC_LABEL_FILE,
                             GENERIC_VIDEOS_DIR, SAMM_EMOTION_SHEET, SAMM_INTERVAL_SHEET)
from mepkg.datasets import casme3, generic, sammlv
from mepkg.datasets.common import LABEL_COLUMNS, MANIFEST_COLUMNS, find_file
from mepkg.inputs import InputError

log = logging.getLogger(__name__)

# Micro intervals longer than this (original frames) are flagged when read.
DEFAULT_MAX_DURATION = {"casme3": casme3.MAX_DURATION, "sammlv": sammlv.MAX_DURATION,
                        "generic": None}


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def read_labels(dataset: str, label_files: str | Path | Sequence[str | Path],
                emotion_map: dict[str, str] | None = None, *,
                max_duration: int | None = None,
                drop_longer_than: int | None = None,
                with_rows: bool = False) -> pd.DataFrame:
    """All labelled events of a dataset, one row each, LABEL_COLUMNS.

    ``label_files``: casme3 -> the Part A xlsx; sammlv -> the interval sheet
    and the FACS codes sheet, in either order; generic -> labels.csv (1-based
    frames). ``emotion_map`` (raw name -> class) extends the dataset's map.
    Micro events longer than ``max_duration`` frames (None: the dataset's
    default, casme3 1000, sammlv 500, generic no check) are kept and warned
    about; longer than ``drop_longer_than``, dropped. Frames are original 0-based indices; apex
    -1 = not annotated. ``with_rows`` adds ``source`` and ``row``: the file
    and row each event comes from (for messages).
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
    if not with_rows:
        labels = labels[LABEL_COLUMNS]
    micro = labels[labels.type == "micro"]
    log.info("%s labels: %d events (%d micro), %d subjects, %d videos", dataset, len(labels),
             len(micro), labels.subject.nunique(), labels.groupby(["subject", "video"]).ngroups)
    return labels


def default_label_files(dataset: str, root: str | Path) -> list[Path]:
    """The label sheet(s) in their usual place: at ``root`` or anywhere below it."""
    _check_dataset(dataset)
    names = {"casme3": [CASME3_LABEL_SHEET],
             "sammlv": [SAMM_INTERVAL_SHEET, SAMM_EMOTION_SHEET],
             "generic": [GENERIC_LABEL_FILE]}[dataset]
    return [find_file(root, name) for name in names]


def scan_manifest(dataset: str, root: str | Path,
                  folder_fps: float | None = None) -> pd.DataFrame:
    """One row per video on disk, MANIFEST_COLUMNS (no label needed).

    ``folder_fps``: the rate of a generic root's frame folders (required when
    it has any: FolderRateError); unused by casme3 and sammlv, whose rates are known.
    """
    _check_dataset(dataset)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    if dataset == "generic":
        manifest = generic.scan_generic(root, folder_fps=folder_fps)
    else:
        manifest = {"casme3": casme3.scan_casme3, "sammlv": sammlv.scan_sammlv}[dataset](root)
    return manifest[MANIFEST_COLUMNS].reset_index(drop=True)


def scan_dataset(dataset: str, root: str | Path,
                 label_files: str | Path | Sequence[str | Path] | None = None,
                 emotion_map: dict[str, str] | None = None, *,
                 missing: str = "warn",
                 folder_fps: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(labels, manifest)`` of a dataset root.

    The manifest lists every video on disk; the labels keep the events of
    those videos only. Rows naming a video that is not on disk are skipped
    with a warning saying how many (``missing="error"``: a ValueError naming
    the first such video, as the workflow's planning wants). Events ending
    past the last frame of their video are warned about, naming the file and row.
    ``folder_fps``: the rate of a generic root's frame folders (scan_manifest).
    """
    if missing not in ("warn", "error"):
        raise ValueError(f"missing must be 'warn' or 'error', got {missing!r}")
    manifest = scan_manifest(dataset, root, folder_fps=folder_fps)
    if label_files is None:
        label_files = default_label_files(dataset, root)
    labels = read_labels(dataset, label_files, emotion_map, with_rows=True)
    on_disk = set(zip(manifest.subject, manifest.video))
    present = [key in on_disk for key in zip(labels.subject, labels.video)]
    absent = labels[[not p for p in present]]
    if len(absent):
        videos = sorted(set(zip(absent.subject, absent.video)))
        first = absent.iloc[0]
        if missing == "error":
            raise ValueError(f"{first['source']} row {first['row']}: video {first['subject']} "
                             f"{first['video']} is labelled but not under {root} ({len(videos)} "
                             f"labelled video(s) missing); check dataset.data_root or copy "
                             f"the video's frames there")
        log.warning("%s: %d label row(s) of %d video(s) not on disk skipped: %s", root,
                    len(absent), len(videos),
                    ", ".join(f"{s} {v}" for s, v in videos[:10]) +
                    (" ..." if len(videos) > 10 else ""))
    labels = labels[present].reset_index(drop=True)
    _warn_beyond_end(labels, manifest)
    labels = labels[LABEL_COLUMNS]
    log.info("%s: %d videos on disk, %d with labels, %d frames missing", root, len(manifest),
             len(set(zip(labels.subject, labels.video))), int(manifest.n_missing.sum()))
    return labels, manifest


def plan_dataset(dataset: str, root: str | Path,
                 label_files: Sequence[str | Path] | None = None,
                 emotion_map: dict[str, str] | None = None,
                 folder_fps: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(labels, manifest)`` for the workflow's parse-time plan: fails early, in one line.

    A missing or frame-less data root, a corrupt label sheet, a labelled
    video missing on disk and a generic frame folder without
    ``dataset.folder_fps`` are errors naming the root, the sheet or the video
    (not failures of a job hours later, nor a guessed frame rate). Cheap:
    frames are listed, not decoded.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset.data_root {root}: no such folder; set it to the root "
                                f"of your {dataset} copy")
    if not label_files:
        try:
            label_files = default_label_files(dataset, root)
        except FileNotFoundError as error:
            name = str(error).split(" not found")[0]
            raise InputError(f"dataset.data_root {root}: no label sheet {name} in it or below; "
                             f"set dataset.label_files to the sheet(s) of your copy") from None
    try:
        return scan_dataset(dataset, root, label_files=label_files or None,
                            emotion_map=emotion_map or None, missing="error",
                            folder_fps=folder_fps)
    except generic.FolderRateError as error:
        raise InputError(f"{error.folder}: {error.what}; set dataset.folder_fps to the rate "
                         f"of the frame folders and rate-less video files, in config.yaml "
                         f"or e.g. --config dataset={dataset} data_root={root} folder_fps=200"
                         ) from None


def _warn_beyond_end(labels: pd.DataFrame, manifest: pd.DataFrame) -> None:
    """Warn (naming file and row) about events ending after their video's last frame."""
    n_frames = {(s, v): int(n) for s, v, n in
                zip(manifest.subject, manifest.video, manifest.n_frames)}
    last = [n_frames[(s, v)] - 1 for s, v in zip(labels.subject, labels.video)]
    beyond = labels["offset"].to_numpy() > last
    for rec, end in zip(labels[beyond].to_dict("records"),
                        [e for e, b in zip(last, beyond) if b]):
        log.warning("%s row %s (%s %s): event %d-%d (0-based) ends after the video's last "
                    "frame %d: check the label or the frames on disk",
                    rec["source"], rec["row"], rec["subject"], rec["video"], rec["onset"],
                    rec["offset"], end)


def identify_video(path: str | Path, subject: str | None = None) -> tuple[str, str, str]:
    """``(subject, video, video_id)`` of a video file or frame folder, from its path.

    The dataset layouts name them: a CAS(ME)^3 ``<subject>/<video>/color``
    folder (``spNO.1/a/color`` -> ``spNO.1``, ``a``, ``spNO.1_a``), a SAMM-LV
    ``<sub>_<n>`` folder (``006_1`` -> ``006``), a generic
    ``videos/<subject>/<video>``. Otherwise the video is the file or folder
    name and the subject ``subject`` (or empty). A given ``subject`` wins.
    """
    import re

    from mepkg.datasets.common import video_id

    path = Path(path).resolve() if str(path) else Path(path)
    found_subject, video = "", path.name if path.is_dir() else path.stem
    if path.name.lower() == CASME3_COLOR_DIR and path.parent.name:
        found_subject, video = path.parent.parent.name, path.parent.name.lower()
    elif path.parent.parent.name == GENERIC_VIDEOS_DIR:
        found_subject = path.parent.name
    elif re.fullmatch(r"\d+_\d+", video):
        found_subject = video.split("_")[0]
    subject = subject if subject else found_subject
    return subject, video, video_id(subject, video) if subject else video
