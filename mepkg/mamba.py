"""The Mamba mixer (selective state-space layer), with fused CPU kernels and a
pure-PyTorch scan.

Parameter names and initialisation follow ``mamba_ssm.Mamba`` (Gu & Dao,
"Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023), so
state dicts move between the two unchanged: ``in_proj``, ``conv1d``,
``x_proj``, ``dt_proj``, ``A_log``, ``D``, ``out_proj``.

``Mamba.forward`` calls the module-level ``selective_scan`` (and ``conv1d_silu``),
which pick a path per call, logged once per device:

- CUDA tensors: ``mamba_ssm``'s CUDA kernel when ``mamba_ssm`` imports; else the
  fused Triton scan of ``mepkg.scan_triton`` when a usable triton imports (version
  >= ``MIN_TRITON``; torch's CUDA wheels bring one); else the pure-PyTorch loop
  (no host sync per step, so it stays asynchronous on a GPU), with one warning
  naming what was missing;
- CPU float32/float64 tensors: the fused scan of ``mepkg.scan_cpu`` (numba
  kernels, one call per block for the forward and one for the backward, states
  recomputed in the backward as in mamba_ssm's kernel) and the fused causal
  conv + SiLU of ``mepkg.conv_cpu``. numba is a wheel (no compiler needed on the
  user's machine); its kernels vectorise exp with a polynomial, see
  ``mepkg.scan_cpu``. Where numba cannot load, the loop runs and one warning
  says so;
- anything else (other dtypes, other devices): ``selective_scan_loop``.

``selective_scan(..., backend=NAME)`` takes one path by name instead (``SCAN_BACKENDS``):
benchmarks compare them, and the tests run the Triton kernels on CPU tensors through
Triton's interpreter that way (``TRITON_INTERPRET=1``); the automatic choice never
sends CPU tensors to Triton.

Measured on a 2-vCPU shared machine, 1 thread, training step (forward +
backward + Adam, batch 32, k 30): the paper's model 4.2-5.6x the windows/s it
gets with ``selective_scan_reference`` swapped in, the synthetic config's CPU
model 3.1-3.4x the loop's (``python benchmarks/train.py``; docs/benchmarks.md).

``selective_scan_loop`` is a cache-friendly loop over time; for the short windows
of this model (k <= 50) it beat a parallel (Hillis-Steele) scan and mambapy's
Blelloch ``pscan``, which materialise (B, L, D, N) tensors.
``selective_scan_reference`` is a plain loop doing every step's arithmetic
separately: the readable reference both fast paths are tested against.

Shapes use mamba_ssm's layout: B batch, L steps, D channels (d_inner),
N state size.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)

try:  # optional CUDA kernels
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _cuda_scan
    _CUDA_SCAN_ERROR = ""
except Exception as err:  # ImportError, or a broken CUDA build raising at import
    _cuda_scan = None
    _CUDA_SCAN_ERROR = f"{type(err).__name__}: {err}"

_logged_backends: set[str] = set()
_fused: dict = {}          # "scan": the fused CPU scan, or "error": why it did not load
_triton: dict = {}         # "scan": the Triton scan, or "error": why it is not usable

MIN_TRITON = (3, 0)        # oldest triton the Triton scan is run with (torch 2.4's)
_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # its inputs; state float32


def _fused_cpu(u: torch.Tensor) -> bool:
    """Whether the fused CPU kernels take ``u``: a CPU float32/float64 tensor, numba loaded."""
    return (u.device.type == "cpu" and u.dtype in (torch.float32, torch.float64)
            and _fused_cpu_scan() is not None)


def _fused_cpu_scan():
    """The fused CPU scan (mepkg.scan_cpu), imported on first use; None where it cannot
    load (numba missing or broken), logged once."""
    if not _fused:
        try:
            from mepkg.scan_cpu import fused_selective_scan
            _fused["scan"] = fused_selective_scan
        except Exception as err:  # ImportError, or numba failing to set up
            _fused["scan"] = None
            _fused["error"] = f"{type(err).__name__}: {err}"
            log.warning("Fused CPU selective scan unavailable (%s); using the pure-PyTorch "
                        "loop, which is several times slower: pip install numba",
                        _fused["error"])
    return _fused["scan"]


def _version_tuple(version: str) -> tuple[int, ...]:
    """'3.9.0+git1234' -> (3, 9, 0): the leading numeric fields of a version string."""
    parts = []
    for field in version.split("+")[0].split("."):
        digits = re.match(r"\d*", field).group()
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) < len(field):           # '0rc1': a pre-release tag ends the number
            break
    return tuple(parts)


def _triton_scan():
    """The Triton scan (mepkg.scan_triton), imported on first use; None where triton is
    missing, older than MIN_TRITON or fails to import (the reason kept in _triton["error"])."""
    if not _triton:
        try:
            import triton
            version = getattr(triton, "__version__", "0")
            if _version_tuple(version) < MIN_TRITON:
                raise ImportError(f"triton {version} is older than "
                                  f"{'.'.join(map(str, MIN_TRITON))}")
            from mepkg.scan_triton import triton_selective_scan
            _triton["scan"] = triton_selective_scan
        except Exception as err:  # ImportError, or triton failing to set up
            _triton["scan"] = None
            _triton["error"] = f"{type(err).__name__}: {err}"
    return _triton["scan"]


@dataclass
class MambaConfig:
    """One mixer's sizes; the model's values come from mepkg.model.ModelConfig."""

    d_model: int            # D_model: width of the residual stream
    d_state: int            # N: SSM state size (docs/method.md §4)
    d_conv: int             # width of the causal depthwise convolution (docs/method.md §4)
    expand: int             # E: d_inner = E * d_model (docs/method.md §4)
    dt_rank: int | str = "auto"  # R: rank of the step-size projection; auto = ceil(d_model / 16)
    dt_min: float = 1e-3    # initial step sizes are log-uniform in [dt_min, dt_max] (mamba_ssm)
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4

    def __post_init__(self):
        self.d_inner = self.expand * self.d_model
        if self.dt_rank == "auto":
            self.dt_rank = math.ceil(self.d_model / 16)


# what scan_backend() names each path
_BACKEND_NAMES = {"mamba_ssm": "mamba_ssm CUDA kernel", "triton": "fused Triton scan",
                  "numba": "fused CPU scan (numba)", "loop": "pure-PyTorch sequential scan"}
SCAN_BACKENDS = (*_BACKEND_NAMES, "reference")   # selective_scan(..., backend=...) takes these


def _auto_backend(device: torch.device) -> str:
    """The path the automatic choice takes for float32 tensors on ``device``."""
    if device.type == "cuda":
        if _cuda_scan is not None:
            return "mamba_ssm"
        if _triton_scan() is not None:
            return "triton"
    elif device.type == "cpu" and _fused_cpu_scan() is not None:
        return "numba"
    return "loop"


def scan_backend(device: torch.device | str) -> str:
    """Name of the selective-scan implementation used for float tensors on ``device``."""
    return _BACKEND_NAMES[_auto_backend(torch.device(device))]


def _log_backend_once(device: torch.device) -> None:
    name = scan_backend(device)
    key = f"{device.type}:{name}"
    if key in _logged_backends:
        return
    _logged_backends.add(key)
    if device.type == "cuda" and _cuda_scan is None and _triton_scan() is None:
        log.warning("Mamba selective scan on %s: %s, several times slower than a fused "
                    "kernel (mamba_ssm not importable: %s; no usable triton: %s); install "
                    "torch's CUDA wheel with its triton, or mamba-ssm", device, name,
                    _CUDA_SCAN_ERROR, _triton.get("error"))
    else:
        log.info("Mamba selective scan on %s: %s", device, name)


def _step_sizes(delta, delta_bias, delta_softplus):
    """delta (B, D, L) plus delta_bias (D,) where given, through softplus where asked."""
    if delta_bias is not None:
        delta = delta + delta_bias[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _skip_and_gate(y, u, D, z):
    """The scan's output y = C_t . h_t (B, D, L) with the D skip (D u) added and
    gated by silu(z), each where given."""
    if D is not None:
        y = y + u * D[None, :, None]
    if z is not None:
        y = y * F.silu(z)
    return y


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                             delta_softplus=False):
    """Selective scan as a plain loop over time (the reference).

    u, delta, z: (B, D, L); A: (D, N); B, C: (B, N, L); D, delta_bias: (D,); each of
    D, z, delta_bias may be None (mamba_ssm's signature). Returns y: (B, D, L):
    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, y_t = (C_t . h_t + D u_t) silu(z_t).
    """
    delta = _step_sizes(delta, delta_bias, delta_softplus)
    batch, d_inner, length = u.shape
    h = u.new_zeros(batch, d_inner, A.shape[1])                        # B x D x N
    ys = []
    for t in range(length):
        dA = torch.exp(delta[:, :, t, None] * A)                       # B x D x N
        dBu = delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]  # B x D x N
        h = dA * h + dBu                                               # B x D x N
        ys.append((h * C[:, None, :, t]).sum(-1))                      # B x D
    y = torch.stack(ys, dim=-1)                                        # B x D x L
    return _skip_and_gate(y, u, D, z)


def selective_scan_loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Selective scan, pure PyTorch on any device: same arguments and result as the reference.

    Still a loop over time, arranged for the CPU cache: every per-step operand
    is a contiguous slice, the first step skips the zero state, and the output
    contraction with C is one batched matmul per step. Materialising the
    (B, L, D, N) discretised tensors up front (as a parallel scan must) was
    3-15x slower on CPU at batch 32, L 15-50, N 64: they do not fit in cache.
    No host sync per step (no .item(), no branching on tensor values), so it
    also runs asynchronously on CUDA.
    """
    delta = _step_sizes(delta, delta_bias, delta_softplus)
    delta_t = delta.transpose(1, 2).contiguous()                       # B x L x D
    delta_u = (delta * u).transpose(1, 2).contiguous()                 # B x L x D
    B_t = B.transpose(1, 2).contiguous()                               # B x L x N
    C_t = C.transpose(1, 2).unsqueeze(-1).contiguous()                 # B x L x N x 1
    h = None
    ys = []
    for t in range(u.shape[2]):
        dBu = delta_u[:, t, :, None] * B_t[:, t, None, :]              # B x D x N
        if h is None:
            h = dBu                                                    # h_0 = 0
        else:
            dA = torch.exp(delta_t[:, t, :, None] * A)                 # B x D x N
            h = torch.addcmul(dBu, dA, h)                              # B x D x N
        ys.append(torch.bmm(h, C_t[:, t]))                             # B x D x 1
    y = torch.cat(ys, dim=-1)                                          # B x D x L
    return _skip_and_gate(y, u, D, z)


def _scan_by_name(backend: str):
    """The scan function of one of SCAN_BACKENDS; a clear error where it cannot load."""
    if backend not in SCAN_BACKENDS:
        raise ValueError(f"unknown selective-scan backend {backend!r}; "
                         f"choose one of {', '.join(SCAN_BACKENDS)}")
    found = {"mamba_ssm": lambda: _cuda_scan, "triton": _triton_scan, "numba": _fused_cpu_scan,
             "loop": lambda: selective_scan_loop,
             "reference": lambda: selective_scan_reference}[backend]()
    if found is None:
        why = {"mamba_ssm": _CUDA_SCAN_ERROR, "triton": _triton.get("error"),
               "numba": _fused.get("error")}[backend]
        raise RuntimeError(f"selective-scan backend {backend!r} is not available: {why}")
    return found


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   backend: str | None = None):
    """Selective scan on the best path for the tensors' device (see the module docstring),
    or on the path named by ``backend`` (one of SCAN_BACKENDS).

    u, delta, z: (B, D, L); A: (D, N); B, C: (B, N, L); D, delta_bias: (D,).
    Returns y: (B, D, L), as ``selective_scan_reference``.
    """
    if backend is not None:
        scan = _scan_by_name(backend)
    else:
        _log_backend_once(u.device)
        if u.is_cuda and _cuda_scan is not None:
            scan = _cuda_scan
        elif u.is_cuda and u.dtype in _TRITON_DTYPES and _triton_scan() is not None:
            scan = _triton["scan"]
        elif _fused_cpu(u):
            scan = _fused["scan"]
        else:
            scan = selective_scan_loop
    return scan(u, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)


def conv1d_silu_torch(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """silu(causal depthwise conv1d(x)): (B, D, L) -> (B, D, L), torch ops."""
    return F.silu(conv(x)[..., :x.shape[-1]])


def conv1d_silu(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """silu(causal depthwise conv1d(x)), (B, D, L) -> (B, D, L): fused on CPU where the
    fused scan runs (mepkg.conv_cpu), ``conv1d_silu_torch`` elsewhere."""
    if _fused_cpu(x):
        from mepkg.conv_cpu import causal_conv1d_silu
        return causal_conv1d_silu(x, conv.weight, conv.bias)
    return conv1d_silu_torch(x, conv)


class Mamba(nn.Module):
    """One Mamba mixer: (B, L, d_model) -> (B, L, d_model), as ``mamba_ssm.Mamba``."""

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int,
                 dt_rank: int | str = "auto"):
        super().__init__()
        cfg = MambaConfig(d_model=d_model, d_state=d_state, d_conv=d_conv, expand=expand,
                          dt_rank=dt_rank)
        self.config = cfg
        self.in_proj = nn.Linear(cfg.d_model, 2 * cfg.d_inner, bias=False)
        self.conv1d = nn.Conv1d(cfg.d_inner, cfg.d_inner, kernel_size=cfg.d_conv,
                                groups=cfg.d_inner, padding=cfg.d_conv - 1, bias=True)
        self.x_proj = nn.Linear(cfg.d_inner, cfg.dt_rank + 2 * cfg.d_state, bias=False)
        self.dt_proj = nn.Linear(cfg.dt_rank, cfg.d_inner, bias=True)
        # S4D real init: A[d, n] = n + 1
        A = torch.arange(1, cfg.d_state + 1, dtype=torch.float32).repeat(cfg.d_inner, 1)  # D x N
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(cfg.d_inner))
        self.out_proj = nn.Linear(cfg.d_inner, cfg.d_model, bias=False)
        self.reset_dt_proj()

    @torch.no_grad()
    def reset_dt_proj(self) -> None:
        """mamba_ssm's step-size init: weight U(+-R^-1/2), softplus(bias) log-uniform
        in [dt_min, dt_max]."""
        cfg = self.config
        std = cfg.dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(cfg.d_inner) * (math.log(cfg.dt_max) - math.log(cfg.dt_min))
                       + math.log(cfg.dt_min)).clamp(min=cfg.dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))      # inverse softplus

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # The (B, D, L) operands are transposed views of the linear layers' time-major
        # (B, L, D) memory: the fused CPU kernels read them without a copy and return
        # views the same way; the other paths make what they need contiguous themselves.
        cfg = self.config
        x, z = (t.transpose(1, 2) for t in self.in_proj(hidden).chunk(2, dim=-1))  # B x D x L
        x = conv1d_silu(x, self.conv1d)                                # B x D x L, causal
        x_dbl = self.x_proj(x.transpose(1, 2))                         # B x L x (R + 2N)
        dt, B, C = torch.split(x_dbl, [cfg.dt_rank, cfg.d_state, cfg.d_state], dim=-1)
        delta = (dt @ self.dt_proj.weight.t()).transpose(1, 2)         # B x D x L, bias in scan
        A = -torch.exp(self.A_log.float())                             # D x N
        y = selective_scan(x, delta, A, B.transpose(1, 2), C.transpose(1, 2), self.D.float(),
                           z=z, delta_bias=self.dt_proj.bias.float(),
                           delta_softplus=True)                        # B x D x L
        return self.out_proj(y.transpose(1, 2))                        # B x L x d_model
