"""Motion of a synthetic face: expression fields, head motion, illumination.

An expression is a sum of Gaussian-windowed displacement fields centred on
landmarks of the action units it moves (Hjortsjo / FACS-like, much
simplified). Its strength follows a smooth onset -> apex -> offset profile.
Rendering a frame is one ``cv2.remap`` of the identity's neutral frame by

    displacement(p, t) = head(t) * face_mask(p) + sum_e profile_e(t) * field_e(p)

(backward mapping, ``out(p) = neutral(p - displacement(p, t))``), followed by
an illumination gain and sensor noise. Event fields are computed only while
their event is active.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from mepkg.synth.faces import FaceTemplate
from mepkg.synth.plan import PlannedEvent, VideoPlan


@dataclass(frozen=True)
class Component:
    """One Gaussian blob of motion: centre = mean of ``landmarks``."""

    landmarks: tuple[int, ...]
    direction: tuple[float, float]   # image coordinates (x right, y down), |.| <= 1
    sigma: float                     # blob radius, in units of g (half inner-eye distance)


# Facial patterns (landmark 48 is the image-left mouth corner, 17-21 the
# image-left brow). The peak displacement of a pattern is its amplitude.
PATTERNS: dict[str, tuple[Component, ...]] = {
    # positive, AU6+12: lip corners up and out, cheeks raised
    "lip_corner_pull": (Component((48,), (-0.5, -0.85), 0.7), Component((54,), (0.5, -0.85), 0.7),
                        Component((1, 31, 41), (0, -0.6), 0.8), Component((15, 35, 46), (0, -0.6), 0.8)),
    # anger, AU4: brows down and together
    "brow_lower": (Component((20, 21), (0.6, 0.8), 0.7), Component((22, 23), (-0.6, 0.8), 0.7),
                   Component((18, 19), (0.3, 0.6), 0.7), Component((24, 25), (-0.3, 0.6), 0.7)),
    # disgust, AU9+10: nose wings and upper lip up
    "nose_wrinkle": (Component((31,), (0, -1), 0.5), Component((35,), (0, -1), 0.5),
                     Component((50, 52), (0, -0.7), 0.6)),
    # fear, AU1+2+4: brows up and together
    "fear_brows": (Component((20, 21), (0.5, -0.85), 0.7), Component((22, 23), (-0.5, -0.85), 0.7),
                   Component((18,), (0, -0.6), 0.7), Component((25,), (0, -0.6), 0.7)),
    # sadness, AU15: lip corners down
    "lip_corner_depress": (Component((48,), (0, 1), 0.7), Component((54,), (0, 1), 0.7)),
    # contempt, R14: one lip corner tightened inwards and up
    "unilateral_dimpler": (Component((54,), (-0.8, -0.5), 0.7),),
    # surprise, AU1+2+26: brows up, slight jaw drop
    "brow_raise_jaw_drop": (Component((18, 19, 20), (0, -1), 0.9), Component((23, 24, 25), (0, -1), 0.9),
                            Component((57, 8), (0, 0.6), 1.1)),
    # others
    "unilateral_lip_pull": (Component((54,), (0.5, -0.85), 0.7),),                 # L12
    "unilateral_brow_raise": (Component((24, 25, 26), (0, -1), 0.8),),             # L2
    "lip_press": (Component((51, 62), (0, 0.7), 0.6), Component((57, 66), (0, -0.7), 0.6)),  # AU24
    # distractor: both upper eyelids close (amplitude = fraction of the eye opening)
    "blink": (Component((37, 38), (0, 1), 0.35), Component((43, 44), (0, 1), 0.35)),
}

# action units and objective class written in the label sheets per pattern
PATTERN_AUS: dict[str, tuple[str, int]] = {
    "lip_corner_pull": ("6+12", 1), "brow_lower": ("4", 3), "nose_wrinkle": ("9+10", 6),
    "fear_brows": ("1+2+4", 2), "lip_corner_depress": ("15", 4), "unilateral_dimpler": ("R14", 4),
    "brow_raise_jaw_drop": ("1+2+26", 2), "unilateral_lip_pull": ("L12", 7),
    "unilateral_brow_raise": ("L2", 7), "lip_press": ("24", 5),
}


def profile(event: PlannedEvent, t: np.ndarray | int) -> np.ndarray:
    """Strength of ``event`` at frame(s) ``t``: 0 at onset/offset, 1 at apex (cosine ramps)."""
    t = np.asarray(t, np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * (t - event.onset) / max(event.apex - event.onset, 1))
    fall = 0.5 + 0.5 * np.cos(np.pi * (t - event.apex) / max(event.offset - event.apex, 1))
    out = np.where(t <= event.apex, rise, fall)
    return np.where((t < event.onset) | (t > event.offset), 0.0, out)


def event_field(face: FaceTemplate, pattern: str, amplitude: float) -> np.ndarray:
    """Displacement field (2 x H x W, frame px) of a pattern at full strength.

    ``amplitude`` is in px of the 320-px feature crop, except for "blink",
    where it is the fraction of the eye opening the upper lids travel.
    """
    h, w = face.image.shape[:2]
    lm, g = face.landmarks, face.g
    if pattern == "blink":
        opening = np.mean(lm[[41, 40, 47, 46], 1] - lm[[37, 38, 43, 44], 1])
        peak = amplitude * opening
    else:
        peak = amplitude * face.crop_px
    field = np.zeros((2, h, w), np.float32)
    for comp in PATTERNS[pattern]:
        cx, cy = lm[list(comp.landmarks)].mean(axis=0)
        s = comp.sigma * g
        r = int(np.ceil(3 * s))
        x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
        y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
        field[0, y0:y1, x0:x1] += peak * comp.direction[0] * blob
        field[1, y0:y1, x0:x1] += peak * comp.direction[1] * blob
    return field


@dataclass(frozen=True)
class NuisanceConfig:
    """Global nuisances of a video (sizes at the 320-px crop scale)."""

    drift_amplitude: tuple[float, float] = (2.0, 8.0)   # slow head drift, crop px per axis
    drift_period: tuple[float, float] = (4.0, 20.0)     # s
    gain_amplitude: tuple[float, float] = (0.02, 0.08)  # slow illumination change, relative
    gain_period: tuple[float, float] = (5.0, 30.0)      # s
    noise_sigma: tuple[float, float] = (1.5, 3.0)       # sensor noise, grey levels
    noise_bank: int = 8                                 # pre-drawn noise frames, picked at random


NUISANCE = NuisanceConfig()


def head_track(video: VideoPlan, crop_px: float, rng: np.random.Generator) -> np.ndarray:
    """Head translation per frame (n_frames x 2, frame px): drift plus jerks."""
    t = np.arange(video.n_frames) / video.fps
    track = np.zeros((video.n_frames, 2))
    for axis in range(2):
        for _ in range(2):
            amp = rng.uniform(*NUISANCE.drift_amplitude) / 2
            period = rng.uniform(*NUISANCE.drift_period)
            track[:, axis] += amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    frames = np.arange(video.n_frames)
    for jerk in video.jerks:
        ramp = np.clip((frames - jerk.frame) / jerk.frames, 0, 1)
        track[:, 0] += jerk.dx * ramp
        track[:, 1] += jerk.dy * ramp
    return (track * crop_px).astype(np.float32)


class VideoRenderer:
    """Renders the frames of one planned video from an identity template."""

    def __init__(self, face: FaceTemplate, video: VideoPlan):
        self.face, self.video = face, video
        rng = np.random.default_rng(video.seed)
        h, w = face.image.shape[:2]
        # the head box: where the face mask (hence any motion) is not ~0
        ys, xs = np.nonzero(face.face_mask > 1e-3)
        rows = slice(max(0, ys.min() - 2), min(h, ys.max() + 3))
        cols = slice(max(0, xs.min() - 2), min(w, xs.max() + 3))
        self.box = (slice(None), rows, cols)
        self.mask = np.ascontiguousarray(face.face_mask[rows, cols])
        self.grid_x, self.grid_y = np.meshgrid(np.arange(cols.start, cols.stop, dtype=np.float32),
                                               np.arange(rows.start, rows.stop, dtype=np.float32))
        self.head = head_track(video, face.crop_px, rng)
        t = np.arange(video.n_frames) / video.fps
        amp, period = rng.uniform(*NUISANCE.gain_amplitude), rng.uniform(*NUISANCE.gain_period)
        self.gain = (1 + amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))).astype(np.float32)
        sigma = rng.uniform(*NUISANCE.noise_sigma)
        noise = np.rint(rng.normal(0, sigma, (NUISANCE.noise_bank, h, w, 3)))
        self.noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self.noise_down = np.clip(-noise, 0, 255).astype(np.uint8)
        self.noise_index = rng.integers(0, NUISANCE.noise_bank, video.n_frames)

    def maps(self, t: int, fields: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Backward maps (x, y) of frame ``t`` over the head box; ``fields`` caches
        the active event fields (cropped to the box)."""
        hx, hy = self.head[t]
        map_x = cv2.scaleAdd(self.mask, -float(hx), self.grid_x)
        map_y = cv2.scaleAdd(self.mask, -float(hy), self.grid_y)
        for i, ev in enumerate(self.video.events):
            if ev.onset <= t <= ev.offset:
                if i not in fields:
                    fields[i] = event_field(self.face, ev.pattern, ev.amplitude)[self.box]
                strength = -float(profile(ev, t))
                if strength:
                    cv2.scaleAdd(fields[i][0], strength, map_x, dst=map_x)
                    cv2.scaleAdd(fields[i][1], strength, map_y, dst=map_y)
            else:
                fields.pop(i, None)
        return map_x, map_y

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield the BGR uint8 frames in order."""
        fields: dict[int, np.ndarray] = {}
        rows, cols = self.box[1:]
        for t in range(self.video.n_frames):
            map_x, map_y = self.maps(t, fields)
            frame = self.face.image.copy()      # only the head box moves
            frame[rows, cols] = cv2.remap(self.face.image, map_x, map_y, cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE)
            frame = cv2.convertScaleAbs(frame, alpha=float(self.gain[t]))
            k = self.noise_index[t]
            cv2.add(frame, self.noise_up[k], dst=frame)          # saturating uint8 noise
            cv2.subtract(frame, self.noise_down[k], dst=frame)
            yield frame

    def __len__(self) -> int:
        return self.video.n_frames
