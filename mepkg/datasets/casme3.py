"""CAS(ME)^3 Part A: label sheet and frame folders (docs/method.md §1).

Layout::

    <root>/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx   (or anywhere below root)
    <root>/error_info_damaged_image_partA.txt          (optional damaged-frame list)
    <root>/<subject>/<video>/color/<n>.jpg              n 0-based, 30 fps

The sheet (worksheet "label", header ``Subject, Filename, Onset, Apex,
Offset, AU, Objective class, emotion``) holds micro-expressions only, with
1-based frames. Video names are single letters; the sheet writes one of them
in upper case (``spNO.14 J``), so video names are lower-cased everywhere
(sheet, folders and damaged list), which keeps one name per video.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mepkg.constants import CASME3_COLOR_DIR
from mepkg.datasets.common import (
    CASME3_EMOTION_MAP, clean_events, map_emotions, merged_emotion_map, read_sheet_table,
    trailing_number, video_id,
)
from mepkg.datasets.frames import list_frame_folder

log = logging.getLogger(__name__)

DAMAGED_LIST = "error_info_damaged_image_partA.txt"
FPS = 30.0
# Flag (not drop) micro intervals longer than this many frames: on the real
# sheet only spNO.214 c (3455 frames) exceeds it.
MAX_DURATION = 1000
SHEET_COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "emotion")


def read_casme3_labels(path: str | Path, emotion_map: dict[str, str] | None = None, *,
                       max_duration: int | None = MAX_DURATION,
                       drop_longer_than: int | None = None) -> pd.DataFrame:
    """Events of the Part A label sheet, 0-based frames, LABEL_COLUMNS.

    Bad rows of the real sheet are handled as docs/method.md §1 says: offset 0 -> apex
    (spNO.40 e), onset after apex or offset -> dropped (spNO.149 d, spNO.216 d),
    the long spNO.214 c interval kept and flagged; onset 0 (spNO.216 e) is
    read as frame 0. Result on the real sheet: 858 events, 94 subjects,
    461 videos.
    """
    sheet = read_sheet_table(path, SHEET_COLUMNS)
    raw = pd.DataFrame({
        "subject": sheet["subject"],
        "video": sheet["filename"].str.lower(),
        "onset": sheet["onset"], "apex": sheet["apex"], "offset": sheet["offset"],
        "type": "micro",
        "emotion_raw": sheet["emotion"],
        "row": sheet["row"],
    })
    events = clean_events(raw, path, onset_zero="clip", max_duration=max_duration,
                          drop_longer_than=drop_longer_than)
    return map_emotions(events, merged_emotion_map(CASME3_EMOTION_MAP, emotion_map), path)


def read_damaged_list(path: str | Path) -> set[tuple[str, str, int]]:
    """``(subject, video, frame)`` of every line ``spNO.3 J 498.jpg  the image cannot open``."""
    damaged = set()
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); expected lines "
                         f"'SUBJECT VIDEO N.jpg ...': copy it again from the release") from None
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        frame = trailing_number(parts[2]) if len(parts) >= 3 else None
        if frame is None:
            raise ValueError(f"{path} line {number}: expected 'SUBJECT VIDEO N.jpg ...', "
                             f"got {line.strip()!r}")
        damaged.add((parts[0], parts[1].lower(), frame))
    return damaged


def scan_casme3(root: str | Path) -> pd.DataFrame:
    """One manifest row per ``<subject>/<video>/color`` folder under ``root``.

    ``n_missing`` counts frame numbers absent inside the folder's range plus
    the frames named in the damaged-frame list, when that list is at root.
    """
    root = Path(root)
    damaged_file = root / DAMAGED_LIST
    damaged = read_damaged_list(damaged_file) if damaged_file.is_file() else set()
    rows = []
    for color in sorted(root.glob(f"*/*/{CASME3_COLOR_DIR}")):
        if not color.is_dir():
            continue
        subject, video = color.parent.parent.name, color.parent.name.lower()
        listing = list_frame_folder(color)
        bad = {listing.index_of(number) for s, v, number in damaged
               if s == subject and v == video and listing.index_of(number) in listing.files}
        rows.append({"subject": subject, "video": video, "video_id": video_id(subject, video),
                     "path": str(color), "fps": FPS, "n_frames": listing.n_frames,
                     "n_missing": listing.n_gaps + len(bad)})
    if not rows:
        raise FileNotFoundError(f"no CAS(ME)^3 frame folders <subject>/<video>/color under "
                                f"{root}; is --root the Part A folder?")
    return pd.DataFrame(rows)
