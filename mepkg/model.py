"""Slow-fast Mamba (METST_SF, docs/method.md §4): per-frame spot score and class logits.

    input (B, 36, k) ROI-flow window
      stem: Conv1d 36->D + BN + ReLU, Conv1d D->D + BN + ReLU        B x D x k
      fast path (B, k, D)            slow path Conv1d D->2D stride 2  B x k/2 x 2D
      3 stages: `depth` Mamba blocks on each path; after stages 1 and 2
                slow += Conv1d(D->2D, stride 2) + BN + ReLU of fast
      head: slow upsampled x2 (nearest) ++ fast -> B x k x 3D
            Linear(3D->1) + sigmoid = spot (B, k); Linear(3D->5) = logits (B, k, 5)

With the paper's sizes the model has 8,359,686 parameters.

Model files (``save_model_file`` -> ``write_model_file`` / ``load_model``) are torch pickles of plain
types: the state dict, the model's constructor arguments and the metadata a
later stage needs (k, frame_skip, fps, class names, training config,
checksums), plus, from format version 2:

  features    the feature settings the training windows were extracted with
              (the fields of mepkg.features.FeatureConfig but its FIXED
              constants; k and frame_skip equal the top-level keys). A model
              trained on features that did not record them has only k and
              frame_skip here; ``mepkg spot`` names the defaults it assumes.
  trained_on  what the model was trained on: a dict of optional keys, read
              with ``.get`` (``dataset``: dataset.name, ``protocol``: whose
              docs/method.md §1 protocol applied). New keys are added here,
              without a new format version.

Version 1 files (no ``features``, no ``trained_on``) are read as version 2
with ``features = {k, frame_skip}`` and ``trained_on = {}``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import asdict, dataclass
from typing import ClassVar
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from mepkg import __version__
from mepkg.atomic import atomic_output
from mepkg.constants import CLASS_NAMES, N_CHANNELS, N_CLASSES
from mepkg.mamba import Mamba

log = logging.getLogger(__name__)

MODEL_FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)   # version 1: no ``features``, no ``trained_on``
MODEL_FILE_KEYS = ("format_version", "state_dict", "model_config", "k", "frame_skip",
                   "class_names", "features", "trained_on")


@dataclass
class ModelConfig:
    """SlowFastMamba's settings; defaults are the paper's (docs/method.md §4).

    The single source of these defaults: config.yaml's ``train.model`` group
    and the schema mirror them (tests/test_workflow_config.py checks), except
    ``STRUCTURAL`` fields, which the data fixes.
    """

    STRUCTURAL: ClassVar[tuple[str, ...]] = ("in_channels", "num_classes")

    in_channels: int = N_CHANNELS    # 36: 18 ROI motions x (dx, dy) (docs/method.md §2.7)
    num_classes: int = N_CLASSES     # 5: 4 emotions + neutral (docs/method.md §3)
    d_model: int = 128           # D, fast-path width; slow path 2D (docs/method.md §4)
    depth: int = 4               # Mamba blocks per stage and path (docs/method.md §4)
    d_state: int = 64            # Mamba N (docs/method.md §4)
    d_conv: int = 4              # Mamba conv width (docs/method.md §4)
    expand: int = 2              # Mamba E (docs/method.md §4)
    drop_path_max: float = 0.2   # block i of a stage: [0, linspace(0, 0.2, depth)...][i] (release)
    keep_mamba_dt_init: bool = False  # False: dt_proj bias zeroed like every Linear bias (release)

    def drop_path_rates(self) -> list[float]:
        """0, 0, 0.0667, 0.1333 for depth 4: the release prepends 0 to linspace(0, max, depth)."""
        return ([0.0] + torch.linspace(0, self.drop_path_max, self.depth).tolist())[:self.depth]


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability p."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # B x 1 x 1
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}"


class MambaBlock(nn.Module):
    """x + DropPath(LayerNorm(Mamba(LayerNorm(x)))) on (B, L, width)."""

    def __init__(self, width: int, cfg: ModelConfig, drop_path: float):
        super().__init__()
        self.norm_in = nn.LayerNorm(width)
        self.mamba = Mamba(width, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand)
        self.norm_out = nn.LayerNorm(width)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.norm_out(self.mamba(self.norm_in(x))))  # B x L x W


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, 3, stride, 1), nn.BatchNorm1d(c_out),
                         nn.ReLU(inplace=True))


class SlowFastMamba(nn.Module):
    """METST_SF of the paper's release (docs/method.md §4).

    Forward (B, C, k) -> (spot (B, k) in [0, 1], class logits (B, k, num_classes)).
    """

    n_stages = 3

    def __init__(self, in_channels: int = ModelConfig.in_channels,
                 num_classes: int = ModelConfig.num_classes, d_model: int = ModelConfig.d_model,
                 depth: int = ModelConfig.depth, d_state: int = ModelConfig.d_state,
                 d_conv: int = ModelConfig.d_conv, expand: int = ModelConfig.expand,
                 drop_path_max: float = ModelConfig.drop_path_max,
                 keep_mamba_dt_init: bool = ModelConfig.keep_mamba_dt_init):
        super().__init__()
        cfg = ModelConfig(in_channels, num_classes, d_model, depth, d_state, d_conv, expand,
                          drop_path_max, keep_mamba_dt_init)
        self.config = cfg
        dim, rates = cfg.d_model, cfg.drop_path_rates()
        self.stem = nn.Sequential(*_conv_bn_relu(cfg.in_channels, dim), *_conv_bn_relu(dim, dim))
        self.slow_stem = _conv_bn_relu(dim, 2 * dim, stride=2)
        self.slow_stages = nn.ModuleList(
            nn.ModuleList(MambaBlock(2 * dim, cfg, rates[i]) for i in range(cfg.depth))
            for _ in range(self.n_stages))
        self.fast_stages = nn.ModuleList(
            nn.ModuleList(MambaBlock(dim, cfg, rates[i]) for i in range(cfg.depth))
            for _ in range(self.n_stages))
        self.laterals = nn.ModuleList(_conv_bn_relu(dim, 2 * dim, stride=2)
                                      for _ in range(self.n_stages - 1))
        self.spot_head = nn.Linear(3 * dim, 1)
        self.class_head = nn.Linear(3 * dim, cfg.num_classes)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """docs/method.md §4 init in the release's order: segm_init_weights, then _init_weights(n_layer=4)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Mamba):
                nn.init.kaiming_uniform_(m.out_proj.weight, a=math.sqrt(5))
                m.out_proj.weight /= math.sqrt(4)      # 1 residual per block x n_layer 4 (release)
                if self.config.keep_mamba_dt_init:
                    m.reset_dt_proj()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 3 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"SlowFastMamba input must be (batch, {self.config.in_channels}, k), "
                             f"got {tuple(x.shape)}")
        k = x.shape[2]
        x = self.stem(x)                                               # B x D x k
        fast = x.transpose(1, 2)                                       # B x k x D
        slow = self.slow_stem(x).transpose(1, 2)                       # B x ceil(k/2) x 2D
        for stage in range(self.n_stages):
            for block in self.slow_stages[stage]:
                slow = block(slow)
            for block in self.fast_stages[stage]:
                fast = block(fast)
            if stage < self.n_stages - 1:
                lateral = self.laterals[stage](fast.transpose(1, 2))   # B x 2D x ceil(k/2)
                slow = slow + lateral.transpose(1, 2)
        slow = F.interpolate(slow.transpose(1, 2), scale_factor=2,
                             mode="nearest")                      # B x 2D x 2 ceil(k/2)
        fused = torch.cat([slow[..., :k].transpose(1, 2), fast], dim=2)  # B x k x 3D
        spot = torch.sigmoid(self.spot_head(fused)).squeeze(-1)        # B x k
        logits = self.class_head(fused)                                # B x k x classes
        return spot, logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- model files
def save_model_file(path: str | os.PathLike, model: SlowFastMamba, *, k: int | None,
                    frame_skip: int | None, fps: float | None = None,
                    features: dict | None = None, trained_on: dict | None = None,
                    train_config: dict | None = None, input_checksum: str = "",
                    source: str = "mepkg") -> Path:
    """Write a model file atomically (see the module docstring for its content).

    ``features``: the feature settings of the training windows (None: only k
    and frame_skip are known); ``trained_on``: see the module docstring (training adds the
    ``quality_policy`` of :mod:`mepkg.quality` and the windows it left out).
    """
    payload = {
        "format_version": MODEL_FORMAT_VERSION,
        "state_dict": {n: t.detach().cpu() for n, t in model.state_dict().items()},
        "model_config": asdict(model.config),
        "train_config": train_config or {},
        "k": k,
        "frame_skip": frame_skip,
        "fps": fps,
        "features": {**(features or {}), "k": k, "frame_skip": frame_skip},
        "trained_on": dict(trained_on or {}),
        "class_names": list(CLASS_NAMES),
        "mepkg_version": __version__,
        "input_checksum": input_checksum,
        "source": source,
    }
    return write_model_file(path, payload)


def write_model_file(path: str | os.PathLike, payload: dict) -> Path:
    """The one writer of model files: ``payload`` (see :func:`save_model_file`) saved atomically.

    Used by training and ``convert-checkpoint`` (through :func:`save_model_file`)
    and by ``package-model`` (a read payload with the decoding priors added).
    """
    missing = [key for key in MODEL_FILE_KEYS if key not in payload]
    if missing:
        raise ValueError(f"{path}: a model file needs {missing}")
    features = payload["features"]
    if (features.get("k"), features.get("frame_skip")) != (payload["k"], payload["frame_skip"]):
        raise ValueError(f"{path}: features k={features.get('k')}, frame_skip="
                         f"{features.get('frame_skip')} differ from the model's k={payload['k']}, "
                         f"frame_skip={payload['frame_skip']}")
    payload = {**payload, "format_version": MODEL_FORMAT_VERSION}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _torch_load(path: Path, what: str, hint: str):
    """``torch.load`` with ``weights_only=True`` (no code runs); one-line ValueError otherwise.

    PyTorch's own message (advice to set weights_only=False included) is not
    passed on: a file that needs arbitrary code to load is not one of ours.
    """
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the {what} itself")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a readable {what} ({type(err).__name__}; truncated, "
                         f"damaged or another kind of file); {hint}") from None


def read_model_file(path: str | os.PathLike) -> dict:
    """A model file's content (weights and metadata), checked for format and keys."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    payload = _torch_load(path, "mepkg model file", "a released checkpoint must first go "
                                                    "through `mepkg convert-checkpoint`")
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise ValueError(f"{path}: not a mepkg model file (no 'format_version'); a released "
                         f"checkpoint must first go through `mepkg convert-checkpoint`")
    if payload["format_version"] not in READABLE_FORMAT_VERSIONS:
        raise ValueError(f"{path}: model format_version {payload['format_version']}, this mepkg "
                         f"({__version__}) reads versions {READABLE_FORMAT_VERSIONS}; retrain or "
                         f"convert the model with this version")
    if payload["format_version"] == 1:
        payload.setdefault("features", {"k": payload.get("k"),
                                        "frame_skip": payload.get("frame_skip")})
        payload.setdefault("trained_on", {})
    missing = [key for key in MODEL_FILE_KEYS if key not in payload]
    if missing:
        raise ValueError(f"{path}: model file lacks {missing}; it is truncated or was not "
                         f"written by mepkg")
    _check_recorded_settings(payload, path)
    return payload


def _check_recorded_settings(payload: dict, path: Path) -> None:
    """InputError naming the file when a recorded k, frame_skip or fps is impossible
    (None or 0: not recorded, which ``spot`` and ``package-model`` report themselves)."""
    from mepkg.inputs import InputError

    def bad(key: str, need: str):
        raise InputError(f"{path}: the model file records {key} {payload[key]!r}, {need}; the "
                         f"file is damaged or was edited: retrain or convert the model again")

    for key in ("k", "frame_skip"):
        value = payload.get(key)
        if value is None or value == 0:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            bad(key, "not a whole number")
        if key == "k" and (value < 2 or value % 2):
            bad(key, "but a window length is even and >= 2")
        if key == "frame_skip" and value < 1:
            bad(key, "but a frame skip is >= 1")
    fps = payload.get("fps")
    if fps not in (None, 0) and (isinstance(fps, bool) or not isinstance(fps, (int, float))
                                 or not math.isfinite(fps) or fps < 0):
        bad("fps", "not a frame rate")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"
               ) -> tuple[SlowFastMamba, dict]:
    """Read a model file -> (model in eval mode on ``device``, metadata without the weights)."""
    from mepkg.inputs import InputError

    payload = read_model_file(path)
    try:
        model = SlowFastMamba(**payload["model_config"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        first = " ".join(str(err).split())[:160]
        raise InputError(f"{path}: its weights do not fit its model_config ({type(err).__name__}: "
                         f"{first} ...); the file is damaged or was edited: retrain or convert "
                         f"the model again") from None
    model.to(device).eval()
    meta = {key: value for key, value in payload.items() if key != "state_dict"}
    return model, meta


# ---------------------------------------------------------------- released checkpoints
def release_key_to_mepkg(key: str) -> str | None:
    """Map one key of the authors' METST_SF state dict onto SlowFastMamba (None: drop it).

    Release naming (network.py of zizheng-guo/BoostingVRME, saved from
    nn.DataParallel so every key starts with ``module.``):

    ============================================  =====================================
    release                                       mepkg
    ============================================  =====================================
    Stem.{0,1,3,4}.*                              stem.{0,1,3,4}.*
    Stem_slow.{0,1}.*                             slow_stem.{0,1}.*
    block{s}.{i}.attn.norm.*  (s = 1, 2, 3)       slow_stages.{s-1}.{i}.norm_in.*
    block{s}.{i}.attn.mamba.*                     slow_stages.{s-1}.{i}.mamba.*
    block{s}.{i}.norm1.*                          slow_stages.{s-1}.{i}.norm_out.*
    block{s}.{i}.norm2.*  (defined, never used)   dropped
    block{s}_fast.{i}.*                           fast_stages.{s-1}.{i}.* (same sub-names)
    fuse_{j}.conv.{0,1}.*  (j = 1, 2)             laterals.{j-1}.{0,1}.*
    fc_spot.0.*                                   spot_head.*
    fc_recog.0.*                                  class_head.*
    ============================================  =====================================
    """
    key = key.removeprefix("module.")
    if re.fullmatch(r"block\d(_fast)?\.\d+\.norm2\.(weight|bias)", key):
        return None
    m = re.fullmatch(r"block(\d)(_fast)?\.(\d+)\.(.+)", key)
    if m:
        stage, fast, index, rest = m.groups()
        path = "fast_stages" if fast else "slow_stages"
        rest = (rest.replace("attn.norm.", "norm_in.", 1).replace("attn.mamba.", "mamba.", 1)
                .replace("norm1.", "norm_out.", 1))
        return f"{path}.{int(stage) - 1}.{index}.{rest}"
    m = re.fullmatch(r"fuse_(\d)\.conv\.(.+)", key)
    if m:
        return f"laterals.{int(m.group(1)) - 1}.{m.group(2)}"
    for old, new in (("Stem_slow.", "slow_stem."), ("Stem.", "stem."),
                     ("fc_spot.0.", "spot_head."), ("fc_recog.0.", "class_head.")):
        if key.startswith(old):
            return new + key[len(old):]
    return key


def convert_release_checkpoint(in_path: str | os.PathLike, out_path: str | os.PathLike,
                               k: int | None = None, frame_skip: int | None = None,
                               fps: float | None = None) -> Path:
    """Authors' released METST_SF state dict (.pkl) -> a mepkg model file.

    Keys are renamed by ``release_key_to_mepkg`` and loaded strictly, so a
    missing or unexpected weight is an error naming it. The release stores no
    window length, frame skip or frame rate; they are required (SAMM-LV: k 30,
    frame_skip 7, fps 200; CAS(ME)^3: k 50, frame_skip 1, fps 30) for
    ``mepkg spot`` to use the model.
    """
    in_path = Path(in_path)
    if not in_path.exists():
        raise FileNotFoundError(f"{in_path}: no such checkpoint")
    state = _torch_load(in_path, "PyTorch checkpoint", "give the authors' released .pkl "
                                                        "(a METST_SF state dict)")
    if isinstance(state, dict) and "format_version" in state:
        raise ValueError(f"{in_path} is already a mepkg model file; use it as it is")
    if isinstance(state, dict) and "state_dict" in state:   # a wrapper may hold the settings
        k, frame_skip, fps = (v if v is not None else state.get(name) for v, name in
                              ((k, "k"), (frame_skip, "frame_skip"), (fps, "fps")))
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(str(key).removeprefix("module.").startswith("Stem.")
                                              for key in state):
        raise ValueError(f"{in_path}: not a METST_SF state dict (no 'Stem.' weights)")
    lacking = [option for option, value in (("--k", k), ("--frame-skip", frame_skip),
                                            ("--fps", fps)) if value is None]
    if lacking:
        raise ValueError(f"{in_path}: the release records no {', '.join(lacking)}; pass "
                         f"{' '.join(lacking)} (SAMM-LV: --k 30 --frame-skip 7 --fps 200; "
                         f"CAS(ME)^3: --k 50 --frame-skip 1 --fps 30)")
    renamed, dropped = {}, []
    for key, tensor in state.items():
        new = release_key_to_mepkg(key)
        if new is None:
            dropped.append(key)
        else:
            renamed[new] = tensor
    model = SlowFastMamba(**_infer_config(renamed, in_path))
    result = model.load_state_dict(renamed, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{in_path}: checkpoint does not match SlowFastMamba: missing "
                         f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    log.info("converted %s: %d tensors, dropped %d unused (second block LayerNorms)",
             in_path, len(renamed), len(dropped))
    return save_model_file(out_path, model, k=k, frame_skip=frame_skip, fps=fps,
                           source=f"release:{in_path.name}")


def _infer_config(state: dict, path: Path) -> dict:
    """SlowFastMamba arguments from the tensor shapes of a (renamed) state dict."""
    try:
        d_model = state["stem.0.weight"].shape[0]
        mamba = "fast_stages.0.0.mamba."
        return dict(in_channels=state["stem.0.weight"].shape[1],
                    num_classes=state["class_head.weight"].shape[0], d_model=d_model,
                    depth=len({n.split(".")[2] for n in state if n.startswith("fast_stages.0.")}),
                    d_state=state[mamba + "A_log"].shape[1],
                    d_conv=state[mamba + "conv1d.weight"].shape[2],
                    expand=state[mamba + "in_proj.weight"].shape[0] // (2 * d_model))
    except KeyError as err:
        raise ValueError(f"{path}: checkpoint lacks {err}, not a METST_SF state dict") from err
