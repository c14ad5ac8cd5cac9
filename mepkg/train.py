"""One leave-one-subject-out fold: fit the slow-fast Mamba, save it, predict curves (docs/method.md §5).

Reads   features/<video_id>.h5 (every video, or a given list) and labels.csv
Writes  <out>/model.pt       weights + model/train config + k, frame_skip, checksums
        <out>/train_log.csv  one row per epoch: epoch, loss, mse, ce, lr, seconds
        <out>/scores.h5      held-out videos' stitched spot curves and class logits
                             (not written for subject "all", which holds nothing out)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import ClassVar
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mepkg.atomic import write_csv
from mepkg.datasets.common import video_id as make_video_id
from mepkg.h5io import FeatureSet, VideoScores, read_features, write_scores
from mepkg.mamba import scan_backend
from mepkg.model import SlowFastMamba, count_parameters, load_model, save_model_file
from mepkg.quality import QualityPolicy, usable_windows
from mepkg.targets import class_weights, select_training_windows, stitch_curve, window_targets
from mepkg.train_step import Predictor, TrainStep, make_optimizer, step_mode

__all__ = ["TrainConfig", "run_fold", "load_model", "predict_video", "resolve_device",
           "make_optimizer"]

log = logging.getLogger(__name__)

ALL_SUBJECTS = "all"


@dataclass
class TrainConfig:
    """Training settings of one fold; defaults are the paper's (docs/method.md §5).

    The single source of these defaults: config.yaml's ``train`` group and
    the schema mirror them (tests/test_workflow_config.py checks), ``model``
    holding :class:`mepkg.model.ModelConfig`'s settings. ``EXECUTION`` fields
    change how fast, not what is computed: they come from the ``compute``
    group (device, threads, cuda_graph) or are internal (eval_batch_size).
    """

    EXECUTION: ClassVar[tuple[str, ...]] = ("device", "threads", "eval_batch_size", "cuda_graph")

    epochs: int = 50                    # docs/method.md §5
    lr: float = 3e-4                    # Adam lr (docs/method.md §5)
    max_lr: float = 3e-4                # one-cycle peak (docs/method.md §5)
    batch_size: int = 32                # SAMM-LV 32, CAS(ME)^3 256 (docs/method.md §1.6)
    background_ratio: float = 0.5       # background windows per ME window: SAMM-LV 0.5, CAS(ME)^3 4
    spot_loss_weight: float = 0.9       # 0.9 x MSE (docs/method.md §5)
    class_loss_weight: float = 0.1      # 0.1 x cross-entropy (docs/method.md §5)
    neutral_factor: float = 6.0         # neutral class weight x 6 (docs/method.md §5)
    scale_augment: tuple[float, float] = (0.9, 1.1)  # window x U(0.9, 1.1) (docs/method.md §5)
    seed: int = 100                     # docs/method.md §5
    device: str = "auto"                # auto: cuda when available (config: compute.train_device)
    threads: int = 1                    # torch CPU threads (config: compute.train_threads)
    eval_batch_size: int = 256          # windows per forward pass when predicting
    cuda_graph: bool = True             # on CUDA, replay each step as a CUDA graph (config: compute.train_cuda_graph)
    model: dict = field(default_factory=dict)  # ModelConfig settings; {}: the paper's (docs/method.md §4)

    def __post_init__(self):
        self.scale_augment = tuple(float(v) for v in self.scale_augment)
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1:
            raise ValueError(f"epochs, batch_size and threads must be >= 1, got {self.epochs}, "
                             f"{self.batch_size}, {self.threads}")

    @classmethod
    def from_config(cls, group: dict, **execution) -> "TrainConfig":
        """From config.yaml's ``train`` group plus ``EXECUTION`` fields (threads=, device=)."""
        return cls(**dict(group), **execution)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; "
                         f"use device 'cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)     # also seeds every CUDA device


# ---------------------------------------------------------------- inputs
def _read_labels(labels) -> pd.DataFrame:
    """labels.csv (or a table alike) checked row by row (mepkg.inputs.read_labels_table)."""
    from mepkg.inputs import read_labels_table

    return read_labels_table(labels)


def _load_videos(features_dir, videos) -> tuple[list[FeatureSet], list]:
    """FeatureSets plus what each came from (a path or the in-memory set)."""
    if videos is None:
        folder = Path(features_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such features folder")
        videos = sorted(folder.glob("*.h5"))
        if not videos:
            raise FileNotFoundError(f"{folder}: no features/<video_id>.h5 files; run the "
                                    f"features stage first")
    sets = [v if isinstance(v, FeatureSet) else read_features(v) for v in videos]
    return sets, list(videos)


def _input_checksum(sources: list, labels_arg, labels: pd.DataFrame) -> str:
    """sha256 of the training inputs: feature file bytes (or arrays) and the labels."""
    h = hashlib.sha256()
    for src in sources:
        if isinstance(src, FeatureSet):
            h.update(np.ascontiguousarray(src.features).tobytes())
            h.update(np.ascontiguousarray(src.window_start).tobytes())
            h.update(repr(sorted((k, str(v)) for k, v in src.attrs.items())).encode())
        else:
            h.update(Path(src).read_bytes())
    if isinstance(labels_arg, pd.DataFrame):
        h.update(labels.to_csv(index=False).encode())
    else:
        h.update(Path(labels_arg).read_bytes())
    return h.hexdigest()


def _warn_unmatched_labels(labels: pd.DataFrame, sets: list[FeatureSet]) -> None:
    """Warn, naming the first row, about micro events of videos that have no features."""
    ids = {fs.attrs.get("video_id") or make_video_id(fs.attrs["subject"], fs.attrs["video"])
           for fs in sets}
    micro = labels[labels["type"] == "micro"]
    unmatched = micro[[make_video_id(s, v) not in ids
                       for s, v in zip(micro["subject"].astype(str), micro["video"].astype(str))]]
    if len(unmatched):
        first = unmatched.iloc[0]
        line = f" line {first['_line']}" if "_line" in unmatched.columns else ""
        log.warning("%s%s (%s %s): %d micro event(s) of %d video(s) without a features file; "
                    "they are neither trained on nor scored: check the subject and video names",
                    labels.attrs.get("source", "labels"), line, first["subject"], first["video"],
                    len(unmatched), unmatched.groupby(["subject", "video"]).ngroups)


def _video_targets(fs: FeatureSet, labels: pd.DataFrame, k: int, frame_skip: int):
    """Window targets of one video from its labels.csv rows."""
    vid = fs.attrs.get("video_id") or make_video_id(fs.attrs["subject"], fs.attrs["video"])
    rows = labels[[make_video_id(s, v) == vid
                   for s, v in zip(labels["subject"].astype(str), labels["video"].astype(str))]]
    n_sampled = int((fs.n_windows + 1) * k // 2)
    if fs.attrs.get("n_frames"):
        n_sampled = max(n_sampled, math.ceil(int(fs.attrs["n_frames"]) / frame_skip))
    past = rows[rows["onset"] // frame_skip >= n_sampled]
    if len(past):
        first = past.iloc[0]
        line = f" line {first['_line']}" if "_line" in past.columns else ""
        log.warning("%s%s (%s %s): %d event(s) start after the last frame %d of the "
                    "video's features, first onset %d; not trained on: check the labels "
                    "against the video", labels.attrs.get("source", "labels"), line,
                    first["subject"], first["video"], len(past),
                    n_sampled * frame_skip - 1, first["onset"])
    return window_targets(n_sampled, rows, k, frame_skip, starts=fs.window_start)


# ---------------------------------------------------------------- loss and prediction
def fold_loss(spot, logits, spot_target, cls_target, weights, config: TrainConfig):
    """0.9 MSE + 0.1 weighted CE -> (loss, mse, ce).

    The CE is the release's: one-hot targets with class weights and 'mean'
    reduction, i.e. sum_i w[y_i] nll_i / n_frames (PyTorch's index-target
    CE would divide by sum_i w[y_i] instead). Frames with class -1 add 0.
    """
    mse = F.mse_loss(spot, spot_target)
    logp = F.log_softmax(logits, dim=-1)                                     # B x k x C
    target = cls_target.clamp(min=0)
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)                 # B x k
    frame_w = weights[target] * (cls_target >= 0)                            # B x k
    ce = (frame_w * nll).mean()
    return config.spot_loss_weight * mse + config.class_loss_weight * ce, mse, ce


@torch.no_grad()
def predict_video(model: SlowFastMamba, features: np.ndarray,
                  batch_size: int = TrainConfig.eval_batch_size, predictor: Predictor | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Window features (W, 36, k) -> stitched spot (n,) and logits (n, 5), n = (W+1) k/2,
    computed on the model's device.

    ``predictor``: how batches of ``batch_size`` run (:class:`mepkg.train_step.Predictor`,
    shared by the videos of a fold: on a GPU one CUDA graph); default: eagerly.
    """
    model.eval()
    k = features.shape[2]
    predict = predictor or Predictor(model, batch_size)
    spots, logits = [], []
    for i in range(0, len(features), predict.batch_size):
        s, l = predict(torch.as_tensor(features[i:i + predict.batch_size], dtype=torch.float32))
        spots.append(s.float().cpu().numpy())
        logits.append(l.float().cpu().numpy())
    if not spots:
        return np.zeros(0, np.float32), np.zeros((0, model.config.num_classes), np.float32)
    return (stitch_curve(np.concatenate(spots), k).astype(np.float32),
            stitch_curve(np.concatenate(logits), k).astype(np.float32))


# ---------------------------------------------------------------- the fold
def run_fold(features_dir, labels, subject: str, out_dir, config: TrainConfig | None = None,
             videos: list | None = None, quality: QualityPolicy | None = None,
             trained_on: dict | None = None) -> Path:
    """Train on every subject but ``subject`` and predict its videos; returns ``out_dir``.

    ``labels``: labels.csv path or DataFrame. ``videos``: feature file paths (or
    in-memory FeatureSets) to use instead of every ``features_dir/*.h5``.
    ``subject="all"`` trains on every video and predicts none (no scores.h5).
    ``quality``: the windows it makes unusable are left out of training
    (docs/method.md §2.10; default :class:`mepkg.quality.QualityPolicy`);
    the model file records it, and ``trained_on`` (dataset name, synthetic or not).
    """
    config = config or TrainConfig()
    out_dir = Path(out_dir)   # made once the inputs are read (_run_fold)
    torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _run_fold(features_dir, labels, str(subject), out_dir, config, videos, device,
                         quality or QualityPolicy(), trained_on)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def shared_feature_settings(sets) -> dict:
    """The feature settings every video of ``sets`` was extracted with (the model file's
    ``features``): each file's ``feature_config`` without the method's fixed constants,
    or only k and frame_skip where a file does not record it. ValueError naming two
    videos extracted differently."""
    from mepkg.features import FeatureConfig

    def settings(fs) -> dict:
        recorded = json.loads(fs.attrs["feature_config"]) if "feature_config" in fs.attrs else {}
        recorded = {key: value for key, value in recorded.items()
                    if key not in FeatureConfig.FIXED}
        return {**recorded, "k": int(fs.k), "frame_skip": int(fs.attrs["frame_skip"])}

    first = settings(sets[0])
    for fs in sets[1:]:
        other = settings(fs)
        differ = sorted(key for key in first.keys() | other.keys()
                        if first.get(key) != other.get(key))
        if differ:
            mine = ", ".join(f"{key}={other.get(key)}" for key in differ)
            theirs = ", ".join(f"{key}={first.get(key)}" for key in differ)
            raise ValueError(f"video {fs.attrs.get('video_id')}: {mine}, but "
                             f"{sets[0].attrs.get('video_id')} has {theirs}; extract all "
                             f"features alike")
    return first


def _run_fold(features_dir, labels_arg, subject, out_dir, config, videos, device,
              quality: QualityPolicy, trained_on: dict | None) -> Path:
    labels = _read_labels(labels_arg)
    sets, sources = _load_videos(features_dir, videos)
    feature_settings = shared_feature_settings(sets)
    k, frame_skip = feature_settings["k"], feature_settings["frame_skip"]
    if subject == ALL_SUBJECTS:
        held = []
    else:
        held = [i for i, fs in enumerate(sets) if str(fs.attrs["subject"]) == subject]
        if not held:
            have = sorted({str(fs.attrs["subject"]) for fs in sets} - {""})
            raise ValueError(f"subject {subject!r} has no features among {len(sets)} videos "
                             + (f"(subjects: {', '.join(have)})" if have else
                                "(their files record no subject: extract them with "
                                "`mepkg features --subject S`)"))
    _warn_unmatched_labels(labels, sets)
    train = [i for i in range(len(sets)) if i not in held]
    out_dir.mkdir(parents=True, exist_ok=True)
    if not train:
        raise ValueError(f"fold {subject}: no video of another subject to train on "
                         f"({len(sets)} videos, all of subject {subject!r})")

    # training windows (docs/method.md §5), unusable ones left out (§2.10)
    xs, spots, classes = [], [], []
    for i in train:
        spot_w, cls_w = _video_targets(sets[i], labels, k, frame_skip)
        usable = usable_windows(sets[i].quality, quality)
        if not usable.all():
            spot_w, cls_w = spot_w[usable], cls_w[usable]
        xs.append(sets[i].features if usable.all() else sets[i].features[usable])
        spots.append(spot_w)
        classes.append(cls_w)
    x_all = np.concatenate(xs)
    spot_all, cls_all = np.concatenate(spots), np.concatenate(classes)
    n_left_out = sum(sets[i].n_windows for i in train) - len(x_all)
    log.info("fold %s: %d of %d windows left out as unusable (flags %s)", subject, n_left_out,
             n_left_out + len(x_all), ", ".join(quality.unusable))
    keep = select_training_windows(spot_all, config.background_ratio,
                                   np.random.default_rng(config.seed))
    if len(keep) == 0:
        raise ValueError(f"fold {subject}: no training window holds a micro-expression "
                         f"({len(train)} training videos); check labels.csv against the features")
    x_train = torch.as_tensor(x_all[keep], dtype=torch.float32)             # N x 36 x k
    spot_train = torch.as_tensor(spot_all[keep])                            # N x k
    cls_train = torch.as_tensor(cls_all[keep])                              # N x k
    weights = torch.as_tensor(class_weights(cls_all[keep], config.neutral_factor), device=device)

    model = SlowFastMamba(**config.model).to(device)
    log.info("fold %s: %d training videos, %d windows (%d with an ME), %d held-out videos; "
             "%d parameters on %s, scan: %s", subject, len(train), len(keep),
             int((spot_all[keep] > 0).any(1).sum()), len(held),
             count_parameters(model), device, scan_backend(device))
    log.info("class weights %s", np.round(weights.cpu().numpy(), 4).tolist())

    # on a GPU each full batch replays one CUDA graph (mepkg/train_step.py); the CPU runs the plain loop
    mode = step_mode(device, config.cuda_graph)
    optimizer = make_optimizer(model, config.lr, capturable=mode == "graph")
    steps = math.ceil(len(keep) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.max_lr,
                                                    epochs=config.epochs, steps_per_epoch=steps)
    train_step = TrainStep(model, optimizer, scheduler,
                           lambda s, l, st, ct: fold_loss(s, l, st, ct, weights, config),
                           config.batch_size, mode)
    gen = torch.Generator().manual_seed(config.seed)
    lo, hi = config.scale_augment
    rows = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        t0, sums = time.perf_counter(), torch.zeros(3, device=device)       # loss, mse, ce
        for idx in torch.randperm(len(keep), generator=gen).split(config.batch_size):
            scale = torch.empty(len(idx)).uniform_(lo, hi, generator=gen)       # B
            x = x_train[idx] * scale[:, None, None]                             # B x 36 x k
            sums += len(idx) * train_step(x, spot_train[idx], cls_train[idx])   # no host sync
        loss_, mse_, ce_ = (sums / len(keep)).tolist()
        row = {"epoch": epoch, "loss": loss_, "mse": mse_, "ce": ce_,
               "lr": float(scheduler.get_last_lr()[0]), "seconds": time.perf_counter() - t0}
        rows.append(row)
        log.info("fold %s epoch %d/%d loss %.5f mse %.5f ce %.5f lr %.2e %.1fs", subject,
                 epoch, config.epochs, loss_, mse_, ce_, row["lr"], row["seconds"])
        write_csv(pd.DataFrame(rows), out_dir / "train_log.csv")

    train_step.release()
    train_cfg = asdict(config)
    train_cfg["scale_augment"] = list(config.scale_augment)
    model_path = save_model_file(out_dir / "model.pt", model, k=k, frame_skip=frame_skip,
                                 fps=float(sets[0].attrs.get("fps", 0.0)),
                                 features=feature_settings, train_config=train_cfg,
                                 input_checksum=_input_checksum([sources[i] for i in train],
                                                                labels_arg, labels),
                                 trained_on={**(trained_on or {}),
                                             "quality_policy": quality.to_dict(),
                                             "windows_left_out": int(n_left_out)})
    if subject == ALL_SUBJECTS:
        return out_dir

    model_checksum = hashlib.sha256(model_path.read_bytes()).hexdigest()
    predictor = Predictor(model, config.eval_batch_size, mode)
    scores = []
    for i in held:
        fs = sets[i]
        if not np.array_equal(fs.window_start, np.arange(fs.n_windows) * (k // 2)):
            raise ValueError(f"video {fs.attrs.get('video_id')}: windows do not start at "
                             f"i*k/2, cannot stitch a score curve; re-run features")
        spot, logits = predict_video(model, fs.features, config.eval_batch_size, predictor)
        scores.append(VideoScores(
            video_id=str(fs.attrs.get("video_id") or make_video_id(fs.attrs["subject"],
                                                                   fs.attrs["video"])),
            subject=str(fs.attrs["subject"]), video=str(fs.attrs["video"]), spot=spot,
            logits=logits, frame_skip=frame_skip, k=k, fps=float(fs.attrs.get("fps", 0.0)),
            n_frames=int(fs.attrs.get("n_frames", 0)), quality=fs.quality))
    write_scores(out_dir / "scores.h5", scores, fold=subject, model_checksum=model_checksum)
    log.info("fold %s: scores of %d held-out videos -> %s", subject, len(scores),
             out_dir / "scores.h5")
    return out_dir
