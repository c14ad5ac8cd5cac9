"""Generic datasets: any videos or frame folders plus one label CSV (docs/method.md §1).

Layout::

    <root>/labels.csv
    <root>/videos/<subject>/<video>.<ext>    a video file OpenCV reads, or
    <root>/videos/<subject>/<video>/         a frame folder (numbered images)

``labels.csv`` has the columns ``subject,video,onset,apex,offset,type,emotion``,
one row per event. Frames are **1-based**, like the CAS(ME)^3 and SAMM-LV
sheets (the first frame of a video is 1); apex empty or -1 = not annotated.
``type`` is micro or macro; ``emotion`` a raw name mapped with the union of
the CAS(ME)^3 and SAMM-LV maps, or one of negative/positive/surprise/others.

Frame rate: a video file's own; a frame folder records none, so its rate is
``folder_fps``, given by the caller (workflow: ``dataset.folder_fps``; ``mepkg
manifest``: ``--folder-fps``), the same for every frame folder of the root. A
video file whose container records no rate (an AVI with rate 0, a raw MJPEG
or H.264 stream) gets ``folder_fps`` too. A frame folder or such a file and no
``folder_fps`` is an error naming it (FolderRateError), never a guessed rate.
``folder_fps`` does not change the rate of a video file that records one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mepkg.constants import GENERIC_VIDEOS_DIR
from mepkg.inputs import event_type
from mepkg.datasets.common import (
    GENERIC_EMOTION_MAP, clean_events, map_emotions, merged_emotion_map, video_id,
)
from mepkg.datasets.frames import check_rate, list_frame_folder, video_properties
from mepkg.inputs import read_table

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
CSV_COLUMNS = ("subject", "video", "onset", "apex", "offset", "type", "emotion")


def read_generic_labels(path: str | Path, emotion_map: dict[str, str] | None = None, *,
                        max_duration: int | None = None,
                        drop_longer_than: int | None = None) -> pd.DataFrame:
    """Events of a generic label CSV (1-based frames) as LABEL_COLUMNS, 0-based frames."""
    path = Path(path)
    table = read_table(path, "label", required=CSV_COLUMNS)
    rows = table["_line"]   # line number in the file: header is line 1
    raw = pd.DataFrame({
        "subject": table["subject"], "video": table["video"],
        "onset": table["onset"], "apex": table["apex"].replace("", "-1"),
        "offset": table["offset"],
        "type": [event_type(t, f"{path} line {r}") for t, r in zip(table["type"], rows)],
        "emotion_raw": table["emotion"],
        "row": rows,
    })
    events = clean_events(raw, path, onset_zero="clip", max_duration=max_duration,
                          drop_longer_than=drop_longer_than, strict=True)
    return map_emotions(events, merged_emotion_map(GENERIC_EMOTION_MAP, emotion_map), path)


class FolderRateError(ValueError):
    """A frame folder of a generic dataset and no rate for it; ``folder`` names it.

    The callers say where the rate is set (plan_dataset: dataset.folder_fps;
    ``mepkg manifest``: --folder-fps) in the one-line message they re-raise.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.what = ("a frame folder has no frame rate" if folder.is_dir() else
                     "the video file records no frame rate (OpenCV would assume 25 fps)")
        super().__init__(f"{folder}: {self.what}; give the rate of the dataset's frame "
                         f"folders and rate-less video files (folder_fps)")


def scan_generic(root: str | Path, folder_fps: float | None = None) -> pd.DataFrame:
    """One manifest row per video file or frame folder in ``root/videos/<subject>/``.

    ``folder_fps``: the frame rate of the frame folders (video files keep their
    own); None or 0 with a frame folder under the root raises FolderRateError.
    """
    if folder_fps is not None and not folder_fps >= 0:
        raise ValueError(f"folder_fps must be a frame rate > 0 (0 or None: not set), "
                         f"got {folder_fps!r}")
    videos_root = Path(root) / GENERIC_VIDEOS_DIR
    if not videos_root.is_dir():
        raise FileNotFoundError(f"{videos_root} not found; a generic dataset keeps its videos "
                                f"in <root>/videos/<subject>/")
    rows = []
    for subject_dir in sorted(p for p in videos_root.iterdir() if p.is_dir()):
        for entry in sorted(subject_dir.iterdir()):
            if entry.is_dir():
                if not folder_fps:
                    raise FolderRateError(entry)
                listing = list_frame_folder(entry)
                video, fps = entry.name, folder_fps
                n_frames, n_missing = listing.n_frames, listing.n_gaps
            elif entry.suffix.lower() in VIDEO_EXTENSIONS:
                n_frames, fps = video_properties(entry)
                if not fps and not folder_fps:
                    raise FolderRateError(entry)
                fps = fps or folder_fps
                check_rate(entry, fps)
                video, n_missing = entry.stem, 0
            else:
                continue
            subject = subject_dir.name
            rows.append({"subject": subject, "video": video, "video_id": video_id(subject, video),
                         "path": str(entry), "fps": float(fps), "n_frames": n_frames,
                         "n_missing": n_missing})
    if not rows:
        raise FileNotFoundError(f"no video files or frame folders in {videos_root}/<subject>/")
    return pd.DataFrame(rows)
