"""Synthetic identities: one real face photograph, morphed per subject.

The source is ``skimage.data.astronaut()`` (Eileen Collins, public domain).
dlib's 68 landmarks of it are stored below; each ``Identity`` then moves the
landmarks (eye distance, jaw width, nose length, mouth width, lower-face
height), warps the photo with a thin-plate spline through them, optionally
mirrors it, changes skin tone, contrast and gamma, adds a static fine skin
texture (so optical flow has something to track), scales and places the face
in the frame, and replaces everything outside a soft ellipse around the head
with a blurred, tinted backdrop (which also removes the suit's mission patch,
which dlib would take for a second face).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from mepkg.synth.plan import Identity

# 68-point iBUG mirror permutation: index i of a face becomes MIRROR[i] after a flip.
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])

SOURCE_HALF = 105      # half-size (px) of the square taken around the source face
SKIN_TEXTURE = 4.0     # std (grey levels) of the static skin texture
MORPH_GRID_STEP = 5    # the thin-plate warp is evaluated every 5 px, then interpolated


@dataclass(frozen=True)
class FaceTemplate:
    """An identity rendered at one frame size: the neutral frame and its geometry."""

    image: np.ndarray       # H x W x 3 uint8, BGR
    landmarks: np.ndarray   # 68 x 2 float32, frame px (x, y)
    face_mask: np.ndarray   # H x W float32 in [0, 1]: 1 on the head, 0 on the backdrop

    @property
    def g(self) -> float:
        """Half the inner-eye-corner distance (docs/method.md §2): the crop's unit."""
        return float(abs(self.landmarks[42, 0] - self.landmarks[39, 0]) / 2)

    @property
    def crop_px(self) -> float:
        """Frame pixels per pixel of the 320-px feature crop (9g / 320)."""
        return 9 * self.g / 320


@functools.lru_cache(maxsize=1)
def dlib_models():
    """(frontal face detector, 68-point predictor), loaded once."""
    import dlib

    from mepkg.landmarks import dlib_predictor_path   # the one lookup of the predictor file

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dlib_predictor_path()))


# dlib's 68 landmarks of skimage.data.astronaut() (frontal detector upsampled once,
# largest face), stored so that rendering needs no dlib; a test re-detects them.
ASTRONAUT_LANDMARKS = np.array([
    (179, 104), (180, 116), (181, 127), (182, 139), (185, 150), (191, 160), (200, 168), (209, 176),
    (220, 178), (232, 177), (243, 171), (253, 163), (260, 154), (265, 143), (268, 131), (270, 120),
    (272, 108), (186, 94), (192, 88), (200, 87), (208, 89), (216, 92), (236, 93), (244, 91),
    (252, 91), (260, 92), (265, 99), (226, 102), (225, 111), (225, 119), (225, 127), (214, 131),
    (219, 133), (224, 134), (229, 133), (234, 132), (195, 101), (200, 98), (207, 98), (212, 104),
    (206, 104), (199, 104), (237, 106), (243, 100), (250, 100), (255, 105), (250, 107), (244, 107),
    (201, 139), (209, 139), (218, 139), (224, 141), (230, 140), (238, 140), (246, 141), (238, 151),
    (229, 155), (222, 156), (216, 155), (208, 150), (204, 141), (218, 143), (223, 144), (230, 143),
    (243, 142), (229, 150), (223, 151), (217, 150)], np.float32)


@functools.lru_cache(maxsize=1)
def source_face() -> tuple[np.ndarray, np.ndarray]:
    """The source crop (BGR, float32) and its 68 landmarks (crop px)."""
    from skimage import data

    rgb = data.astronaut()
    pts = ASTRONAUT_LANDMARKS
    cx, cy = pts[:, 0].mean(), pts[:, 1].mean() - 8
    x0, y0 = int(round(cx)) - SOURCE_HALF, int(round(cy)) - SOURCE_HALF
    crop = rgb[y0:y0 + 2 * SOURCE_HALF, x0:x0 + 2 * SOURCE_HALF, ::-1].astype(np.float32)
    return crop, pts - np.float32([x0, y0])


def morph_landmarks(pts: np.ndarray, ident: Identity) -> np.ndarray:
    """Move the source landmarks to the identity's face shape."""
    out = pts.copy()
    mx = pts[27, 0]                                  # face midline (nose bridge)
    eye_y = pts[36:48, 1].mean()
    upper = np.r_[17:27, 36:48]                      # brows and eyes
    out[upper, 0] = mx + (pts[upper, 0] - mx) * ident.eye_scale
    out[0:17, 0] = mx + (pts[0:17, 0] - mx) * ident.jaw_scale
    lower = np.r_[2:15, 31:36, 48:68]                # below the eye line
    out[lower, 1] = eye_y + (pts[lower, 1] - eye_y) * ident.face_height
    nose = np.r_[28:36]
    out[nose, 1] = out[27, 1] + (out[nose, 1] - out[27, 1]) * ident.nose_scale
    mouth = np.r_[48:68]
    mcx = out[mouth, 0].mean()
    out[mouth, 0] = mcx + (out[mouth, 0] - mcx) * ident.mouth_scale
    return out


def _thin_plate_warp(img: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Warp ``img`` so that points ``src`` move to ``dst`` (border fixed)."""
    h, w = img.shape[:2]
    edge = np.linspace(0, 1, 9)
    border = np.concatenate([np.c_[edge * (w - 1), np.zeros(9)], np.c_[edge * (w - 1), np.full(9, h - 1)],
                             np.c_[np.zeros(9), edge * (h - 1)], np.c_[np.full(9, w - 1), edge * (h - 1)]])
    anchors = np.concatenate([dst, border])
    shift = np.concatenate([src - dst, np.zeros_like(border)])       # backward map at anchors
    rbf = RBFInterpolator(anchors, shift, kernel="thin_plate_spline", smoothing=1.0)
    gy, gx = np.mgrid[0:h:MORPH_GRID_STEP, 0:w:MORPH_GRID_STEP]
    coarse = rbf(np.c_[gx.ravel(), gy.ravel()]).reshape(gx.shape + (2,)).astype(np.float32)
    fine = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, xx + fine[..., 0], yy + fine[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def render_identity(ident: Identity, frame_size: int) -> FaceTemplate:
    """The neutral frame of one identity at ``frame_size`` x ``frame_size``."""
    crop, pts = source_face()
    dst = morph_landmarks(pts, ident)
    img = _thin_plate_warp(crop, pts, dst)
    side = img.shape[1]
    if ident.mirror:
        img = img[:, ::-1]
        dst = dst.copy()
        dst[:, 0] = side - 1 - dst[:, 0]
        dst = dst[MIRROR]

    # tone: per-channel skin gain, contrast around mid-grey, gamma
    img = img * np.float32(ident.skin_gain)
    img = 128 + (img - 128) * ident.contrast
    img = 255 * (np.clip(img, 0, 255) / 255) ** ident.gamma
    # static skin texture: band-limited noise, moves with the face
    tex = np.random.default_rng(ident.texture_seed).normal(0, 1, img.shape[:2]).astype(np.float32)
    tex = cv2.GaussianBlur(tex, (0, 0), 0.8)
    img = img + (SKIN_TEXTURE / tex.std()) * tex[..., None]

    # place: jaw width = face_frac of the frame, centred (plus offset)
    n = frame_size
    scale = ident.face_frac * n / (dst[16, 0] - dst[0, 0])
    centre = np.float32([(dst[0, 0] + dst[16, 0]) / 2, (dst[27, 1] + dst[8, 1]) / 2])
    target = np.float32([n * (0.5 + ident.offset[0]), n * (0.57 + ident.offset[1])])
    affine = np.float32([[scale, 0, target[0] - scale * centre[0]],
                         [0, scale, target[1] - scale * centre[1]]])
    face = cv2.warpAffine(img, affine, (n, n), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    lm = (dst @ affine[:, :2].T + affine[:, 2]).astype(np.float32)

    # backdrop: vertical gradient of two colours mixed with the blurred frame
    top, bottom = np.float32(ident.backdrop[0]), np.float32(ident.backdrop[1])
    ramp = np.linspace(0, 1, n, dtype=np.float32)[:, None, None]
    gradient = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (n, n, 3))
    backdrop = 0.55 * gradient + 0.45 * cv2.GaussianBlur(face, (0, 0), n / 25)

    # soft ellipse over the head (forehead and hair included, neck cut)
    width = lm[16, 0] - lm[0, 0]
    brow_y, chin_y = lm[17:27, 1].mean(), lm[8, 1]
    mask = np.zeros((n, n), np.float32)
    centre_xy = (int(round(lm[27, 0])), int(round((brow_y + chin_y) / 2 - 0.2 * (chin_y - brow_y))))
    axes = (int(round(0.62 * width)), int(round(0.95 * (chin_y - brow_y))))
    cv2.ellipse(mask, centre_xy, axes, 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), n / 60)
    out = face * mask[..., None] + backdrop * (1 - mask[..., None])
    return FaceTemplate(np.clip(out + 0.5, 0, 255).astype(np.uint8), lm, mask)


def detect_faces(bgr: np.ndarray) -> list[np.ndarray]:
    """dlib frontal faces (upsampled once) with their 68 landmarks, frame px."""
    detector, predictor = dlib_models()
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    return [np.array([(p.x, p.y) for p in predictor(rgb, r).parts()], np.float32)
            for r in detector(rgb, 1)]
