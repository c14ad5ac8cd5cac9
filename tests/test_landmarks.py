"""Landmark backends and reference-frame landmark tracks (docs/method.md §2.1)."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from skimage import data

from mepkg import landmarks as lm
from mepkg.landmarks import detect_video_landmarks, get_backend
from mepkg.targets import n_windows


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[..., ::-1])   # BGR, face near (179..266, 83..170)


def test_dlib_finds_the_astronauts_face(astronaut):
    backend = get_backend("dlib")
    assert backend is get_backend("dlib")                       # models load once per process
    assert backend.name == "dlib" and backend.version
    box, points = backend.detect(astronaut)
    assert points.shape == (68, 2) and points.dtype == np.float32
    np.testing.assert_allclose(box, [179, 83, 266, 170], atol=12)
    left, top, right, bottom = box
    assert (left <= points[30, 0] <= right) and (top <= points[30, 1] <= bottom)   # nose tip
    assert points[36:42, 0].mean() < points[42:48, 0].mean()    # image-left eye first (iBUG)
    assert points[17:27, 1].mean() < points[36:48, 1].mean() < points[48:68, 1].mean()
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)            # gray works the same
    np.testing.assert_allclose(backend.detect(gray)[1], points, atol=1)


class _CountingDetector:
    """Wraps dlib's detector: records the (rows, cols, upsampling) of every pass."""

    def __init__(self, detector):
        self.detector, self.passes = detector, []

    def __call__(self, image, upsample):
        self.passes.append((*image.shape[:2], upsample))
        return self.detector(image, upsample)


@pytest.fixture
def counted(monkeypatch):
    backend = get_backend("dlib")
    counting = _CountingDetector(backend._detector)
    monkeypatch.setattr(backend, "_detector", counting)
    return backend, counting


def test_dlib_detects_a_large_face_at_the_reduced_size_with_the_full_size_landmarks(
        astronaut, counted):
    """A face far above dlib's 80-pixel window is found in one pass at (5/6)^4 of the
    image; its box and 68 points match a full-size detection to a few pixels."""
    backend, counting = counted
    big = cv2.resize(cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY), (1536, 1536))   # face ~260 px
    box, points = backend.detect(big)
    assert counting.passes == [(741, 741, 0)]                 # round(1536 * 0.482)
    full = counting.detector(big, 0)[0]
    np.testing.assert_allclose(box, [full.left(), full.top(), full.right(), full.bottom()],
                               atol=8)
    ref = backend._predictor(big, full)
    ref_points = np.array([(p.x, p.y) for p in ref.parts()], np.float32)
    assert np.abs(points - ref_points).mean() < 3.0           # ~1% of the face


def test_dlib_falls_back_to_full_size_for_a_small_face(astronaut, counted):
    """The astronaut's ~87-pixel face is under 80 pixels at the reduced size: the full-size
    pass finds it, as before the reduced pass existed."""
    backend, counting = counted
    box, _ = backend.detect(astronaut)
    assert counting.passes == [(247, 247, 0), (512, 512, 0)]
    np.testing.assert_allclose(box, [179, 83, 266, 170], atol=12)


def test_dlib_detector_is_loaded_from_the_cache_with_the_same_detections(monkeypatch, tmp_path,
                                                                         astronaut):
    import dlib

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = lm.frontal_face_detector()                        # dlib's copy, saved
    saved = list((tmp_path / "mepkg").iterdir())
    assert [f.name for f in saved] == [f"dlib-{dlib.__version__}-frontal_face_detector.svm"]
    second = lm.frontal_face_detector()                       # loaded from the file
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    runs = [d.run(gray, 1, -0.5) for d in (first, second, dlib.get_frontal_face_detector())]
    as_lists = [([(r.left(), r.top(), r.right(), r.bottom()) for r in rects], scores, kinds)
                for rects, scores, kinds in runs]
    assert as_lists[0] == as_lists[1] == as_lists[2] and as_lists[0][0]
    saved[0].write_bytes(b"damaged")                          # rewritten, still detects
    assert len(lm.frontal_face_detector()(gray, 0)) == 1
    assert saved[0].stat().st_size > 1000


def test_dlib_detector_without_a_writable_cache(monkeypatch, tmp_path, astronaut):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))       # cache_dir() cannot exist
    detector = lm.frontal_face_detector()
    assert len(detector(cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY), 0)) == 1


def test_dlib_returns_none_without_face():
    assert get_backend("dlib").detect(np.full((240, 320, 3), 127, np.uint8)) is None


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown landmark backend 'mediapipe'"):
        get_backend("mediapipe")


def test_face_alignment_offline_names_dlib(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))             # no cached weights
    monkeypatch.setattr(lm, "_reachable", lambda host, timeout=3.0: False)
    if lm.importlib.util.find_spec("face_alignment") is None:
        pytest.skip("face-alignment not installed")
    # no network wait either: how long it takes is in benchmarks/timings.py
    with pytest.raises(RuntimeError, match="weights could not be downloaded.*--backend dlib"):
        get_backend("face_alignment")


needs_face_alignment = pytest.mark.skipif(
    lm.importlib.util.find_spec("face_alignment") is None, reason="face-alignment not installed")


@needs_face_alignment
@pytest.mark.parametrize("layout, fan", [
    # 1.5: one flat table of native weights
    ({"models_urls": {"2DFAN-4": "https://h/python-fan/2DFAN4-11f355bf06.pth.tar"}},
     "2DFAN4-11f355bf06.pth.tar"),
    # 1.4: TorchScript files per torch version, default_model_urls for other versions
    ({"models_urls": {"1.6": {"2DFAN-4": "https://h/python-fan/2DFAN4_1.6-c827573f02.zip"}},
      "default_model_urls": {"2DFAN-4": "https://h/python-fan/2DFAN4-cd938726ad.zip"}},
     "2DFAN4-cd938726ad.zip"),
])
def test_face_alignment_weight_names_are_read_from_the_package(monkeypatch, layout, fan):
    from face_alignment import api

    monkeypatch.delattr(api, "default_model_urls", raising=False)
    for name, table in layout.items():
        monkeypatch.setattr(api, name, table, raising=False)
    assert lm.fa_weight_files() == (fan, "s3fd-619a316812.pth")


class _FakeFAN:
    """Stands in for face_alignment.FaceAlignment: records how it was built and the images
    it is given; finds two faces (68 points + box each), the second the larger."""
    built: list[dict] = []
    seen: list[tuple] = []

    def __init__(self, landmarks_type, **kwargs):
        _FakeFAN.built.append(kwargs)

    def get_landmarks_from_image(self, image, return_bboxes=False):
        _FakeFAN.seen.append(image.shape)
        small = np.full((68, 3), 10.0)
        large = np.column_stack([np.arange(68.0), np.arange(68.0) + 1, np.zeros(68)])
        boxes = [np.array([0, 0, 20, 20, 0.9]), np.array([0, 0, 60, 70, 0.99])]
        return [small, large], None, boxes


def _offline_with_weights(monkeypatch, tmp_path):
    """face_alignment as it is offline with its weights cached, the network faked."""
    import face_alignment

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in lm.fa_weight_files():          # the names the installed release caches
        (checkpoints / name).write_bytes(b"")
    monkeypatch.setattr(lm, "_reachable", lambda host, timeout=3.0: False)     # offline
    monkeypatch.setattr(face_alignment, "FaceAlignment", _FakeFAN)


@needs_face_alignment
def test_face_alignment_detect_returns_the_largest_face_from_gray_or_bgr(monkeypatch, tmp_path):
    _offline_with_weights(monkeypatch, tmp_path)
    backend = lm.FaceAlignmentBackend(device="cpu")
    _FakeFAN.seen.clear()
    for image in (np.zeros((80, 90), np.uint8), np.zeros((80, 90, 3), np.uint8)):
        box, points = backend.detect(image)
        assert box.tolist() == [0, 0, 60, 70]
        assert points.shape == (68, 2) and points.dtype == np.float32
        assert points[5].tolist() == [5.0, 6.0]
    assert _FakeFAN.seen == [(80, 90, 3), (80, 90, 3)]   # FAN gets RGB either way


@needs_face_alignment
@pytest.mark.parametrize("cuda", [True, False])
def test_face_alignment_offline_with_cached_weights_picks_the_gpu(monkeypatch, tmp_path, cuda):
    import torch

    _offline_with_weights(monkeypatch, tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    _FakeFAN.built.clear()
    backend = lm.FaceAlignmentBackend()
    assert backend.device == ("cuda" if cuda else "cpu")
    assert _FakeFAN.built == [{"device": backend.device, "flip_input": False}]


@needs_face_alignment
def test_face_alignment_offline_with_another_releases_file_names_is_refused(monkeypatch,
                                                                           tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    current = lm.fa_weight_files()
    stale = "2DFAN4-cd938726ad.zip" if current[0].endswith(".tar") else "2DFAN4-11f355bf06.pth.tar"
    for name in (stale, current[1]):
        (checkpoints / name).write_bytes(b"")
    monkeypatch.setattr(lm, "_reachable", lambda host, timeout=3.0: False)
    with pytest.raises(lm.BackendUnavailableError, match=f"{current[0]} not in {checkpoints}"):
        lm.FaceAlignmentBackend()


def test_window_count():
    assert n_windows(100, 30) == 100 // 15 - 1
    assert n_windows(29, 30) == 0
    with pytest.raises(ValueError, match="even"):
        n_windows(100, 31)


def test_track_from_frames_in_memory(astronaut):
    blank = np.zeros_like(astronaut)
    # frame_skip 2: sampled frames are originals 0, 2, ..., 38; k 10 -> refs 0, 10, 20
    frames = [(2 * s, blank if s == 5 else astronaut) for s in range(20)]
    track = detect_video_landmarks(frames, k=10, frame_skip=2, backend="dlib")
    assert list(track.ref_frame) == [0, 10, 20]
    assert list(track.detected) == [True, False, True]
    assert np.isnan(track.landmarks[1]).all() and not np.isnan(track.landmarks[0]).any()
    assert track.attrs["k"] == 10 and track.attrs["frame_skip"] == 2
    assert track.attrs["backend"] == "dlib" and track.attrs["n_frames"] == 39


def test_track_from_frame_folder_reads_reference_frames(tmp_path, astronaut):
    folder = tmp_path / "spNO.1" / "a" / "color"
    folder.mkdir(parents=True)
    small = cv2.resize(astronaut, (256, 256))
    for t in range(45):                                         # 45 frames, skip 3 -> 15 sampled
        cv2.imwrite(str(folder / f"{t}.jpg"), small if t != 15 else np.zeros_like(small))
    # refs every 9 frames: 4 windows
    track = detect_video_landmarks(folder, k=6, frame_skip=3, backend="dlib")
    assert list(track.ref_frame) == [0, 9, 18, 27]
    assert track.detected.all() and track.attrs["n_frames"] == 45
    assert track.face_box.shape == (4, 4) and track.landmarks.shape == (4, 68, 2)


def test_the_frame_rate_of_a_frame_folder_reaches_the_track(astronaut, tmp_path):
    """A frame folder has no rate of its own: the one given (``mepkg landmarks --fps``)
    must be the one recorded, not a default."""
    import cv2

    from mepkg.landmarks import detect_video_landmarks

    folder = tmp_path / "001_1"
    folder.mkdir()
    small = cv2.resize(astronaut, (256, 256))
    for i in range(4):
        cv2.imwrite(str(folder / f"001_1_{i:04d}.jpg"), small)
    track = detect_video_landmarks(folder, k=2, frame_skip=1, backend="dlib", fps=123.0)
    assert track.attrs["fps"] == 123.0
    assert track.attrs["n_frames"] == 4 and track.ref_frame.tolist() == [0, 1, 2]
