"""Apply a trained model to a new video: ``mepkg spot``.

Reads   a video file or frame folder, and a *packaged* model file: the
        weights of ``mepkg train-fold --subject all`` (the workflow's
        ``train_all_subjects`` rule) plus the decoding priors and k' added by
        :func:`mepkg.package.package_model` (the workflow's ``package_model``
        rule, or ``mepkg package-model``).
Writes  <out>/intervals.csv  one row per spotted ME: MEGC columns (subject,
                             video, onset, offset, emotion; original 0-based
                             frames) + apex, score, vote and times in seconds
        <out>/timeline.png   score curve, intervals coloured by emotion and a
                             face thumbnail at each apex

The video goes through exactly the workflow's stages (landmarks, ROI flow
features, model, prior-guided decoding), with the feature settings the model
file records (:func:`mepkg.package.model_feature_config`) but frame_skip,
which is derived from the video's frame rate so that its sampled rate matches the training data's: a model
trained on 200 fps SAMM-LV with frame_skip 7 (28.6 sampled frames/s) reads a
30 fps video with frame_skip 1.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pandas as pd

from mepkg.atomic import locked_folder, write_csv
from mepkg.decode import DecodePriors, decode_videos
from mepkg.intervals import apply_veto
from mepkg.package import check_model_settings, model_feature_config
from mepkg.train import TrainConfig
from mepkg.quality import QualityPolicy, analysed_frames, flag_counts, usable_share

log = logging.getLogger(__name__)

SPOT_COLUMNS = ["subject", "video", "onset", "offset", "emotion", "apex", "score", "vote",
                "onset_s", "apex_s", "offset_s"]


def spot_frame_skip(video_fps: float, train_fps: float, train_frame_skip: int) -> int:
    """frame_skip that brings ``video_fps`` to the training data's sampled rate."""
    if video_fps <= 0 or train_fps <= 0:
        raise ValueError(f"frame rates must be positive (video {video_fps}, model {train_fps}); "
                         f"pass --fps for a frame folder")
    return max(1, round(video_fps * train_frame_skip / train_fps))


def _quality_report(video: Path, model, meta: dict, quality) -> QualityPolicy:
    """Log what share of ``video`` could be analysed (and a synthetic-trained model);
    returns the model's quality policy (docs/method.md §2.10)."""
    trained_on = meta.get("trained_on") or {}
    if trained_on.get("synthetic"):
        log.warning("%s was trained on synthetic faces (%s), not real people: treat its "
                    "detections on real footage as unvalidated", model,
                    trained_on.get("run") or trained_on.get("dataset", "synthetic"))
    policy = QualityPolicy.from_dict(trained_on.get("quality_policy"))
    share = usable_share(quality, policy)
    unusable = {name: n for name, n in flag_counts(quality).items()
                if n and name in policy.unusable}
    log.info("%s: %.0f%% analysed (%d of %d windows usable%s)", video.name, 100 * share,
             round(share * len(quality)), len(quality),
             "; not analysed: " + ", ".join(f"{n} {name}" for name, n in unusable.items())
             if unusable else "")
    if share < policy.warn_below:
        log.warning("%s: only %.0f%% of the video could be analysed (no usable face elsewhere); "
                    "no interval is reported in the rest (shaded in the timeline)",
                    video.name, 100 * share)
    return policy


# ---------------------------------------------------------------- spotting
def spot_video(video: str | os.PathLike, model: str | os.PathLike,
               out_dir: str | os.PathLike = "spot_out", fps: float | None = None,
               device: str = TrainConfig.device, progress: bool = False) -> pd.DataFrame:
    """Spot and recognise the micro-expressions of one video; returns the intervals.

    ``out_dir`` is held for the run (:func:`mepkg.atomic.locked_folder`): a
    second ``spot`` into it while this one runs fails at once, naming it.
    """
    from mepkg.model import load_model
    from mepkg.train import resolve_device

    video, out_dir = Path(video), Path(out_dir)
    if video.is_dir() and not fps:
        raise ValueError(f"{video} is a frame folder, which records no frame rate; pass it "
                         f"with --fps")
    if not video.exists():
        raise FileNotFoundError(f"{video}: no such video file or frame folder")
    t0 = time.perf_counter()
    net, meta = load_model(model, device=resolve_device(device))
    check_model_settings(meta, model)
    if "decode" not in meta:
        raise ValueError(f"{model}: model file carries no decoding priors; package it with "
                         f"`mepkg package-model --model {model} --labels labels.csv --out M.pt` "
                         f"(the workflow's package_model rule writes results/<run>/model_all.pt)")
    priors = DecodePriors.of(meta["decode"]["priors"], source=str(model))
    k_p = int(meta["decode"]["k_prime"])

    with locked_folder(out_dir):   # a second spot into the same --out fails, naming it
        return _spot(video, model, net, meta, priors, k_p, out_dir, fps, progress, t0)


def _spot(video: Path, model, net, meta: dict, priors: DecodePriors, k_p: int, out_dir: Path,
          fps: float | None, progress: bool, t0: float) -> pd.DataFrame:
    from dataclasses import replace

    from mepkg.datasets.frames import check_long_enough, open_frames
    from mepkg.features import extract_features
    from mepkg.h5io import VideoScores
    from mepkg.landmarks import detect_video_landmarks
    from mepkg.train import predict_video

    k, train_skip = int(meta["k"]), int(meta["frame_skip"])
    trained_with = model_feature_config(meta, model)
    train_fps = float(meta["fps"])
    probe = open_frames(video, frame_skip=1, fps=fps)
    video_fps = float(fps or probe.fps)
    skip = spot_frame_skip(video_fps, train_fps, train_skip)
    check_long_enough(video, probe.n_frames, k, skip, video_fps)
    sampled, trained = video_fps / skip, train_fps / train_skip
    if not 0.5 <= sampled / trained <= 2.0:
        log.warning("%s: at %g fps it is sampled at %.1f frames/s (frame_skip %d), while the "
                    "model was trained at %.1f (%g fps / %d): a factor %.1f off, which the "
                    "windows and the decoding priors do not allow for; check --fps or use a "
                    "video of %g fps or more", video, video_fps, sampled, skip, trained,
                    train_fps, train_skip, max(sampled, trained) / min(sampled, trained),
                    trained / 2)
    log.info("%s: %d frames at %.1f fps -> frame_skip %d (model: %.1f fps, frame_skip %d)",
             video, probe.n_frames, video_fps, skip, train_fps, train_skip)

    config = replace(trained_with, frame_skip=skip)
    track = detect_video_landmarks(video, k=k, frame_skip=skip, backend=config.backend,
                                   progress=progress, fps=video_fps)
    features = extract_features(video, track, config, progress=progress, fps=video_fps)
    spot, logits = predict_video(net, features.features)
    from mepkg.datasets import identify_video

    subject, name, vid = identify_video(video)
    scores = VideoScores(video_id=vid, subject=subject or vid, video=name, spot=spot,
                         logits=logits, frame_skip=skip, k=k, fps=video_fps,
                         n_frames=probe.n_frames, quality=features.quality)
    policy = _quality_report(video, model, meta, features.quality)
    intervals = decode_videos([scores], priors, k_p, policy)
    intervals = apply_veto(intervals).drop(columns="vetoed")
    for col in ("onset", "apex", "offset"):
        intervals[f"{col}_s"] = intervals[col] / video_fps
    intervals = intervals[SPOT_COLUMNS]

    write_csv(intervals, out_dir / "intervals.csv")
    from mepkg.plots import plot_spot_timeline

    plot_spot_timeline(video, scores, intervals, features.crop_box, k_p, priors,
                       out_dir / "timeline.png", analysed=analysed_frames(scores, policy))
    counts = intervals["emotion"].value_counts().to_dict()
    log.info("%s: %d micro-expressions %s in %.1f s of video; %s, %s (%.1f s)",
             video.name, len(intervals), counts, probe.n_frames / video_fps,
             out_dir / "intervals.csv", out_dir / "timeline.png", time.perf_counter() - t0)
    return intervals
