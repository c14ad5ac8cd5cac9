"""ROI optical-flow features (docs/method.md §2.2-§2.8) on warped astronaut frames with known motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from mepkg.features import FeatureConfig, extract_features, run_features
from mepkg.quality import (ALIGNMENT_CAPPED, BOX_OUTSIDE, DRIFT_BOUNDED, REDETECT_FAILED,
                           REUSED_CROP)
from mepkg.h5io import LandmarkTrack, read_features
from mepkg.landmarks import detect_video_landmarks, get_backend
from mepkg.roi import (MOTION_NAMES, build_rois, crop_box_from_landmarks, crop_gray,
                       crop_scale, robust_motion)

K = 10          # short windows keep the tests fast: 20 frames -> 3 windows
N_FRAMES = 20
APEX = 5        # frame of the injected motion's apex (window 0, step 5)
CFG = FeatureConfig(k=K, frame_skip=1)


def channel(name: str, axis: str) -> int:
    return 2 * MOTION_NAMES.index(name) + (axis == "y")


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """The astronaut's face, 400 x 400 BGR, face about 150 px wide."""
    bgr = np.ascontiguousarray(data.astronaut()[16:256, 102:342, ::-1])
    return cv2.resize(bgr, (400, 400), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def face_points(face) -> np.ndarray:
    return get_backend("dlib").detect(face)[1]


def warp(img: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Move image content by the field (dx, dy): out(p) = img(p - d(p))."""
    h, w = img.shape[:2]
    x, y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, x - dx.astype(np.float32), y - dy.astype(np.float32),
                     cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def bump(shape, centre, sigma: float) -> np.ndarray:
    h, w = shape[:2]
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    return np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma ** 2))


def profile(t: int) -> float:
    """Triangular ME intensity: 0 before frame 1, 1 at APEX, 0 after frame 9."""
    return max(0.0, 1.0 - abs(t - APEX) / 4.0)


def run(frames) -> "FeatureSet":
    track = detect_video_landmarks(frames, k=K, frame_skip=1, backend="dlib")
    return extract_features(frames, track, CFG)


# ---------------------------------------------------------------- geometry
def test_crop_box_from_inner_eye_corners():
    pts = np.zeros((68, 2))
    pts[39], pts[42] = (100, 100), (140, 100)          # g = 20, centre (120, 100)
    assert crop_box_from_landmarks(pts) == (100 - 70, 100 + 110, 120 - 90, 120 + 90)
    pts[39], pts[42] = (10, 30), (50, 30)               # clipped at 0
    assert crop_box_from_landmarks(pts) == (0, 140, 0, 120)
    pts[42] = (11, 30)                                  # eyes on top of each other
    with pytest.raises(ValueError, match="no usable face"):
        crop_box_from_landmarks(pts)


def test_crop_gray_pads_outside_frame():
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_gray(frame, (-10, 90, 50, 150), 320)    # half outside: replicated border
    assert crop.shape == (320, 320) and crop.dtype == np.uint8 and (crop == 200).all()
    assert crop_scale((0, 160, 0, 80), 320) == (4.0, 2.0)


def test_roi_boxes_follow_the_table(face_points):
    box = crop_box_from_landmarks(face_points)
    sx, sy = crop_scale(box, 320)
    pts = (face_points - (box[2], box[0])) * (sx, sy)
    nose, rois = build_rois(pts, CFG)
    p = np.rint(pts).astype(int)
    r1, r3, r4, r5, r6, r7 = rois
    brow = p[17:22]
    assert r1.box == (brow[:, 1].min() - 15, brow[:, 1].max() + 5,
                      brow[:, 0].min() - 5, brow[:, 0].max())
    mouth = p[48:67]
    assert r4.box == (mouth[:, 1].min() - 15, mouth[:, 1].max() + 10,
                      mouth[:, 0].min() - 20, mouth[:, 0].max() + 20)
    assert nose.box == (p[29:31, 1].min() - 13, p[30, 1] + 13,
                        p[29:31, 0].min() - 13, p[29:31, 0].max() + 13)
    lid = p[36:42]
    w, cy = lid[:, 0].max() - lid[:, 0].min(), (lid[:, 1].min() + lid[:, 1].max()) / 2
    assert r6.box == (int(cy + w / 4), int(cy + 3 * w / 4), lid[:, 0].min(), lid[:, 0].max())
    # sub-patch 48: 20 rows x 30 cols extending right of the mouth corner
    sub48 = r4.patches[1]
    assert sub48.name == "R4/48"
    assert (sub48.rows.stop - sub48.rows.start, sub48.cols.stop - sub48.cols.start) == (20, 30)
    assert sub48.cols.start + r4.box[2] == p[48, 0] - 10
    names = [pt.name for roi in rois for pt in roi.patches]
    assert tuple(names) == MOTION_NAMES and len(names) == 18


def test_robust_motion_averages_the_largest_fraction():
    flow = np.zeros((2, 5, 2), np.float32)
    flow[..., 0] = np.arange(1, 11).reshape(2, 5)       # magnitudes 1..10 along x
    flow[..., 1] = -np.arange(1, 11).reshape(2, 5)
    np.testing.assert_allclose(robust_motion(flow, 0.3), [9.0, -9.0])     # mean of 8, 9, 10
    np.testing.assert_allclose(robust_motion(flow, 0.7), [7.0, -7.0])     # mean of 4..10
    np.testing.assert_allclose(robust_motion(flow, 1.0), [5.5, -5.5])


# ---------------------------------------------------------------- motion
def test_local_mouth_corner_motion_shows_in_its_roi(face, face_points):
    box = crop_box_from_landmarks(face_points)
    sx, _ = crop_scale(box, 320)
    amp = 1.5 / sx                       # 1.5 px at crop scale, leftwards (outwards)
    field = bump(face.shape, face_points[48], sigma=8.0)
    frames = [(t, warp(face, -amp * profile(t) * field, 0 * field)) for t in range(N_FRAMES)]
    fs = run(frames)
    apex = fs.features[0, :, APEX]
    assert fs.quality[0] == 0
    dx48 = apex[channel("R4/48", "x")]
    assert dx48 < 0 and abs(dx48 + 1.5) <= 0.25 * 1.5, dx48
    assert abs(apex[channel("R4/48", "y")]) < 0.2
    for name in ("R1", "R1/20", "R1/19", "R1/18", "R3", "R3/23", "R3/24", "R3/25",
                 "R5/31", "R5/35", "R6", "R7"):
        for axis in "xy":
            assert abs(apex[channel(name, axis)]) < 0.2, (name, axis, apex[channel(name, axis)])
    # the motion rises and falls with the injected profile; step 0 is zero
    curve = -fs.features[0, channel("R4/48", "x")]
    assert curve[0] == 0 and np.argmax(curve) == APEX and curve[1] < curve[3] < curve[APEX]


def _mouth_corner_video(face, face_points) -> list:
    """The mouth-corner ME of the test above: 1.5 crop px leftwards at the apex."""
    sx, _ = crop_scale(crop_box_from_landmarks(face_points), 320)
    field = bump(face.shape, face_points[48], sigma=8.0)
    return [(t, warp(face, -1.5 / sx * profile(t) * field, 0 * field)) for t in range(N_FRAMES)]


def test_match_brightness_undoes_a_lighting_flicker(face, face_points):
    """docs/method.md §2.4: a frame-wide gain change (flicker) is not motion."""
    assert not FeatureConfig().match_brightness                  # the paper's: off
    frames = _mouth_corner_video(face, face_points)
    gain = [1.0 - 0.15 * (t % 2) for t in range(N_FRAMES)]     # no clipping: gain <= 1
    flicker = [(t, (f * gain[t]).round().astype(np.uint8)) for t, f in frames]
    track = detect_video_landmarks(frames, k=K, frame_skip=1, backend="dlib")
    matched = FeatureConfig(k=K, frame_skip=1, match_brightness=True)

    def error(config):
        return np.abs(extract_features(flicker, track, config).features
                      - extract_features(frames, track, config).features).max()

    with_matching, without = error(matched), error(CFG)    # 0.08 and 0.96 when written
    assert with_matching < 0.15 and without > 5 * with_matching, (with_matching, without)
    apex = extract_features(flicker, track, matched).features[0, :, APEX]
    assert abs(apex[channel("R4/48", "x")] + 1.5) <= 0.25 * 1.5


def test_global_head_translation_is_cancelled(face):
    frames = [(t, warp(face, np.full(face.shape[:2], 2.0 * (t >= 3)),
                       np.full(face.shape[:2], -2.0 * (t >= 3))))
              for t in range(N_FRAMES)]
    fs = run(frames)
    assert np.abs(fs.features).max() < 0.2, np.abs(fs.features).max()
    assert (fs.quality & ALIGNMENT_CAPPED == 0).all()
    np.testing.assert_array_equal(fs.crop_box[1], fs.crop_box[0] + [-2, -2, 2, 2])


def test_realignment_is_capped_after_three_shifts(face, face_points, monkeypatch):
    """A nose bridge that keeps moving 5 crop px: 3 shifts of the crop, then the flag."""
    from mepkg import features

    box = crop_box_from_landmarks(face_points)
    sx, sy = crop_scale(box, 320)
    crop = crop_gray(face, box, 320)
    nose, rois = build_rois(get_backend("dlib").detect(crop)[1], CFG)
    ref = features.Reference(box, np.zeros((68, 2)), nose, rois)
    win = features._Window(0, 0, ref, crop, CFG)
    calls = []
    monkeypatch.setattr(win, "_head", lambda c: calls.append(1) or np.array([5.0, 0.0]))
    win.step(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), 1)
    assert len(calls) == 1 + CFG.max_realign and win.quality == ALIGNMENT_CAPPED
    shift = CFG.max_realign * round(5.0 / sx)
    assert win.box == [box[0], box[1], box[2] + shift, box[3] + shift]   # kept for the window


def _window(face, face_points, config=CFG, box=None):
    from mepkg import features

    box = box or crop_box_from_landmarks(face_points)
    crop = crop_gray(face, box, 320)
    nose, rois = build_rois(get_backend("dlib").detect(crop)[1], config)
    return features._Window(0, 0, features.Reference(box, np.zeros((68, 2)), nose, rois),
                            crop, config)


def test_realignment_stops_at_the_drift_bound(face, face_points, monkeypatch):
    """A nose bridge that keeps moving 20 crop px: shifts until the next would pass
    max_drift x the box side, then the flag; the crop stays inside the bound."""
    config = FeatureConfig(k=K, frame_skip=1, max_drift=0.1)
    win = _window(face, face_points, config)
    box = list(win.box)
    monkeypatch.setattr(win, "_head", lambda c: np.array([20.0, 0.0]))
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    for t in range(1, K):
        win.step(gray, t)
    side = box[3] - box[2]
    shift = round(20.0 / crop_scale(tuple(box), 320)[0])
    assert win.quality & DRIFT_BOUNDED and not win.quality & BOX_OUTSIDE
    assert win.box[2] - box[2] == shift * int(0.1 * side // shift) <= 0.1 * side
    assert win.box[0] == box[0]


def test_crop_box_entirely_outside_the_frame_flags_the_window(face, face_points):
    """A frame the box does not touch: the window is flagged and stops, nothing raises."""
    win = _window(face, face_points)
    small = np.full((40, 40), 128, np.uint8)        # the box starts below row 40
    assert crop_box_from_landmarks(face_points)[0] > 40
    win.step(small, 1)
    win.step(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), 2)
    assert win.quality == BOX_OUTSIDE and win.stopped
    assert not win.features.any()                   # no motion measured after it


def test_realignment_walking_out_of_the_frame_flags_instead_of_raising(face, face_points,
                                                                         monkeypatch):
    """Without a drift bound the re-alignment can follow a moving hand out of the frame
    (a 640x360 clip did): the window is flagged box_outside."""
    config = FeatureConfig(k=K, frame_skip=1, max_drift=1.0)
    win = _window(face, face_points, config)
    monkeypatch.setattr(win, "_head", lambda c: np.array([0.0, 60.0]))
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)[:200]    # the box's bottom is below it
    for t in range(1, K):
        win.step(gray, t)
    assert win.quality & BOX_OUTSIDE and not win.quality & DRIFT_BOUNDED
    assert win.box[0] < gray.shape[0] and win.stopped      # the last box inside is kept


def _canvas(face) -> np.ndarray:
    canvas = np.full((400, 600, 3), 128, np.uint8)
    canvas[:, :400] = face
    return canvas


def _moved(img: np.ndarray, dx: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, 0]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderValue=(128, 128, 128))


def test_face_leaving_the_frame_mid_way_flags_its_windows(face):
    """The face slides out of a 600-px frame from frame 12 (40 px a frame): features for
    every window, those whose reference shows no face flagged reused_crop."""
    canvas = _canvas(face)
    frames = [(t, _moved(canvas, 40 * max(0, t - 12))) for t in range(40)]   # 7 windows
    fs = run(frames)
    assert fs.n_windows == 7 and fs.quality[0] == 0
    assert list(fs.quality[5:] & REUSED_CROP) == [REUSED_CROP, REUSED_CROP]   # refs 25, 30
    assert not (fs.quality[:5] & REUSED_CROP).any()
    from mepkg.quality import frame_mask
    mask = frame_mask(fs.quality, K)
    assert mask[:20].all() and not mask[20:].any()   # no face at 25: it left after 20


def test_occluder_over_the_lower_face_flags_only_the_windows_it_hides(face):
    """A hand-like ellipse crossing nose and mouth from frame 8 to 30: the window whose
    reference face it hides (no face found) is flagged, the windows before it are clean."""
    canvas = _canvas(face)

    def frame(t):
        img = canvas.copy()
        if 8 <= t <= 30:
            cv2.ellipse(img, (60 + 12 * (t - 8), 215), (70, 45), 0, 0, 360, (120, 150, 200), -1)
        return img

    fs = run([(t, frame(t)) for t in range(40)])
    assert fs.n_windows == 7 and not fs.quality[:3].any()
    assert fs.quality[4] & REUSED_CROP                  # reference frame 20: hand on the face
    assert fs.quality[6] == 0                           # frames 30..39: the hand has gone


def test_face_vanishing_at_a_reference_frame_reuses_the_last_crop(face):
    blank = np.full_like(face, 128)
    frames = [(t, blank if t == 10 else face) for t in range(N_FRAMES)]   # window 2's reference
    fs = run(frames)
    assert list(fs.quality & REUSED_CROP) == [0, 0, REUSED_CROP]
    np.testing.assert_array_equal(fs.crop_box[2], fs.crop_box[1])
    np.testing.assert_array_equal(fs.landmarks[2], fs.landmarks[1])


def test_face_missing_at_the_start_uses_the_next_good_reference(face):
    blank = np.full_like(face, 128)
    frames = [(t, blank if t == 0 else face) for t in range(N_FRAMES)]
    fs = run(frames)
    assert list(fs.quality) == [REUSED_CROP, 0, 0]
    np.testing.assert_array_equal(fs.crop_box[0], fs.crop_box[1])


def test_video_without_face_fails_naming_it(tmp_path):
    folder = tmp_path / "nobody_here"
    folder.mkdir()
    for t in range(N_FRAMES):
        cv2.imwrite(str(folder / f"{t}.jpg"), np.full((200, 200, 3), 90, np.uint8))
    with pytest.raises(ValueError, match="nobody_here.*no face"):
        detect_video_landmarks(folder, k=K, frame_skip=1, backend="dlib")
    track = LandmarkTrack(ref_frame=np.array([0, 5, 10]), face_box=np.full((3, 4), np.nan),
                          landmarks=np.full((3, 68, 2), np.nan), detected=np.zeros(3, bool),
                          attrs={"k": K, "frame_skip": 1})
    with pytest.raises(ValueError, match="nobody_here.*no face"):
        extract_features(folder, track, CFG)


def test_mismatched_landmarks_are_rejected(face):
    frames = [(t, face) for t in range(N_FRAMES)]
    track = detect_video_landmarks(frames, k=K, frame_skip=1, backend="dlib")
    with pytest.raises(ValueError, match="k=10.*k=20"):
        extract_features(frames, track, FeatureConfig(k=20, frame_skip=1))


def test_run_features_writes_hdf5_and_debug_figure(tmp_path, face):
    folder = tmp_path / "006_1"
    folder.mkdir()
    for t in range(2 * N_FRAMES):                        # frame_skip 2: 20 sampled frames
        cv2.imwrite(str(folder / f"006_1_{t + 1:04d}.jpg"), face)
    out, png = tmp_path / "features" / "006_1.h5", tmp_path / "debug.png"
    cfg = FeatureConfig(k=K, frame_skip=2)
    run_features(folder, out, cfg, debug_figure=png, progress=False,
                 video_id="006_1", subject="006", video="006_1", fps=200.0)
    fs = read_features(out)
    assert fs.features.shape == (3, 36, K) and fs.features.dtype == np.float32
    assert list(fs.window_start) == [0, 5, 10]
    assert np.abs(fs.features).max() < 0.05             # a still face: no motion
    assert fs.attrs["video_id"] == "006_1" and fs.attrs["frame_skip"] == 2
    assert fs.attrs["fps"] == 200.0 and fs.attrs["subject"] == "006"
    assert fs.attrs["n_frames"] == 2 * N_FRAMES and fs.attrs["landmark_backend"] == "dlib"
    assert (fs.quality & ~np.uint8(REDETECT_FAILED) == 0).all()
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
