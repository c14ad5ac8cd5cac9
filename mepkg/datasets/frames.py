"""Streaming frame reader for frame folders and video files.

``open_frames(path, frame_skip)`` yields ``(original_index, frame_bgr)`` for
original indices 0, frame_skip, 2 * frame_skip, ... < n_frames, holding one
frame at a time: memory does not grow with the length of the video. With
``gray=True`` frames are gray (H x W): an image folder's files are decoded
straight to gray (a JPEG's luma plane, as the authors' loader
``cv2.imread(path, 0)``; about half the decoding time), a video file's frames
are converted after decoding.

Frame folders: the frame index comes from the number at the end of each file
name. A folder numbered from 0 (CAS(ME)^3: ``0.jpg, 1.jpg, ...``) has index =
number; a folder numbered from 1 (SAMM-LV: ``006_1_0001.jpg, ...``) has index =
number - 1, matching the 1-based label sheets after their conversion to
0-based. A number missing inside the range is a missing frame; so is a file
that OpenCV cannot decode. Missing frames are filled with the previous
readable frame in hand (at the start of a folder: the next readable one),
counted in ``n_missing`` and warned about.

Video files (anything ``cv2.VideoCapture`` opens): every frame is grabbed,
only the sampled ones are decoded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mepkg.datasets.common import trailing_number
from mepkg.inputs import InputError
from mepkg.intervals import check_frame_skip

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FOLDER_FPS = 30.0   # frame folders carry no rate; CAS(ME)^3 is 30 fps
# Rates outside this range are accepted with a warning naming the video (docs/method.md §1.6).
PLAUSIBLE_FPS = (5.0, 1000.0)


def sampled_count(n_frames: int, frame_skip: int) -> int:
    """Number of sampled frames: ceil(n_frames / frame_skip)."""
    return -(-int(n_frames) // check_frame_skip(frame_skip))


def min_frames(k: int, frame_skip: int) -> int:
    """Original frames one window of ``k`` sampled frames needs: (k - 1) * frame_skip + 1."""
    return (int(k) - 1) * int(frame_skip) + 1


def check_long_enough(path, n_frames: int, k: int, frame_skip: int, fps: float | None = None,
                      ) -> None:
    """InputError naming ``path`` when it is too short for one window (:func:`min_frames`)."""
    need = min_frames(k, frame_skip)
    if n_frames < need:
        at = f" ({need / fps:.2f} s at {fps:g} fps)" if fps else ""
        raise InputError(f"{path}: {n_frames} frame(s), too short for one window of {k} sampled "
                         f"frames at frame_skip {frame_skip}: it needs at least {need} "
                         f"frames{at}")


@dataclass
class FolderListing:
    """The frame files of a folder by 0-based index (no image decoded)."""

    path: Path
    files: dict[int, str]   # index -> file name
    n_frames: int           # highest index + 1
    first_number: int       # number in the first file name (0 or 1 in practice)

    def index_of(self, number: int) -> int:
        """0-based frame index of the file numbered ``number``."""
        return number if self.first_number == 0 else number - 1

    @property
    def n_gaps(self) -> int:
        """Indices inside [0, n_frames) without a file."""
        return self.n_frames - len(self.files)


def list_frame_folder(path: str | Path) -> FolderListing:
    """List a frame folder; ValueError when it holds no numbered image."""
    path = Path(path)
    numbered: dict[int, str] = {}
    unnumbered = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            number = trailing_number(entry.name)
            if number is None:
                unnumbered += 1
            elif number in numbered:
                raise ValueError(f"{path}: frame number {number} appears twice "
                                 f"({numbered[number]}, {entry.name}); keep one of them")
            else:
                numbered[number] = entry.name
    if not numbered:
        raise ValueError(f"{path}: no numbered frame images ({', '.join(IMAGE_EXTENSIONS)}); "
                         f"an empty frame folder cannot be read")
    if unnumbered:
        log.warning("%s: %d image file(s) without a frame number ignored", path, unnumbered)
    first = min(numbered)
    base = 0 if first == 0 else 1
    if first > 1:
        log.warning("%s: first frame number is %d; frames 1-%d count as missing",
                    path, first, first - 1)
    files = {number - base: name for number, name in numbered.items()}
    return FolderListing(path=path, files=files, n_frames=max(files) + 1, first_number=first)


def video_properties(path: str | Path) -> tuple[int, float]:
    """``(n_frames, fps)`` of a video file; counts frames when the container does not say.

    ``fps`` is the container's rate, 0.0 when the file records none: an AVI
    whose stream header has rate 0, or a raw stream (MJPEG, H.264 without a
    container), whose frame count is unknown and whose "rate" is only the
    demuxer's default of 25 (docs/method.md §1.6: frame rates are never guessed).
    """
    capture = _open_capture(path)
    try:
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        n_frames = int(count) if 0 < count < 2 ** 62 else 0
        if n_frames <= 0:
            fps = 0.0   # no container index: the reported rate is a default, not the file's
            while capture.grab():
                n_frames += 1
    finally:
        capture.release()
    if n_frames <= 0:
        raise InputError(f"{path}: video has no frames; is the file complete?")
    header_rate = _avi_header_rate(path)
    if header_rate is not None:
        fps = header_rate
    if not fps > 0:   # never guessed: the caller asks for one (--fps)
        fps = 0.0
    return n_frames, fps


def _avi_header_rate(path: str | Path) -> float | None:
    """The rate (dwRate / dwScale) an AVI file's video stream header records: 0.0 where it
    records none (OpenCV then reports 25), None when the file is not an AVI."""
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return None
    at = head.find(b"strh")
    while 0 <= at <= len(head) - 36:
        body = head[at + 8:at + 36]          # fccType, fccHandler, flags, ..., dwScale, dwRate
        if body[:4] == b"vids":
            scale = int.from_bytes(body[20:24], "little")
            rate = int.from_bytes(body[24:28], "little")
            return rate / scale if scale and rate else 0.0
        at = head.find(b"strh", at + 4)
    return None


def check_rate(path: str | Path, fps: float) -> None:
    """Warn, naming the video, when its rate is possible but implausible (PLAUSIBLE_FPS)."""
    low, high = PLAUSIBLE_FPS
    if fps and not low <= fps <= high:
        log.warning("%s: a frame rate of %g fps is unusual for a face video (expected %g-%g); "
                    "check it (the rate sets every time in seconds and the sampled rate)",
                    path, fps, low, high)


def _open_capture(path: str | Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise ValueError(f"{path}: OpenCV cannot open this video file; check that it is "
                         f"complete and in a format OpenCV reads (e.g. mp4, avi)")
    return capture


class FrameSource:
    """Iterable of ``(original_index, frame uint8)`` over the sampled frames: BGR
    H x W x 3, or H x W with ``gray``.

    Attributes: ``path``, ``n_frames`` (original frames), ``fps``,
    ``frame_skip``, ``gray``, ``n_missing`` (frames filled so far in the current
    or last pass). ``len()`` is the number of sampled frames.
    """

    def __init__(self, path: Path, n_frames: int, fps: float, frame_skip: int,
                 gray: bool = False):
        self.path = path
        self.n_frames = n_frames
        self.fps = fps
        self.frame_skip = frame_skip
        self.gray = gray
        self.n_missing = 0
        sampled_count(n_frames, frame_skip)   # validates frame_skip

    def __len__(self) -> int:
        return sampled_count(self.n_frames, self.frame_skip)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, n_frames={self.n_frames}, "
                f"fps={self.fps}, frame_skip={self.frame_skip})")


class FolderFrames(FrameSource):
    """Frames of an image folder; only the sampled files are decoded."""

    def __init__(self, path: Path, frame_skip: int = 1, fps: float | None = None,
                 gray: bool = False):
        self.listing = list_frame_folder(path)
        super().__init__(path, self.listing.n_frames,
                         float(fps) if fps else DEFAULT_FOLDER_FPS, frame_skip, gray)
        if fps:
            check_rate(path, self.fps)

    def decode(self, index: int) -> np.ndarray | None:
        """The frame at ``index``, or None (logged at debug level) when missing or unreadable."""
        name = self.listing.files.get(index)
        if name is None:
            log.debug("%s: frame %d has no file; filled", self.path, index)
            return None
        frame = cv2.imread(str(self.path / name),
                           cv2.IMREAD_GRAYSCALE if self.gray else cv2.IMREAD_COLOR)
        if frame is None:
            log.debug("%s: cannot decode %s; filled", self.path, name)
        return frame

    def next_readable(self, index: int) -> np.ndarray:
        """The first readable frame after ``index``; ValueError when there is none."""
        for later in range(index + 1, self.n_frames):
            frame = self.decode(later)
            if frame is not None:
                return frame
        raise InputError(f"{self.path}: no readable frame at or after frame {index}")

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        self.n_missing = 0
        previous, first_missing, size = None, None, None
        for index in range(0, self.n_frames, self.frame_skip):
            frame = self.decode(index)
            if frame is None:
                self.n_missing += 1
                first_missing = index if first_missing is None else first_missing
                frame = (previous if previous is not None else self.next_readable(index)).copy()
            elif size is None:
                size = (frame.shape, self.listing.files[index])
            elif frame.shape != size[0]:
                raise InputError(f"{self.path}: frame {self.listing.files[index]} is "
                                 f"{_size(frame.shape)}, {size[1]} is {_size(size[0])}; the "
                                 f"frames of one video must have one size: resize or remove "
                                 f"the odd ones")
            previous = frame
            yield index, frame
        _warn_filled(self, first_missing, "missing or unreadable")


def _size(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


def _warn_filled(source: FrameSource, first: int | None, what: str) -> None:
    """One summary line per pass over a video, not one per filled frame."""
    if source.n_missing:
        log.warning("%s: %d of %d sampled frames %s, each filled with the previous readable "
                    "frame (first: frame %d)", source.path, source.n_missing, len(source),
                    what, first)


# The stream of a video file may end a few frames before the count its header
# records (encoders round it); more than this is a truncated file.
STREAM_END_SLACK = 5


class VideoFrames(FrameSource):
    """Frames of a video file: every frame grabbed, sampled ones retrieved.

    A variable frame rate (frame timestamps drifting more than one frame
    interval from index / fps) is refused (docs/method.md §1.6), as is a stream
    ending more than ``max(STREAM_END_SLACK, 1%)`` frames before its header's count.
    """

    def __init__(self, path: Path, frame_skip: int = 1, fps: float | None = None,
                 gray: bool = False):
        n_frames, file_fps = video_properties(path)
        if not (fps or file_fps):
            raise InputError(f"{path}: the video file records no frame rate (OpenCV would "
                             f"assume 25 fps); pass its rate with --fps, or re-encode it with "
                             f"one (e.g. ffmpeg -r RATE -i IN OUT.mp4)")
        self.file_fps = file_fps
        super().__init__(path, n_frames, float(fps) if fps else file_fps, frame_skip, gray)
        if fps and file_fps and abs(fps - file_fps) > 0.01 * file_fps:
            log.warning("%s: read at the %g fps given, not at the %g fps the file records; "
                        "every time in seconds follows the rate given", path, fps, file_fps)
        check_rate(path, self.fps)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        self.n_missing = 0
        previous, ended, first_missing = None, False, None
        interval = 1000.0 / self.file_fps if self.file_fps else 0.0   # ms per frame
        start = None   # timestamp of frame 0 (ms)
        capture = _open_capture(self.path)
        try:
            for index in range(self.n_frames):
                grabbed = capture.grab()
                if grabbed and interval:
                    start, interval = self._check_time(capture, index, start, interval)
                if not grabbed and not ended:
                    ended = True
                    short = self.n_frames - index
                    if short > max(STREAM_END_SLACK, self.n_frames // 100):
                        raise InputError(f"{self.path}: the stream ends at frame {index} of "
                                         f"the {self.n_frames} its header records; the file is "
                                         f"truncated (an incomplete copy?): copy it again or "
                                         f"re-encode it")
                    log.warning("%s: the stream ends at frame %d of %d; the last %d are "
                                "filled with the last decoded frame", self.path, index,
                                self.n_frames, short)
                if index % self.frame_skip:
                    continue
                frame = capture.retrieve()[1] if grabbed else None
                if frame is not None and self.gray and frame.ndim == 3:
                    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                if frame is None:
                    self.n_missing += 1
                    first_missing = index if first_missing is None else first_missing
                    if not ended:
                        log.debug("%s: cannot decode frame %d; filled", self.path, index)
                    if previous is None:
                        raise InputError(f"{self.path}: cannot decode the first sampled "
                                         f"frame {index}; the file is damaged or its codec "
                                         f"is not supported: re-encode it")
                    frame = previous.copy()
                previous = frame
                yield index, frame
        finally:
            capture.release()
        _warn_filled(self, first_missing, "could not be decoded")

    def _check_time(self, capture, index: int, start, interval: float):
        """Refuse a variable frame rate: frame ``index``'s timestamp must be index/fps
        (from frame 0's, within one frame interval). Returns (start, interval); interval 0
        stops the checks (a stream without timestamps)."""
        t = capture.get(cv2.CAP_PROP_POS_MSEC)
        if start is None:
            return t, interval
        if t <= start:
            return start, 0.0
        expected = index * interval
        if abs(t - start - expected) > interval:
            raise InputError(f"{self.path}: variable frame rate: frame {index} is at "
                             f"{(t - start) / 1000:.3f} s, not at {expected / 1000:.3f} s as the "
                             f"{self.file_fps:g} fps of its header say; convert it to a constant "
                             f"rate first (e.g. ffmpeg -i IN -fps_mode cfr -r RATE OUT.mp4)")
        return start, interval


def open_frames(path: str | Path, frame_skip: int = 1, fps: float | None = None,
                gray: bool = False) -> FrameSource:
    """Open a frame folder or a video file for streaming (see the module docstring).

    ``fps`` overrides the frame rate (a folder has none: default 30); ``gray``:
    gray frames (H x W), decoded straight to gray where the files allow.
    """
    path = Path(path)
    if path.is_dir():
        return FolderFrames(path, frame_skip, fps, gray)
    if path.is_file():
        return VideoFrames(path, frame_skip, fps, gray)
    raise FileNotFoundError(f"no frame folder or video file at {path}")


def read_frame(path: str | Path, index: int) -> np.ndarray:
    """One frame by original 0-based index (random access, for figures and plots).

    In a folder, a missing or unreadable frame is replaced by the nearest
    readable earlier one (else the next readable one), like ``open_frames``.
    """
    path = Path(path)
    if path.is_dir():
        source = FolderFrames(path)
        _check_index(path, index, source.n_frames)
        for earlier in range(index, -1, -1):
            frame = source.decode(earlier)
            if frame is not None:
                return frame
        return source.next_readable(index)
    if not path.is_file():
        raise FileNotFoundError(f"no frame folder or video file at {path}")
    n_frames, _ = video_properties(path)
    _check_index(path, index, n_frames)
    capture = _open_capture(path)
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise ValueError(f"{path}: cannot decode frame {index}")
    return frame


def _check_index(path: Path, index: int, n_frames: int) -> None:
    if not 0 <= index < n_frames:
        raise ValueError(f"{path}: frame {index} out of range 0..{n_frames - 1}")
