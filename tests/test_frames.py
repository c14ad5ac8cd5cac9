"""Streaming frame reader: frame folders (missing/corrupt frames) and video files."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from mepkg.datasets.frames import list_frame_folder, open_frames, read_frame, sampled_count

SIZE = (24, 32)   # rows, cols


def frame_of(value: int) -> np.ndarray:
    """A flat BGR frame whose every pixel is ``value`` (JPEG keeps flat images nearly exact)."""
    return np.full((*SIZE, 3), value, np.uint8)


def level(frame: np.ndarray) -> int:
    """The value a ``frame_of`` frame was written with (rounded mean)."""
    return int(round(float(frame.mean())))


@pytest.fixture
def folder(tmp_path):
    """Frames 0..9 of value 20*i as ``<i>.jpg`` (0-based, like CAS(ME)^3);
    frame 3 missing, frame 6 a corrupt file."""
    path = tmp_path / "color"
    path.mkdir()
    for i in range(10):
        if i == 3:
            continue
        if i == 6:
            (path / "6.jpg").write_bytes(b"not a jpeg")
            continue
        cv2.imwrite(str(path / f"{i}.jpg"), frame_of(20 * i))
    return path


def test_sampled_count():
    assert sampled_count(10, 1) == 10
    assert sampled_count(10, 3) == 4
    assert sampled_count(14, 7) == 2
    assert sampled_count(15, 7) == 3
    with pytest.raises(ValueError):
        sampled_count(10, 0)


def test_folder_listing_counts_gaps(folder):
    listing = list_frame_folder(folder)
    assert listing.n_frames == 10
    assert listing.n_gaps == 1            # frame 3; the corrupt file exists
    assert listing.files[5] == "5.jpg"


def test_folder_fills_missing_and_corrupt_frames(folder, caplog):
    source = open_frames(folder)
    assert (source.n_frames, source.fps, len(source)) == (10, 30.0, 10)
    with caplog.at_level(logging.WARNING):
        frames = list(source)
    assert [i for i, _ in frames] == list(range(10))
    levels = [level(f) for _, f in frames]
    # frame 3 and frame 6 are filled with the previous readable frame
    assert levels == [0, 20, 40, 40, 80, 100, 100, 140, 160, 180]
    assert source.n_missing == 2
    assert all(f.dtype == np.uint8 and f.shape == (*SIZE, 3) for _, f in frames)
    # one summary line for the pass, not one per frame (per-frame detail at debug level)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{folder}: 2 of 10 sampled frames missing or unreadable, each filled "
                        f"with the previous readable frame (first: frame 3)"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="mepkg.datasets.frames"):
        list(source)
    assert "frame 3 has no file" in caplog.text and "6.jpg" in caplog.text


def test_folder_frame_skip_decodes_only_sampled(folder):
    source = open_frames(folder, frame_skip=3, fps=200)
    frames = list(source)
    assert [i for i, _ in frames] == [0, 3, 6, 9]
    assert [level(f) for _, f in frames] == [0, 0, 0, 180]
    assert source.n_missing == 2 and source.fps == 200.0 and len(source) == 4


def test_missing_first_frame_is_filled_forward(tmp_path):
    path = tmp_path / "clip"
    path.mkdir()
    (path / "clip_0001.jpg").write_bytes(b"broken")      # 1-based names, like SAMM-LV
    for number in (2, 3):
        cv2.imwrite(str(path / f"clip_{number:04d}.jpg"), frame_of(50 * number))
    source = open_frames(path)
    assert source.n_frames == 3
    assert [(i, level(f)) for i, f in source] == [(0, 100), (1, 100), (2, 150)]
    assert source.n_missing == 1


def test_read_frame_folder(folder):
    assert level(read_frame(folder, 4)) == 80
    assert level(read_frame(folder, 3)) == 40      # missing: the previous readable frame
    with pytest.raises(ValueError, match="out of range"):
        read_frame(folder, 10)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        open_frames(tmp_path)


def write_video(path, n_frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0,
                             (SIZE[1], SIZE[0]))
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(frame_of(10 * i))
    writer.release()


def test_video_file_sampling(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, 12)
    source = open_frames(path, frame_skip=5)
    assert (source.n_frames, source.fps, len(source)) == (12, 25.0, 3)
    frames = list(source)
    assert [i for i, _ in frames] == [0, 5, 10]
    assert [level(f) for _, f in frames] == pytest.approx([0, 50, 100], abs=2)
    assert source.n_missing == 0
    assert level(read_frame(path, 7)) == pytest.approx(70, abs=2)


def test_unreadable_video_is_an_error(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="broken.mp4"):
        open_frames(path)
    with pytest.raises(FileNotFoundError):
        open_frames(tmp_path / "absent.avi")


def test_folder_decodes_only_sampled_files(folder, monkeypatch):
    decoded = []
    real_imread = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda name, flags: decoded.append(name) or
                        real_imread(name, flags))
    list(open_frames(folder, frame_skip=3))
    # sampled 0, 3, 6, 9: 3 has no file, so three decodes and none of frames 1, 2, 4, ...
    assert sorted(name.rsplit("/", 1)[1] for name in decoded) == ["0.jpg", "6.jpg", "9.jpg"]


def test_gray_folder_frames_are_the_files_decoded_straight_to_gray(tmp_path):
    """gray=True: a JPEG's luma plane (cv2.imread(path, 0), the authors' loader), filled
    frames included; colour and gray readers agree to rounding."""
    path = tmp_path / "clip"
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in (0, 1, 3):   # frame 2 missing
        cv2.imwrite(str(path / f"{i}.jpg"), rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8))
    gray = list(open_frames(path, gray=True))
    colour = list(open_frames(path))
    assert [i for i, _ in gray] == [0, 1, 2, 3]
    for (i, g), (_, c) in zip(gray, colour):
        assert g.shape == SIZE and g.dtype == np.uint8
        file = path / f"{i if i != 2 else 1}.jpg"                  # 2 is filled from 1
        assert np.array_equal(g, cv2.imread(str(file), cv2.IMREAD_GRAYSCALE))
        assert np.abs(g.astype(int) - cv2.cvtColor(c, cv2.COLOR_BGR2GRAY)).mean() < 1.0


def test_gray_video_frames_are_the_decoded_frames_converted(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, 6)
    gray = list(open_frames(path, frame_skip=2, gray=True))
    colour = list(open_frames(path, frame_skip=2))
    assert [i for i, _ in gray] == [0, 2, 4]
    for (_, g), (_, c) in zip(gray, colour):
        assert g.shape == SIZE
        assert np.array_equal(g, cv2.cvtColor(c, cv2.COLOR_BGR2GRAY))
