"""The in-memory model shared by every dataset adapter, and the two tables.

dataset -> subjects -> videos -> events. Frame indices here are always
0-based indices at the video's *original* frame rate (label sheets are
1-based; adapters convert). The sampled rate appears only inside the model
stages: sampled index = original // frame_skip.

Tables written by ``mepkg labels`` / ``mepkg manifest``:

labels.csv    LABEL_COLUMNS, one row per event
manifest.csv  MANIFEST_COLUMNS, one row per video
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Classes of the recognition head, in index order (SPEC 3). Index 4 is the
# "neutral" (no ME) class of the per-frame targets.
EMOTIONS: tuple[str, ...] = ("negative", "positive", "surprise", "others")
NEUTRAL = "neutral"
CLASS_NAMES: tuple[str, ...] = EMOTIONS + (NEUTRAL,)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

EVENT_TYPES: tuple[str, ...] = ("micro", "macro")

LABEL_COLUMNS: list[str] = [
    "subject", "video", "onset", "apex", "offset", "type", "emotion_raw", "emotion",
]
MANIFEST_COLUMNS: list[str] = [
    "subject", "video", "video_id", "path", "fps", "n_frames", "n_missing",
]


def video_id(subject: str, video: str) -> str:
    """A file-system safe identifier unique across the dataset.

    SAMM-LV video names already start with the subject (``006_1``); CAS(ME)^3
    names are single letters, so the subject is prefixed (``spNO.1_a``).
    """
    subject, video = str(subject), str(video)
    name = video if video.startswith(subject + "_") else f"{subject}_{video}"
    return name.replace("/", "_").replace(" ", "_")


@dataclass(frozen=True)
class Event:
    """One labelled facial expression, original 0-based frames (inclusive)."""

    subject: str
    video: str
    onset: int
    apex: int          # -1 where the sheet does not annotate it
    offset: int
    type: str          # "micro" | "macro"
    emotion_raw: str   # as written in the sheet ("" for macro without one)
    emotion: str       # one of EMOTIONS ("" where unmapped, e.g. macro)


@dataclass
class Video:
    """One long video on disk (a frame folder or a video file)."""

    subject: str
    video: str
    path: str
    fps: float
    n_frames: int = 0
    n_missing: int = 0
    events: list[Event] = field(default_factory=list)

    @property
    def video_id(self) -> str:
        return video_id(self.subject, self.video)
