"""Fused causal depthwise Conv1d + SiLU for CPU tensors (the conv in front of Mamba's scan).

``silu(conv1d(x, weight, bias, padding=K-1, groups=D)[..., :L])`` as one numba kernel
forward and one backward (pre-activations recomputed, not stored), like the
``causal_conv1d`` package mamba_ssm uses on CUDA. On CPU torch runs this as a
depthwise mkldnn convolution whose backward alone took ~1-2 ms per Mamba block
at the synthetic config's sizes (batch 32, 64-128 channels, k 30): as much as
the fused scan. Shapes: x, y (B, D, L); weight (D, 1, K) (Conv1d's); bias (D,).
"""

from __future__ import annotations

import numpy as np
import torch

from mepkg.scan_cpu import _exp, _jit, _run_split


@_jit(inline="always")
def _pre_activation(xr, w, bias, d, out):
    """out[t] = bias[d] + sum_k w[d, k] xr[t - K + 1 + k] (xr = 0 before t 0): channel
    d's causal convolution, before the silu."""
    width = w.shape[1]
    for t in range(out.shape[0]):
        out[t] = bias[d]
    for k in range(width):
        shift = width - 1 - k
        wk = w[d, k]
        for t in range(shift, out.shape[0]):            # vectorised over time
            out[t] += wk * xr[t - shift]


@_jit
def conv_forward_kernel(x, w, bias, y, b0, b1):
    """y[b, d, t] = silu(bias[d] + sum_k w[d, k] x[b, d, t - K + 1 + k]), x = 0 before t 0."""
    _, n_chan, length = x.shape
    one = y.dtype.type(1)
    for b in range(b0, b1):
        for d in range(n_chan):
            yr = y[b, d]
            _pre_activation(x[b, d], w, bias, d, yr)
            for t in range(length):
                p = yr[t]
                yr[t] = p / (one + _exp(-p))


@_jit
def conv_backward_kernel(x, w, bias, dy, dx, dw_b, dbias_b, b0, b1):
    """Gradients of conv_forward_kernel for b in [b0, b1): dx (B, D, L) and the
    per-batch-element dw_b (B, D, K), dbias_b (B, D) (summed over B by the caller)."""
    _, n_chan, length = x.shape
    width = w.shape[1]
    zero, one = dy.dtype.type(0), dy.dtype.type(1)
    dp = np.empty(length, dtype=dy.dtype)              # dL/d(pre-activation)
    for b in range(b0, b1):
        for d in range(n_chan):
            xr = x[b, d]
            _pre_activation(xr, w, bias, d, dp)
            db = zero
            for t in range(length):                     # silu'(p) = s (1 + p (1 - s))
                p = dp[t]
                s = one / (one + _exp(-p))
                dp[t] = dy[b, d, t] * s * (one + p * (one - s))
                db += dp[t]
            dbias_b[b, d] = db
            dxr = dx[b, d]
            for t in range(length):
                dxr[t] = 0
            for k in range(width):
                shift = width - 1 - k
                wk = w[d, k]
                acc = zero
                for t in range(shift, length):
                    dxr[t - shift] += wk * dp[t]
                    acc += dp[t] * xr[t - shift]
                dw_b[b, d, k] = acc


class FusedCausalConvSiLU(torch.autograd.Function):
    """autograd Function around the two kernels; see ``causal_conv1d_silu``."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        dtype = x.dtype
        xa = x.detach().contiguous()
        w = weight.detach().to(dtype).reshape(weight.shape[0], -1).contiguous()   # D x K
        ba = bias.detach().to(dtype).contiguous()
        y = torch.empty_like(xa)
        _run_split(conv_forward_kernel, x.shape[0], xa.numpy(), w.numpy(), ba.numpy(), y.numpy())
        ctx.save_for_backward(xa, w, ba)
        ctx.weight_shape, ctx.dtypes = weight.shape, (weight.dtype, bias.dtype)
        return y

    @staticmethod
    def backward(ctx, dy):
        xa, w, ba = ctx.saved_tensors
        batch, n_chan, _ = xa.shape
        dx = torch.empty_like(xa)
        dw_b = torch.empty(batch, n_chan, w.shape[1], dtype=xa.dtype)
        dbias_b = torch.empty(batch, n_chan, dtype=xa.dtype)
        _run_split(conv_backward_kernel, batch, xa.numpy(), w.numpy(), ba.numpy(),
                   dy.detach().to(xa.dtype).contiguous().numpy(), dx.numpy(), dw_b.numpy(),
                   dbias_b.numpy())
        w_dtype, b_dtype = ctx.dtypes
        return (dx, dw_b.sum(0).reshape(ctx.weight_shape).to(w_dtype),
                dbias_b.sum(0).to(b_dtype))


def causal_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """silu of the causal depthwise convolution of x (B, D, L) with Conv1d weights
    (D, 1, K) and bias (D,): (B, D, L), fused for CPU float32/float64 tensors."""
    return FusedCausalConvSiLU.apply(x, weight, bias)
