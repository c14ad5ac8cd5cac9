"""SAMM-LV (SAMM Long Videos): label sheets and frame folders (docs/method.md §1).

Layout::

    <root>/SAMM_LongVideos_V3_Release.xlsx   intervals (micro and macro)
    <root>/SAMM_Micro_FACS_Codes_v2.xlsx     estimated emotions of the MEs
    <root>/SAMM_longvideos/<sub>_<n>/<sub>_<n>_<frame>.jpg   200 fps

Both sheets open with a preamble; their header rows are found by content.
Frames in the sheets are 1-based, and so are the numbers in the frame file
names (index = number - 1, see ``mepkg.datasets.frames``).

The subject is the first ``_`` part of ``Filename`` and the video the first
two (``006_1_2`` -> subject ``006``, video ``006_1``), so subjects keep their
leading zeros whatever the cell type of the ``Subject`` column.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from mepkg.constants import SAMM_EMOTION_SHEET, SAMM_FRAMES_DIR, SAMM_INTERVAL_SHEET
from mepkg.inputs import event_type
from mepkg.datasets.common import (
    SAMM_EMOTION_MAP, check_columns, clean_events, map_emotions, merged_emotion_map,
    read_sheet_table, video_id,
)
from mepkg.datasets.frames import list_frame_folder

log = logging.getLogger(__name__)

FPS = 200.0
# Flag (not drop) micro intervals longer than this many frames (2.5 s at 200 fps).
MAX_DURATION = 500
INTERVAL_COLUMNS = ("Filename", "Onset", "Apex", "Offset", "Type")
EMOTION_COLUMNS = ("Filename", "Estimated Emotion")


def split_sheets(paths: Sequence[str | Path]) -> tuple[pd.DataFrame, Path, pd.DataFrame, Path]:
    """Tell the interval sheet from the emotion sheet by their header rows.

    Returns ``(intervals, interval_path, emotions, emotion_path)``.
    """
    if len(paths) != 2:
        raise ValueError(f"SAMM-LV needs two label files ({SAMM_INTERVAL_SHEET} and {SAMM_EMOTION_SHEET}), "
                         f"got {len(paths)}: {', '.join(map(str, paths))}")
    found: dict[str, tuple[pd.DataFrame, Path]] = {}
    for path in map(Path, paths):
        try:
            found["emotions"] = (read_sheet_table(path, EMOTION_COLUMNS), path)
        except ValueError:
            found["intervals"] = (read_sheet_table(path, INTERVAL_COLUMNS), path)
    if set(found) != {"intervals", "emotions"}:
        raise ValueError(f"{', '.join(map(str, paths))}: need one sheet with the columns "
                         f"{', '.join(INTERVAL_COLUMNS)} and one with "
                         f"{', '.join(EMOTION_COLUMNS)}")
    return (*found["intervals"], *found["emotions"])


def emotion_lookup(emotions: pd.DataFrame, path: Path) -> dict[tuple[str, str], str]:
    """``(Filename, type) -> Estimated Emotion`` from the FACS codes sheet.

    Its ``Micro`` column holds the type (``Micro - 1/2``); without it every row
    is a micro-expression.
    """
    lookup: dict[tuple[str, str], str] = {}
    for rec in emotions.to_dict("records"):
        if not rec["filename"]:
            continue
        where = f"{path} row {rec['row']}"
        kind = event_type(rec["micro"], where) if rec.get("micro") else "micro"
        key = (rec["filename"], kind)
        if key in lookup and lookup[key] != rec["estimated emotion"]:
            log.warning("%s: %s appears again with emotion %r; keeping %r", where,
                        rec["filename"], rec["estimated emotion"], lookup[key])
            continue
        lookup.setdefault(key, rec["estimated emotion"])
    return lookup


def read_sammlv_labels(paths: Sequence[str | Path], emotion_map: dict[str, str] | None = None,
                       *, max_duration: int | None = MAX_DURATION,
                       drop_longer_than: int | None = None) -> pd.DataFrame:
    """Events (micro and macro) of SAMM-LV, 0-based frames, LABEL_COLUMNS.

    ``paths``: the interval sheet and the FACS codes sheet, in either order.
    Emotions are joined on (Filename, Type). Onset 0 rows (extremely long
    samples) are dropped, offset 0 becomes the apex, apex -1 stays -1.
    """
    intervals, interval_path, emotions, emotion_path = split_sheets(paths)
    check_columns(intervals, [c.lower() for c in INTERVAL_COLUMNS], interval_path)
    lookup = emotion_lookup(emotions, emotion_path)
    intervals = intervals[intervals["filename"] != ""]
    types = [event_type(t, f"{interval_path} row {r}")
             for t, r in zip(intervals["type"], intervals["row"])]
    parts = intervals["filename"].str.split("_")
    short = (parts.str.len() < 2).to_numpy()
    if short.any():
        bad = intervals[short].iloc[0]
        raise ValueError(f"{interval_path} row {bad['row']}: Filename {bad['filename']!r} "
                         f"is not like '006_1_2' (subject_video_clip)")
    raw = pd.DataFrame({
        "subject": parts.str[0],
        "video": parts.str[:2].str.join("_"),
        "onset": intervals["onset"], "apex": intervals["apex"], "offset": intervals["offset"],
        "type": types,
        "emotion_raw": [lookup.get((f, t), "") for f, t in zip(intervals["filename"], types)],
        "row": intervals["row"],
    })
    events = clean_events(raw, interval_path, onset_zero="drop", max_duration=max_duration,
                          drop_longer_than=drop_longer_than)
    return map_emotions(events, merged_emotion_map(SAMM_EMOTION_MAP, emotion_map), emotion_path)


def scan_sammlv(root: str | Path) -> pd.DataFrame:
    """One manifest row per ``SAMM_longvideos/<sub>_<n>`` frame folder under ``root``."""
    frames_root = Path(root) / SAMM_FRAMES_DIR
    if not frames_root.is_dir():
        raise FileNotFoundError(f"{frames_root} not found; is --root the SAMM-LV folder?")
    rows = []
    for folder in sorted(p for p in frames_root.iterdir() if p.is_dir()):
        listing = list_frame_folder(folder)
        video = folder.name
        subject = video.split("_")[0]
        rows.append({"subject": subject, "video": video, "video_id": video_id(subject, video),
                     "path": str(folder), "fps": FPS, "n_frames": listing.n_frames,
                     "n_missing": listing.n_gaps})
    if not rows:
        raise FileNotFoundError(f"no video folders in {frames_root}")
    return pd.DataFrame(rows)
