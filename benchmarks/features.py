"""Benchmark of the features stage: sampled frames per second and peak memory,
and side by side with the authors' extractor.

Renders one synthetic 640 x 640 face video (``mepkg.synth.render_video``) as
a 200 fps frame folder read with frame_skip 7 and k 30 (the SAMM-LV
settings), in a short and a 10x longer version, and runs landmarks +
features on each in a fresh process (one core: OpenCV single-threaded) so
that peak RSS is per run. Prints one line per video and a summary:

    python benchmarks/features.py                 # 150 and 1500 sampled frames
    python benchmarks/features.py --sampled 60    # quicker: 60 and 600

Side by side (``--authors``): the authors' release extractor
(feature_extraction.py of github.com/zizheng-guo/BoostingVRME, not part of
this repository: give the path of your copy) and mepkg on the same video
(--sampled frames, default 600), each in its own process on one core, whole
process timed (start-up, decoding, landmarks, features): sampled frames per
CPU-second of each, their ratio, and the Pearson correlation of the two
extractors' window features (all windows, channels and steps). The driver
loads the sampled frames as the release's load_images does (gray,
``cv2.imread(path, 0)``) and calls its ``feature_extraction_spotting``:

    python benchmarks/features.py --authors ~/BoostingVRME/feature_extraction.py --repeats 3

Only the sampled frames are rendered (at 200/7 fps, the same motion per
sampled step); the six frames between two sampled ones are hard links to the
previous sampled file, so the folder is a complete 200 fps video on disk
while costing one seventh of the rendering. The reader decodes sampled files
only, so the timing is that of a real 200 fps folder.

Targets: on one core at least 1.4x the authors' extractor's sampled frames per
CPU-second with feature correlation >= 0.9; peak RSS of the long video within
10% of the short one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FPS, FRAME_SKIP, K, SIZE = 200.0, 7, 30, 640


def build_video(out: Path, n_sampled: int, seed: int = 0) -> Path:
    """A 200 fps frame folder of n_sampled * 7 frames, rendered at the sampled rate."""
    from mepkg.synth import render_video

    sampled = out.with_name(out.name + "_sampled")
    if not out.exists():
        render_video(sampled, seconds=n_sampled * FRAME_SKIP / FPS, frame_size=SIZE,
                     fps=FPS / FRAME_SKIP, seed=seed)
        out.mkdir(parents=True)
        files = sorted(sampled.glob("*.jpg"), key=lambda p: int(p.stem))[:n_sampled]
        for s, src in enumerate(files):
            for j in range(FRAME_SKIP):
                os.link(src, out / f"{s * FRAME_SKIP + j}.jpg")
    return out


def run_one(folder: Path, out: Path) -> dict:
    """Landmarks + features of one video in this process; timings and peak RSS."""
    import logging

    from mepkg.features import FeatureConfig, extract_features
    from mepkg.h5io import write_features
    from mepkg.landmarks import detect_video_landmarks, get_backend

    logging.basicConfig(level=logging.WARNING)
    config = FeatureConfig(k=K, frame_skip=FRAME_SKIP)
    get_backend(config.backend)                      # model loading is not per-frame work
    t0 = time.perf_counter()
    track = detect_video_landmarks(folder, k=K, frame_skip=FRAME_SKIP, backend=config.backend,
                                   fps=FPS)
    t1, c1 = time.perf_counter(), time.process_time()
    fs = extract_features(folder, track, config, fps=FPS)
    t2, cpu = time.perf_counter(), time.process_time() - c1
    fs.attrs.update({"video_id": folder.name, "subject": "s01", "video": folder.name})
    write_features(out, fs)
    n_sampled = (fs.n_windows + 1) * (K // 2)
    return {"video": folder.name, "sampled_frames": n_sampled, "windows": fs.n_windows,
            "flagged": int((fs.quality != 0).sum()),
            "landmarks_s": t1 - t0, "features_s": t2 - t1,
            "features_fps": n_sampled / (t2 - t1),
            "features_cpu_fps": n_sampled / cpu,
            "overall_fps": n_sampled / (t2 - t0),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_authors(folder: Path, extractor: Path, out: Path) -> None:
    """The authors' extractor on ``folder`` in this process (a minimal driver): the sampled
    frames loaded gray as their load_images does, then feature_extraction_spotting."""
    import contextlib
    import importlib.util
    import io

    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    files = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))[::FRAME_SKIP]
    images = np.array([cv2.imread(str(f), 0) for f in files])            # T x H x W
    work = authors_workdir(out.parent)
    spec = importlib.util.spec_from_file_location("authors_feature_extraction", extractor)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.chdir(work)
    with contextlib.redirect_stdout(io.StringIO()):                      # its progress prints
        windows = module.feature_extraction_spotting("SAMMLV", [images], K)[0]
    np.save(out, np.array(windows, dtype=np.float32))                    # W x 36 x k


def authors_workdir(base: Path) -> Path:
    """Where the authors' extractor runs (``base/authors_cwd``): ``Utils/`` holds its dlib
    predictor (a link). Made by the parent, so that the timed process imports nothing of
    mepkg."""
    work = base / "authors_cwd"
    link = work / "Utils" / "shape_predictor_68_face_landmarks.dat"
    if not link.exists():
        from mepkg.landmarks import dlib_predictor_path

        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(dlib_predictor_path())
    return work


def run_mepkg(folder: Path, out: Path) -> None:
    """mepkg's features stage on ``folder`` (landmarks + features + file), as a job runs it."""
    import numpy as np

    from mepkg.features import FeatureConfig, run_features

    fs = run_features(folder, out.with_suffix(".h5"), FeatureConfig(k=K, frame_skip=FRAME_SKIP),
                      progress=False, fps=FPS)
    np.save(out, fs.features)


def side_by_side(folder: Path, extractor: Path, repeats: int) -> None:
    """Both extractors, whole process, one core each, alternating; CPU-seconds and correlation."""
    import numpy as np

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OPENCV_FOR_THREADS_NUM="1")
    runs = {"authors": ["--run-authors", str(extractor)], "mepkg": ["--run-mepkg"]}
    cpu = {name: [] for name in runs}
    wall = {name: [] for name in runs}
    outputs = {}
    authors_workdir(folder.parent)
    for _ in range(repeats):
        for name, flag in runs.items():
            out = folder.parent / f"{name}_features.npy"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, *flag, "--video", str(folder),
                            "--out", str(out)], env=env, check=True)
            wall[name].append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            outputs[name] = np.load(out)
    a, m = outputs["authors"], outputs["mepkg"]
    n_sampled = len(list(folder.glob("*.jpg"))) // FRAME_SKIP
    rates = {name: n_sampled / min(cpu[name]) for name in runs}
    for name in runs:
        print(f"{name:8s} whole process, one core: {rates[name]:6.1f} sampled frames per "
              f"CPU-second (best of {repeats}: {min(cpu[name]):.1f} CPU-s, wall "
              f"{min(wall[name]):.1f} s)")
    same = a.shape == m.shape
    corr = float(np.corrcoef(a.ravel(), m.ravel())[0, 1]) if same else float("nan")
    print(f"mepkg / authors: {rates['mepkg'] / rates['authors']:.2f}x per core (target >= 1.4); "
          f"window features {m.shape} vs {a.shape}: Pearson r = {corr:.3f} (target >= 0.9)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampled", type=int,
                        help="sampled frames: the short video (default 150), side by side 600")
    parser.add_argument("--factor", type=int, default=10, help="long video = factor x short")
    parser.add_argument("--workdir", help="keep videos here (default: a temporary folder)")
    parser.add_argument("--one", help=argparse.SUPPRESS)   # internal: run one video
    parser.add_argument("--render", help=argparse.SUPPRESS)   # internal: render one video
    parser.add_argument("--authors", type=Path,
                        help="the release's feature_extraction.py: compare side by side")
    parser.add_argument("--repeats", type=int, default=1, help="side-by-side runs (best)")
    parser.add_argument("--run-authors", type=Path, help=argparse.SUPPRESS)   # internal
    parser.add_argument("--run-mepkg", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_authors:
        run_authors(args.video, args.run_authors, args.out)
        return
    if args.run_mepkg:
        run_mepkg(args.video, args.out)
        return
    args.sampled = args.sampled or (600 if args.authors else 150)
    if args.one:
        print(json.dumps(run_one(Path(args.one), Path(args.one).with_suffix(".h5"))))
        return
    if args.render:
        build_video(Path(args.render), args.sampled)
        return

    # Rendering and every measured run get their own process: ru_maxrss survives fork/exec
    # on Linux, so this parent must stay small.
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        if args.authors:
            folder = work / f"video_{args.sampled}"
            subprocess.run([sys.executable, __file__, "--render", str(folder), "--sampled",
                            str(args.sampled)], env=env, check=True)
            side_by_side(folder, args.authors.resolve(), args.repeats)
            return
        long_n = args.sampled * args.factor
        long_dir = work / f"video_{long_n}"
        subprocess.run([sys.executable, __file__, "--render", str(long_dir), "--sampled",
                        str(long_n)], env=env, check=True)
        short_dir = work / f"video_{args.sampled}"
        if not short_dir.exists():   # the first part of the long video, hard-linked
            short_dir.mkdir(parents=True)
            for i in range(args.sampled * FRAME_SKIP):
                os.link(long_dir / f"{i}.jpg", short_dir / f"{i}.jpg")
        results = []
        for folder in (short_dir, long_dir):
            proc = subprocess.run([sys.executable, __file__, "--one", str(folder)], env=env,
                                  capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{r['sampled_frames']:6d} sampled frames ({r['windows']} windows, "
                  f"{r['flagged']} flagged): features {r['features_fps']:.1f} frames/s "
                  f"({r['features_cpu_fps']:.1f} per CPU-second), "
                  f"with landmark detection {r['overall_fps']:.1f} frames/s, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB")
        short, long = results
        print(f"summary: {long['features_fps']:.1f} sampled frames/s wall, "
              f"{long['features_cpu_fps']:.1f} per CPU-second; peak RSS long/short = "
              f"{long['peak_rss_mb'] / short['peak_rss_mb']:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
