"""Writing a planned benchmark to disk in one of the datasets' layouts.

sammlv   out/SAMM_longvideos/<sub>_<n>/<sub>_<n>_<frame:04d>.jpg, frames numbered
         from 1 (file 0001 is 0-based frame 0), + SAMM_LongVideos_V3_Release.xlsx
         and SAMM_Micro_FACS_Codes_v2.xlsx
casme3   out/<subject>/<video>/color/<n>.jpg, n 0-based,
         + cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx (MEs only)
generic  out/videos/<subject>/<video>.avi (MJPG) + out/labels.csv (1-based)

Every layout also gets ``out/truth.csv`` (LABEL_COLUMNS, 0-based, micro and
macro events) and, written last, ``out/.complete``. The benchmark is rendered
into a hidden temporary folder beside ``out`` and renamed onto it at the end,
so an interrupted run never looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from tqdm import tqdm

from mepkg import __version__
from mepkg.atomic import write_csv
from mepkg.constants import (CASME3_COLOR_DIR, GENERIC_VIDEOS_DIR, SAMM_FRAMES_DIR,
                             TRUTH_FILE)
from mepkg.synth import sheets
from mepkg.synth.faces import FaceTemplate, render_identity
from mepkg.synth.hazards import (CODECS, HAZARD_FILE, HazardConfig, HazardRenderer,
                                 check_codec, hazard_table, plan_hazards)
from mepkg.synth.motion import VideoRenderer
from mepkg.synth.plan import BenchmarkPlan, VideoPlan, plan_benchmark, plan_video

log = logging.getLogger(__name__)

JPEG_QUALITY = 88        # like camera-side JPEG of the real datasets
COMPLETE = ".complete"   # marker written last


def frame_dir(root: Path, layout: str, video: VideoPlan, codec: str = "") -> Path:
    """Folder of a video's frames (sammlv / casme3) or its video file (generic:
    .avi, or .mp4 with a hazards ``codec``)."""
    if layout == "sammlv":
        return root / SAMM_FRAMES_DIR / video.video
    if layout == "casme3":
        return root / video.subject / video.video / CASME3_COLOR_DIR
    suffix = ".mp4" if codec else ".avi"
    return root / GENERIC_VIDEOS_DIR / video.subject / f"{video.video}{suffix}"


def frame_name(layout: str, video: VideoPlan, t: int) -> str:
    """File name of 0-based frame ``t`` (SAMM numbers from 1, CAS(ME)^3 from 0)."""
    if layout == "sammlv":
        return f"{video.video}_{t + 1:04d}.jpg"
    return f"{t}.jpg"


def write_frames(frames: Iterable[np.ndarray], path: Path, layout: str, video: VideoPlan, size: int,
                 bar: tqdm | None = None, quality: int = JPEG_QUALITY, codec: str = "") -> None:
    """Write rendered frames as JPEGs (frame layouts) or one video (generic: MJPG .avi, or
    a hazards ``codec`` in .mp4); ``quality``: JPEG / encoder quality."""
    if layout == "generic" or path.suffix in (".avi", ".mp4"):
        path.parent.mkdir(parents=True, exist_ok=True)
        # a temporary name with the same suffix: OpenCV picks the container by extension
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
        fourcc = CODECS[codec] if codec else "MJPG"
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), video.fps, (size, size))
        try:
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write a {fourcc} video at {tmp}")
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
            for frame in frames:
                writer.write(frame)
                if bar is not None:
                    bar.update()
            writer.release()
            os.replace(tmp, path)
        finally:
            writer.release()
            tmp.unlink(missing_ok=True)
        return
    path.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    for t, frame in enumerate(frames):
        cv2.imwrite(str(path / frame_name(layout, video, t)), frame, params)
        if bar is not None:
            bar.update()


def _render_video(root: Path, layout: str, video: VideoPlan, face: FaceTemplate, size: int,
                  hazards: HazardConfig, bar: tqdm | None = None) -> list[dict]:
    """Render and write one video, its hazards applied; returns its hazards.csv rows."""
    frames = iter(VideoRenderer(face, video))
    rows = []
    if hazards.enabled:
        renderer = HazardRenderer(face.landmarks, size, video.fps, hazards,
                                  plan_hazards(video.n_frames, video.fps, hazards, video.seed),
                                  video.seed)
        frames, rows = renderer.apply(frames), renderer.table(video.subject, video.video)
    write_frames(frames, frame_dir(root, layout, video, hazards.codec), layout, video, size, bar,
                 quality=hazards.quality, codec=hazards.codec)
    return rows


def _render_one(args) -> list[dict]:
    """Render one video of a plan (a process-pool task)."""
    root, layout, video, ident, size, hazards = args
    return _render_video(Path(root), layout, video, render_identity(ident, size), size, hazards)


def _marker(plan: BenchmarkPlan, hazards: HazardConfig) -> dict:
    marker = dict(size=plan.size, layout=plan.layout, seed=plan.seed, mepkg=__version__,
                  videos=len(plan.videos), frames=int(sum(v.n_frames for v in plan.videos)))
    if hazards.enabled:
        marker["hazards"] = hazards.to_dict()
    return marker


def generate_benchmark(out: str | os.PathLike, size: str = "tiny", layout: str = "sammlv",
                       seed: int = 0, progress: bool = False, workers: int = 1,
                       hazards: HazardConfig | dict | None = None) -> Path:
    """Render a synthetic benchmark into ``out`` (see the module docstring for layouts).

    Deterministic: the same ``(size, layout, seed)`` gives byte-identical
    sheets and truth.csv and identical frames. ``workers`` > 1 renders videos
    in parallel processes. If ``out`` already holds a complete benchmark with
    the same parameters it is kept; any other non-empty ``out`` is an error.
    ``hazards`` (:class:`mepkg.synth.hazards.HazardConfig`, all off by
    default) adds real footage's hazards and writes ``hazards.csv``.
    """
    out = Path(out)
    hazards = (hazards if isinstance(hazards, HazardConfig)
               else HazardConfig.from_dict(hazards))
    if hazards.codec and layout != "generic":
        raise ValueError(f"synthetic hazards codec={hazards.codec!r} writes video files: it "
                         f"needs layout generic, not {layout} (frame layouts take quality)")
    check_codec(hazards.codec)
    plan = plan_benchmark(size, layout, seed)
    if out.exists() and any(out.iterdir()):
        marker = out / COMPLETE
        if marker.exists() and json.loads(marker.read_text()) == _marker(plan, hazards):
            log.info("%s already holds this benchmark; kept", out)
            return out
        raise ValueError(f"{out} exists and is not this synthetic benchmark "
                         f"({size}, {layout}, seed {seed}); remove it or choose another folder")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        n_frames = sum(v.n_frames for v in plan.videos)
        log.info("rendering %s %s benchmark (seed %d): %d videos, %d frames at %g fps, %d px",
                 size, layout, seed, len(plan.videos), n_frames, plan.fps, plan.frame_size)
        tasks = [(str(tmp), layout, v, plan.identities[v.subject], plan.frame_size, hazards)
                 for v in plan.videos]
        rows: list[dict] = []
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for video_rows in tqdm(pool.map(_render_one, tasks), total=len(tasks),
                                       unit="video", disable=not progress, desc="synth"):
                    rows += video_rows
        else:
            with tqdm(total=n_frames, unit="frame", disable=not progress, desc="synth") as bar:
                faces = {s: render_identity(i, plan.frame_size) for s, i in plan.identities.items()}
                for v in plan.videos:
                    rows += _render_video(tmp, layout, v, faces[v.subject], plan.frame_size,
                                          hazards, bar)
        if layout == "sammlv":
            sheets.write_samm_sheets(plan, tmp)
        elif layout == "casme3":
            sheets.write_casme3_sheet(plan, tmp)
        else:
            sheets.write_generic_labels(plan, tmp)
        write_csv(plan.truth(), tmp / TRUTH_FILE)
        if hazards.enabled:
            write_csv(hazard_table(rows), tmp / HAZARD_FILE)
            log.info("hazards %s: %d events (%d stretches without a face) -> %s",
                     hazards.to_dict(), sum(r["hazard"] != "no_face" for r in rows),
                     sum(r["hazard"] == "no_face" for r in rows), HAZARD_FILE)
        (tmp / COMPLETE).write_text(json.dumps(_marker(plan, hazards), sort_keys=True) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("wrote %s", out)
    return out


def render_video(out: str | os.PathLike, seconds: float = 10.0, frame_size: int = 640,
                 fps: float = 30.0, seed: int = 0, progress: bool = False) -> Path:
    """Render ONE synthetic video, e.g. for benchmarks: ``out`` ending in .avi -> MJPG
    file, otherwise a folder of 0-based ``<n>.jpg`` frames. Returns ``out``.

    The events are those of ``plan_video(seconds, fps, seed)``.
    """
    out = Path(out)
    ident, video = plan_video(seconds, fps, seed)
    face = render_identity(ident, frame_size)
    layout = "generic" if out.suffix == ".avi" else "casme3"
    with tqdm(total=video.n_frames, unit="frame", disable=not progress, desc="video") as bar:
        write_frames(iter(VideoRenderer(face, video)), out, layout, video, frame_size, bar)
    return out
