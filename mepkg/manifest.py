"""The data stage of a run: manifest.csv and labels.csv (rule build_manifest).

The workflow plans its videos and folds at parse time from the label sheets
(rules/common.smk); this module holds the protocol filter that plan and the
written labels share, so both drop the same events.
"""

from __future__ import annotations

import logging
import os
from typing import Iterable

import pandas as pd

from mepkg.atomic import write_csv
from mepkg.datasets import scan_dataset
from mepkg.datasets.common import video_id

log = logging.getLogger(__name__)


def drop_long_events(events: pd.DataFrame, max_duration: int) -> pd.DataFrame:
    """``events`` without the micro events longer than ``max_duration`` original frames.

    0 keeps every event (docs/method.md §1: CAS(ME)^3 spNO.214 c is a 3455-frame "micro").
    """
    if not max_duration:
        return events
    too_long = (events["type"] == "micro") & (events["offset"] - events["onset"] > max_duration)
    if too_long.any():
        log.info("dropping %d micro event(s) longer than %d frames", int(too_long.sum()),
                 max_duration)
    return events[~too_long]


def build_manifest(adapter: str, root: str | os.PathLike, labels_out, manifest_out, *,
                   videos: Iterable[str], label_files=None, emotion_map=None,
                   max_duration: int = 0,
                   folder_fps: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scan ``root`` with ``adapter``; write the manifest and the planned videos' labels.

    manifest: one row per video on disk; labels: one row per event of the
    ``videos`` (video ids), minus micro events longer than ``max_duration``.
    ``folder_fps``: the rate of a generic root's frame folders (the manifest's fps).
    """
    labels, manifest = scan_dataset(adapter, root, label_files=list(label_files or []) or None,
                                    emotion_map=emotion_map or None,
                                    folder_fps=folder_fps or None)
    planned = set(videos)
    labels = labels[[video_id(s, v) in planned for s, v in zip(labels.subject, labels.video)]]
    labels = drop_long_events(labels, max_duration)
    write_csv(manifest, manifest_out)
    write_csv(labels, labels_out)
    log.info("%d videos on disk, %d planned; %d events written", len(manifest), len(planned),
             len(labels))
    return labels, manifest


def manifest_row(manifest_csv: str | os.PathLike, vid: str) -> pd.Series:
    """The manifest row of video ``vid`` (path, subject, video, fps, ...)."""
    manifest = pd.read_csv(manifest_csv, dtype=str).set_index("video_id")
    if vid not in manifest.index:
        raise FileNotFoundError(f"video {vid} is labelled but not on disk ({manifest_csv}); "
                                f"check dataset.data_root")
    return manifest.loc[vid]
