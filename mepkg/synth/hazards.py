"""Hazards of real footage, rendered into the synthetic benchmark (all off by default).

- ``occluder``: a hand-like shape crosses the lower face once per video;
- ``drift_out``: the face drifts partly (35 % of its width) out of the frame and back;
- ``leave``: the face leaves the frame and re-enters;
- ``flicker``: lighting flicker, the gain oscillating by +-``flicker`` at 2-6 Hz
  (mains flicker aliased by the camera), over the whole video;
- ``codec`` / ``quality``: compressed output. The generic layout writes its
  videos as MPEG-4 Part 2 (``mp4v``) or H.264 (``h264``, where the OpenCV
  build has an encoder) instead of MJPG; ``quality`` is the JPEG quality of
  frame layouts and the encoder quality of videos.

Each spatial hazard happens once per video, at a time drawn from the video's
seed, in its own slot of the video (they never overlap). Where each one is
goes to ``hazards.csv`` beside ``truth.csv``: one row per hazard
(``subject, video, hazard, onset, offset``; 0-based original frames) and a
``no_face`` row for the frames where less than half of the face is inside
the frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import cv2
import numpy as np
import pandas as pd

HAZARD_FILE = "hazards.csv"
HAZARD_COLUMNS = ["subject", "video", "hazard", "onset", "offset"]
CODECS = {"mp4v": "mp4v", "h264": "avc1"}     # codec option -> OpenCV fourcc
SPATIAL = ("occluder", "drift_out", "leave")
# seconds: (move away, stay, come back); the occluder crosses in one sweep
DURATIONS = {"occluder": (1.2, 0.0, 0.0), "drift_out": (0.5, 1.0, 0.5), "leave": (0.4, 1.2, 0.4)}
DRIFT_OUT_SHARE = 0.35     # share of the face width outside the frame at the drift's height


@dataclass(frozen=True)
class HazardConfig:
    """config.yaml's ``synthetic.hazards`` (and ``mepkg synth --hazards``); all off by default."""

    occluder: bool = False
    drift_out: bool = False
    leave: bool = False
    flicker: float = 0.0     # gain amplitude of the lighting flicker (e.g. 0.1); 0: off
    codec: str = ""          # generic layout's videos: "" (MJPG), mp4v, h264
    quality: int = 88        # JPEG quality of frames / encoder quality of videos (0-100)

    def __post_init__(self):
        if self.codec and self.codec not in CODECS:
            raise ValueError(f"synthetic hazards codec={self.codec!r}: expected '' or one of "
                             f"{sorted(CODECS)}")
        if not 0 <= self.quality <= 100:
            raise ValueError(f"synthetic hazards quality={self.quality}: expected 0-100")
        if not 0.0 <= self.flicker < 1.0:
            raise ValueError(f"synthetic hazards flicker={self.flicker}: expected 0 <= f < 1")

    @property
    def enabled(self) -> bool:
        return self != HazardConfig()

    def spatial(self) -> list[str]:
        return [name for name in SPATIAL if getattr(self, name)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> "HazardConfig":
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"synthetic hazards: unknown option(s) {unknown}; known: "
                             f"{sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class HazardEvent:
    hazard: str
    onset: int      # first and last affected frame, 0-based
    offset: int
    ramp: int       # frames of the move away (and back)


def plan_hazards(n_frames: int, fps: float, config: HazardConfig, seed: int) -> list[HazardEvent]:
    """Where each enabled spatial hazard happens in a video of ``n_frames``: one slot each."""
    names = config.spatial()
    if not names:
        return []
    rng = np.random.default_rng([seed, 7])
    margin = int(0.5 * fps)
    slot = (n_frames - 2 * margin) // len(names)
    events = []
    for j, name in enumerate(rng.permutation(names)):
        away, stay, back = DURATIONS[name]
        length = min(int(round((away + stay + back) * fps)), slot)
        start = margin + j * slot + int(rng.integers(0, max(1, slot - length + 1)))
        ramp = max(1, int(round(away / (away + stay + back) * length)))
        events.append(HazardEvent(str(name), start, start + length - 1, ramp))
    return sorted(events, key=lambda e: e.onset)


class HazardRenderer:
    """Applies a video's hazards to its rendered frames (see the module docstring)."""

    def __init__(self, landmarks: np.ndarray, frame_size: int, fps: float,
                 config: HazardConfig, events: list[HazardEvent], seed: int):
        self.config, self.events, self.size = config, events, frame_size
        x0, y0 = landmarks.min(axis=0)
        x1, y1 = landmarks.max(axis=0)
        self.face = (float(x0), float(y0), float(x1), float(y1))   # landmark box, frame px
        self.mouth = landmarks[48:68].mean(axis=0)
        rng = np.random.default_rng([seed, 11])
        self.flicker_phase = rng.uniform(0, 2 * np.pi)
        self.flicker_hz = rng.uniform(2.0, 6.0)    # mains flicker aliased by the camera
        self.fps = fps

    # ---------------------------------------------------------------- geometry
    def _shift(self, event: HazardEvent, t: int) -> float:
        """Horizontal face shift (frame px) of a moving-out hazard at frame t."""
        x0, _, x1, _ = self.face
        width = x1 - x0
        target = (self.size - x0 + 2 if event.hazard == "leave"
                  else self.size - x1 + DRIFT_OUT_SHARE * width)
        rise = min((t - event.onset + 1) / event.ramp, (event.offset - t + 1) / event.ramp, 1.0)
        return target * max(rise, 0.0)

    def no_face(self, event: HazardEvent) -> tuple[int, int] | None:
        """Frames of ``event`` where less than half of the face lies inside the frame."""
        if event.hazard not in ("leave", "drift_out"):
            return None
        x0, _, x1, _ = self.face
        out = [t for t in range(event.onset, event.offset + 1)
               if self.size - (x0 + self._shift(event, t)) < (x1 - x0) / 2]
        return (out[0], out[-1]) if out else None

    def table(self, subject: str, video: str) -> list[dict]:
        rows = []
        for e in self.events:
            rows.append(dict(subject=subject, video=video, hazard=e.hazard, onset=e.onset,
                             offset=e.offset))
            gone = self.no_face(e)
            if gone:
                rows.append(dict(subject=subject, video=video, hazard="no_face", onset=gone[0],
                                 offset=gone[1]))
        return rows

    # ---------------------------------------------------------------- frames
    def _occlude(self, frame: np.ndarray, event: HazardEvent, t: int) -> None:
        x0, y0, x1, y1 = self.face
        width = x1 - x0
        progress = (t - event.onset) / max(1, event.offset - event.onset)
        cx = x0 - 0.4 * width + progress * 1.8 * width     # sweeps from left to right
        cy = self.mouth[1] - 0.05 * (y1 - y0)
        axes = (int(0.32 * width), int(0.22 * width))
        cv2.ellipse(frame, (int(cx), int(cy)), axes, -20, 0, 360, (105, 140, 190), -1,
                    cv2.LINE_AA)                            # a palm
        for k in range(4):                                  # fingers above it
            fx = int(cx - 0.2 * width + k * 0.13 * width)
            cv2.ellipse(frame, (fx, int(cy - 0.3 * width)), (int(0.05 * width),
                                                             int(0.16 * width)),
                        0, 0, 360, (100, 135, 185), -1, cv2.LINE_AA)

    def apply(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        backdrop = None
        for t, frame in enumerate(frames):
            if backdrop is None:
                border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
                backdrop = tuple(float(v) for v in np.median(border, axis=0))
            for e in self.events:
                if not e.onset <= t <= e.offset:
                    continue
                if e.hazard == "occluder":
                    frame = frame.copy()
                    self._occlude(frame, e, t)
                else:
                    m = np.float32([[1, 0, self._shift(e, t)], [0, 1, 0]])
                    frame = cv2.warpAffine(frame, m, (frame.shape[1], frame.shape[0]),
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=backdrop)
            if self.config.flicker:
                gain = 1.0 + self.config.flicker * np.sin(
                    2 * np.pi * self.flicker_hz * t / self.fps + self.flicker_phase)
                frame = cv2.convertScaleAbs(frame, alpha=float(gain))
            yield frame


def hazard_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=HAZARD_COLUMNS)


def check_codec(codec: str) -> None:
    """ValueError when this OpenCV build cannot encode ``codec``."""
    import os
    import tempfile

    if not codec:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*CODECS[codec]), 30.0, (64, 64))
        ok = writer.isOpened()
        writer.release()
    if not ok:
        raise ValueError(f"synthetic hazards codec={codec!r}: this OpenCV build has no "
                         f"{CODECS[codec]} encoder; use codec mp4v")


def intervals_over_no_face(intervals: pd.DataFrame, hazards: pd.DataFrame) -> pd.DataFrame:
    """The decoded ``intervals`` (original frames, inclusive) that overlap a ``no_face``
    stretch of ``hazards`` (hazards.csv) in the same video."""
    gone = hazards[hazards["hazard"] == "no_face"]
    hits = []
    for row in intervals.itertuples(index=False):
        same = gone[(gone["subject"].astype(str) == str(row.subject))
                    & (gone["video"].astype(str) == str(row.video))]
        hits.append(bool(((same["onset"] <= row.offset) & (same["offset"] >= row.onset)).any()))
    return intervals[np.asarray(hits, bool)] if len(intervals) else intervals
