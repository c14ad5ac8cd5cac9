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


# docs/method.md §1.6: both protocols sample ~29-30 frames per second (SAMM-LV 200 fps
# / frame_skip 7, CAS(ME)^3 30 fps / 1), the rate the windows k and the priors assume
PROTOCOL_SAMPLED_FPS = (15.0, 60.0)   # outside this, warn: a factor 2 off


def sampled_rate_warning(fps, frame_skip: int, dataset: str) -> str | None:
    """A one-line warning when the videos' frame rates ``fps`` over ``features.frame_skip``
    are far from the ~29-30 sampled frames per second of the paper's protocols; None
    where every rate is in PROTOCOL_SAMPLED_FPS (or no rate is known)."""
    rates = sorted({float(f) for f in fps if float(f) > 0})
    off = [r for r in rates if not PROTOCOL_SAMPLED_FPS[0] <= r / frame_skip
           <= PROTOCOL_SAMPLED_FPS[1]]
    if not off:
        return None
    suggested = max(1, round(off[0] / 30))
    if len(off) == 1:
        return (f"dataset {dataset}: videos at {off[0]:g} fps with features.frame_skip "
                f"{frame_skip} are sampled at {off[0] / frame_skip:.1f} frames/s, while the "
                f"windows (features.k) and decoding priors assume ~30 (docs/method.md §1.6); "
                f"set features.frame_skip {suggested} (e.g. --config 'features={{frame_skip: "
                f"{suggested}}}') unless this is intended")
    listed = ", ".join(f"{r:g} fps -> {r / frame_skip:.1f} frames/s (frame_skip "
                       f"{max(1, round(r / 30))} would suit)" for r in off)
    return (f"dataset {dataset}: with features.frame_skip {frame_skip}, videos at several rates "
            f"are sampled far from the ~30 frames/s the windows (features.k) and decoding "
            f"priors assume (docs/method.md §1.6): {listed}; one frame_skip serves one rate: "
            f"split the dataset by rate or re-encode its videos to one rate")


def too_short_videos(manifest: pd.DataFrame, k: int, frame_skip: int) -> tuple[set, str | None]:
    """``({(subject, video), ...}, warning)``: the manifest's videos too short for one window
    of ``k`` sampled frames at ``frame_skip`` (docs/method.md §1.5), which planning leaves
    out, and a one-line warning naming them (None when there is none)."""
    from mepkg.datasets.frames import min_frames

    need = min_frames(k, frame_skip)
    short = manifest[manifest["n_frames"].astype(int) < need]
    if not len(short):
        return set(), None
    names = [f"{p} ({n} frames)" for p, n in zip(short["path"], short["n_frames"])]
    warning = (f"{len(short)} video(s) too short for one window of features.k {k} sampled "
               f"frames at features.frame_skip {frame_skip} (at least {need} frames) get no "
               f"job and are not scored: {', '.join(names[:10])}"
               + (" ..." if len(names) > 10 else ""))
    return set(zip(short["subject"].astype(str), short["video"].astype(str))), warning


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
                                    folder_fps=folder_fps)
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
