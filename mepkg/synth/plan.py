"""Planning the synthetic benchmark: who, which videos, which events, when.

Everything here is cheap (no images): ``plan_benchmark`` draws subjects,
identities, videos and a schedule of events from one seeded generator, so the
workflow can call it at parse time to learn the folds. Rendering
(``mepkg.synth.motion``) and writing (``mepkg.synth.layouts``) only read the
plan.

Frames in a plan are 0-based indices at the layout's original frame rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mepkg.constants import EMOTIONS
from mepkg.datasets.common import LABEL_COLUMNS, Event

# ---------------------------------------------------------------- presets


@dataclass(frozen=True)
class SizePreset:
    """How big a benchmark is. Durations in seconds, counts per video."""

    n_subjects: int
    videos_per_subject: int
    video_seconds: float                 # mean video length; each varies by +-length_jitter
    frame_size: int                      # square frames (px); the face spans ~45-60 % of it
    micro_per_video: tuple[int, int]     # inclusive range of MEs per video
    macro_per_video: tuple[int, int]     # inclusive range of macro-expressions (distractors)
    length_jitter: float = 0.1           # relative spread of video lengths
    blinks_per_minute: float = 12.0      # people blink ~10-20 times a minute
    jerks_per_minute: float = 6.0        # small sudden head movements


# Measured on a 2-core VM (single worker; CPU seconds, JPEG quality 88):
#   tiny      sammlv 9.7k frames, ~15 s, 115 MB | casme3 1.5k frames, ~4 s, 18 MB
#   small     sammlv 97k frames, ~5 min, 2.3 GB | casme3 14k frames, ~45 s, 350 MB
#   standard  sammlv 580k frames, ~30 min, 14 GB | casme3 87k frames, ~4.5 min, 2.1 GB
# (~2.2 ms a frame at 256 px, ~3 ms at 400 px; `workers` divides the time).
SIZES: dict[str, SizePreset] = {
    # CI: 3 x 2 videos of ~8 s; 256 px frames keep 200 fps rendering fast.
    "tiny": SizePreset(n_subjects=3, videos_per_subject=2, video_seconds=8.0,
                       frame_size=256, micro_per_video=(2, 3), macro_per_video=(1, 1)),
    # default for `snakemake --cores 8`
    "small": SizePreset(n_subjects=8, videos_per_subject=2, video_seconds=30.0,
                        frame_size=400, micro_per_video=(3, 5), macro_per_video=(1, 2)),
    "standard": SizePreset(n_subjects=16, videos_per_subject=3, video_seconds=60.0,
                           frame_size=400, micro_per_video=(4, 8), macro_per_video=(2, 3)),
}

LAYOUT_FPS: dict[str, float] = {"sammlv": 200.0, "casme3": 30.0, "generic": 30.0}

# ---------------------------------------------------------------- timing of events


@dataclass(frozen=True)
class TimingConfig:
    """Durations (s) and sizes of the injected motions."""

    micro_seconds: tuple[float, float] = (0.2, 0.5)   # ME length (onset..offset)
    macro_seconds: tuple[float, float] = (0.5, 4.0)   # macro-expression length
    blink_seconds: tuple[float, float] = (0.1, 0.25)  # eyelid closing and opening
    apex_fraction: tuple[float, float] = (0.3, 0.5)   # apex position within onset..offset
    micro_amplitude: tuple[float, float] = (0.5, 2.0)  # peak displacement, px at 320-px crop scale
    macro_amplitude: tuple[float, float] = (3.0, 8.0)  # same, macro-expressions
    jerk_amplitude: tuple[float, float] = (3.0, 10.0)  # head jerk step, px at crop scale
    jerk_seconds: float = 0.03                          # a jerk's rise time
    min_gap_seconds: float = 0.5                        # between any two events, and at the ends
    # class frequencies of MEs, skewed like CAS(ME)^3 / SAMM-LV
    class_freq: tuple[tuple[str, float], ...] = (
        ("negative", 0.45), ("surprise", 0.2), ("others", 0.2), ("positive", 0.15))


TIMING = TimingConfig()

# Negative sub-emotions (canonical names) with their frequency per layout;
# each has its own facial pattern (see mepkg.synth.motion.PATTERNS).
NEGATIVE_FREQ: dict[str, tuple[tuple[str, float], ...]] = {
    "sammlv": (("anger", 0.4), ("contempt", 0.2), ("disgust", 0.2), ("fear", 0.1), ("sadness", 0.1)),
    "casme3": (("disgust", 0.55), ("fear", 0.2), ("anger", 0.13), ("sadness", 0.12)),
    "generic": (("anger", 0.3), ("contempt", 0.1), ("disgust", 0.35), ("fear", 0.1), ("sadness", 0.15)),
}
# canonical emotion -> raw name written in each layout's sheet
RAW_NAMES: dict[str, dict[str, str]] = {
    "sammlv": {"anger": "Anger", "contempt": "Contempt", "disgust": "Disgust", "fear": "Fear",
               "sadness": "Sadness", "happiness": "Happiness", "surprise": "Surprise",
               "other": "Other"},
    "casme3": {"anger": "anger", "disgust": "disgust", "fear": "fear", "sadness": "sad",
               "happiness": "happy", "surprise": "surprise", "other": "others"},
}
# canonical emotion -> facial pattern; "others" picks one of OTHER_PATTERNS
EMOTION_PATTERN: dict[str, str] = {
    "anger": "brow_lower", "contempt": "unilateral_dimpler", "disgust": "nose_wrinkle",
    "fear": "fear_brows", "sadness": "lip_corner_depress", "happiness": "lip_corner_pull",
    "surprise": "brow_raise_jaw_drop",
}
OTHER_PATTERNS: tuple[str, ...] = ("unilateral_lip_pull", "unilateral_brow_raise", "lip_press")
CLASS_CANONICAL = {"positive": "happiness", "surprise": "surprise", "others": "other"}

# ---------------------------------------------------------------- plan records


@dataclass(frozen=True)
class Identity:
    """How one subject's face differs from the source photograph."""

    eye_scale: float      # inter-ocular distance factor
    jaw_scale: float      # jaw width factor
    nose_scale: float     # nose length factor
    mouth_scale: float    # mouth width factor
    face_height: float    # lower-face height factor
    mirror: bool          # flip left/right
    skin_gain: tuple[float, float, float]  # B, G, R gains
    contrast: float       # around mid-grey
    gamma: float
    face_frac: float      # jaw width / frame width
    offset: tuple[float, float]  # face centre offset, fraction of the frame (x, y)
    backdrop: tuple[tuple[int, int, int], tuple[int, int, int]]  # top / bottom BGR colours
    texture_seed: int     # static skin texture


@dataclass(frozen=True)
class PlannedEvent:
    """A motion injected into a video (0-based frames, inclusive)."""

    onset: int
    apex: int
    offset: int
    type: str            # "micro" | "macro" | "blink"
    pattern: str         # key of mepkg.synth.motion.PATTERNS
    amplitude: float     # peak displacement, px at the 320-px crop scale ("blink": eye fraction)
    emotion: str = ""    # class (micro only)
    emotion_raw: str = ""  # as written in the layout's sheet (micro only)


@dataclass(frozen=True)
class Jerk:
    """A sudden small head movement: a step of (dx, dy) crop px over ``frames``."""

    frame: int
    frames: int
    dx: float
    dy: float


@dataclass
class VideoPlan:
    """One long video: its events, distractors and global nuisances."""

    subject: str
    video: str
    n_frames: int
    fps: float
    seed: int                      # render seed (noise, drift, illumination)
    events: list[PlannedEvent]     # micro, macro and blink, sorted by onset
    jerks: list[Jerk]

    def truth_events(self) -> list[Event]:
        """Micro and macro events as ``Event`` rows (blinks are not labelled)."""
        return [Event(self.subject, self.video, e.onset, e.apex, e.offset, e.type,
                      e.emotion_raw, e.emotion)
                for e in self.events if e.type in ("micro", "macro")]


@dataclass
class BenchmarkPlan:
    """Everything needed to render and label a benchmark, without images."""

    size: str
    layout: str
    seed: int
    fps: float
    frame_size: int
    subjects: list[str]
    identities: dict[str, Identity]
    videos: list[VideoPlan] = field(default_factory=list)

    def truth(self) -> pd.DataFrame:
        """The ground truth in labels.csv format (LABEL_COLUMNS, 0-based)."""
        rows = [e.__dict__ for v in self.videos for e in v.truth_events()]
        return pd.DataFrame(rows, columns=LABEL_COLUMNS)

    def folds(self) -> list[str]:
        """LOSO folds: subjects with at least one ME."""
        return [s for s in self.subjects
                if any(e.type == "micro" for v in self.videos if v.subject == s for e in v.events)]


# ---------------------------------------------------------------- planning


def _names(layout: str, i: int, v: int) -> tuple[str, str]:
    """Subject and video names as the layout spells them (i, v 0-based)."""
    if layout == "sammlv":
        subject = f"{i + 1:03d}"
        return subject, f"{subject}_{v + 1}"
    if layout == "casme3":
        return f"spNO.{i + 1}", "abcdefghijklmnopqrstuvwxyz"[v]
    return f"s{i + 1:02d}", f"v{v + 1}"


def _identity(rng: np.random.Generator) -> Identity:
    """Draw one identity; ranges keep the face detectable by dlib."""
    u = rng.uniform
    tone = u(0.75, 1.1)
    return Identity(
        eye_scale=u(0.9, 1.12), jaw_scale=u(0.88, 1.12), nose_scale=u(0.9, 1.12),
        mouth_scale=u(0.85, 1.15), face_height=u(0.92, 1.08), mirror=bool(rng.random() < 0.5),
        skin_gain=(tone * u(0.85, 1.05), tone * u(0.92, 1.05), tone * u(0.95, 1.1)),
        contrast=u(0.85, 1.15), gamma=u(0.85, 1.15), face_frac=u(0.45, 0.55),
        offset=(u(-0.04, 0.04), u(-0.03, 0.03)),
        backdrop=(tuple(int(c) for c in rng.integers(30, 220, 3)),
                  tuple(int(c) for c in rng.integers(30, 220, 3))),
        texture_seed=int(rng.integers(2**31)))


def _class_sequence(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` ME classes with the configured frequencies; every class once if n >= 4."""
    names = [c for c, _ in TIMING.class_freq]
    freq = np.array([p for _, p in TIMING.class_freq])
    counts = np.floor(freq * n).astype(int)
    rest = np.argsort(-(freq * n - counts), kind="stable")
    counts[rest[: n - counts.sum()]] += 1
    if n >= len(names):
        for i in np.flatnonzero(counts == 0):
            counts[i] += 1
            counts[int(np.argmax(counts))] -= 1
    seq = [c for c, k in zip(names, counts) for _ in range(k)]
    rng.shuffle(seq)
    return seq


def _me_emotion(cls: str, layout: str, rng: np.random.Generator) -> tuple[str, str]:
    """(raw name, pattern) of one ME of class ``cls``."""
    if cls == "negative":
        names, p = zip(*NEGATIVE_FREQ[layout])
        canonical = str(rng.choice(names, p=np.array(p) / sum(p)))
    else:
        canonical = CLASS_CANONICAL[cls]
    pattern = (str(rng.choice(OTHER_PATTERNS)) if canonical == "other"
               else EMOTION_PATTERN[canonical])
    raw = RAW_NAMES[layout][canonical] if layout in RAW_NAMES else cls
    return raw, pattern


def _schedule(n_frames: int, fps: float, items: list[dict],
              rng: np.random.Generator) -> tuple[list[PlannedEvent], list[tuple[int, int]]]:
    """Place items (each with a duration ``dur`` in frames) without overlap.

    Gaps between items and at both ends are at least ``min_gap_seconds``;
    items that do not fit are dropped, blinks first, then macros. Returns the
    events and the gaps (start, end) between them.
    """
    min_gap = math.ceil(TIMING.min_gap_seconds * fps)
    priority = {"micro": 0, "macro": 1, "blink": 2}
    items = list(items)
    while items and sum(i["dur"] + 1 for i in items) + (len(items) + 1) * min_gap > n_frames:
        items.remove(max(items, key=lambda i: (priority[i["type"]], i["dur"])))
    order = rng.permutation(len(items))
    items = [items[i] for i in order]
    slack = n_frames - sum(i["dur"] + 1 for i in items) - (len(items) + 1) * min_gap
    gaps = min_gap + np.floor(slack * rng.dirichlet(np.ones(len(items) + 1))).astype(int)
    events, free, t = [], [], 0
    for item, gap in zip(items, gaps):
        free.append((t, t + int(gap)))
        onset = t + int(gap)
        offset = onset + item["dur"]
        apex = onset + min(max(1, round(item["apex_frac"] * item["dur"])), item["dur"] - 1)
        events.append(PlannedEvent(onset, apex, offset, item["type"], item["pattern"],
                                   item["amplitude"], item.get("emotion", ""),
                                   item.get("emotion_raw", "")))
        t = offset + 1
    free.append((t, n_frames))
    return events, free


def _plan_video(subject: str, video: str, layout: str, preset: SizePreset, fps: float,
                classes: list[str], rng: np.random.Generator) -> VideoPlan:
    seconds = preset.video_seconds * rng.uniform(1 - preset.length_jitter, 1 + preset.length_jitter)
    n_frames = int(round(seconds * fps))

    def dur(lo_hi):
        return max(2, int(round(rng.uniform(*lo_hi) * fps)))

    items = []
    for cls in classes:
        raw, pattern = _me_emotion(cls, layout, rng)
        items.append(dict(type="micro", dur=dur(TIMING.micro_seconds), pattern=pattern,
                          amplitude=rng.uniform(*TIMING.micro_amplitude), emotion=cls,
                          emotion_raw=raw, apex_frac=rng.uniform(*TIMING.apex_fraction)))
    all_patterns = sorted(set(EMOTION_PATTERN.values()) | set(OTHER_PATTERNS))
    for _ in range(int(rng.integers(preset.macro_per_video[0], preset.macro_per_video[1] + 1))):
        items.append(dict(type="macro", dur=dur(TIMING.macro_seconds),
                          pattern=str(rng.choice(all_patterns)),
                          amplitude=rng.uniform(*TIMING.macro_amplitude),
                          apex_frac=rng.uniform(*TIMING.apex_fraction)))
    for _ in range(int(round(preset.blinks_per_minute * seconds / 60))):
        items.append(dict(type="blink", dur=dur(TIMING.blink_seconds), pattern="blink",
                          amplitude=rng.uniform(0.6, 0.9), apex_frac=rng.uniform(0.35, 0.5)))
    events, free = _schedule(n_frames, fps, items, rng)

    # jerks inside the free gaps, clear of every event by a quarter gap
    jerk_frames = max(2, int(round(TIMING.jerk_seconds * fps)))
    margin = math.ceil(TIMING.min_gap_seconds * fps / 4)
    room = [(a + margin, b - margin - jerk_frames) for a, b in free
            if b - a > 2 * margin + jerk_frames]
    n_jerks = int(round(preset.jerks_per_minute * seconds / 60))
    starts = sorted(int(rng.integers(room[k][0], room[k][1] + 1))
                    for k in rng.permutation(len(room))[:n_jerks])
    jerks, drift = [], np.zeros(2)      # each jerk heads back towards the start position
    for start in starts:
        angle = rng.uniform(0, 2 * np.pi)
        if drift.any():
            angle = math.atan2(-drift[1], -drift[0]) + rng.uniform(-1.0, 1.0)
        step = rng.uniform(*TIMING.jerk_amplitude) * np.array([math.cos(angle), math.sin(angle)])
        drift += step
        jerks.append(Jerk(start, jerk_frames, float(step[0]), float(step[1])))
    return VideoPlan(subject, video, n_frames, fps, int(rng.integers(2**31)), events, jerks)


def plan_benchmark(size: str = "tiny", layout: str = "sammlv", seed: int = 0) -> BenchmarkPlan:
    """Plan a synthetic benchmark: subjects, identities, videos and events.

    Deterministic in ``(size, layout, seed)`` and fast (no rendering).

    >>> plan = plan_benchmark("tiny", "casme3", seed=0)
    >>> plan.subjects
    ['spNO.1', 'spNO.2', 'spNO.3']
    """
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; expected one of {sorted(SIZES)}")
    if layout not in LAYOUT_FPS:
        raise ValueError(f"unknown synthetic layout {layout!r}; expected one of {sorted(LAYOUT_FPS)}")
    preset, fps = SIZES[size], LAYOUT_FPS[layout]
    rng = np.random.default_rng(seed)
    n_videos = preset.n_subjects * preset.videos_per_subject
    lo, hi = preset.micro_per_video
    n_micro = rng.integers(lo, hi + 1, n_videos)
    classes = _class_sequence(int(n_micro.sum()), rng)
    plan = BenchmarkPlan(size, layout, seed, fps, preset.frame_size, [], {})
    k = 0
    for i in range(preset.n_subjects):
        subject = _names(layout, i, 0)[0]
        plan.subjects.append(subject)
        plan.identities[subject] = _identity(rng)
        for v in range(preset.videos_per_subject):
            video_rng = np.random.default_rng([seed, i, v])
            m = int(n_micro[i * preset.videos_per_subject + v])
            plan.videos.append(_plan_video(subject, _names(layout, i, v)[1], layout, preset, fps,
                                           classes[k:k + m], video_rng))
            k += m
    assert set(classes) <= set(EMOTIONS)
    return plan


def plan_video(seconds: float = 10.0, fps: float = 30.0,
               seed: int = 0) -> tuple[Identity, VideoPlan]:
    """An identity and the plan of one stand-alone video of ``seconds`` (subject
    "s01", video "v1"), e.g. for benchmarks: about one ME per 6 s (at least
    one), one macro-expression per 20 s, blinks and jerks as in the presets.
    """
    rng = np.random.default_rng([seed, 9999])
    n_me = max(1, int(round(seconds / 6)))
    classes = [str(c) for c in rng.choice(["negative", "positive", "surprise", "others"], n_me)]
    n_macro = int(seconds // 20)
    one = SizePreset(1, 1, seconds, frame_size=0, micro_per_video=(n_me, n_me),   # size unused here
                     macro_per_video=(n_macro, n_macro), length_jitter=0.0)
    return _identity(rng), _plan_video("s01", "v1", "generic", one, fps, classes, rng)
