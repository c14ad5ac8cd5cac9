"""Fused causal depthwise Conv1d + SiLU for CPU tensors (the conv in front of Mamba's scan).

``silu(conv1d(x, weight, bias, padding=K-1, groups=D)[..., :L])`` as one numba kernel
forward and one backward (pre-activations recomputed, not stored), like the
``causal_conv1d`` package mamba_ssm uses on CUDA. On CPU torch runs this as a
depthwise mkldnn convolution whose backward alone took ~1-2 ms per Mamba block
at the synthetic config's sizes (batch 32, 64-128 channels, k 30): as much as
the fused scan. Shapes: x, y (B, D, L) (the kernels run time-major, see
``FusedCausalConvSiLU``); weight (D, 1, K) (Conv1d's); bias (D,).
"""

from __future__ import annotations

import numpy as np
import torch

from mepkg.scan_cpu import _exp, _jit, _run_split


@_jit(inline="always")
def _pre_activation(x, w_t, bias, b, t, out):
    """out[d] = bias[d] + sum_k w[d, k] x[b, t - K + 1 + k, d] (x = 0 before t 0): the causal
    convolution at step t, before the silu, vectorised over channels."""
    width = w_t.shape[0]
    for d in range(out.shape[0]):
        out[d] = bias[d]
    for k in range(width):
        s = t - (width - 1) + k
        if s >= 0:
            xr = x[b, s]
            wr = w_t[k]
            for d in range(out.shape[0]):
                out[d] += wr[d] * xr[d]


@_jit
def conv_forward_kernel(x, w_t, bias, y, b0, b1):
    """y[b, t, d] = silu(bias[d] + sum_k w_t[k, d] x[b, t - K + 1 + k, d]), x = 0 before t 0.
    Time-major: x, y (B, L, D); w_t (K, D), the Conv1d weight transposed."""
    _, length, n_chan = x.shape
    one = y.dtype.type(1)
    for b in range(b0, b1):
        for t in range(length):
            yr = y[b, t]
            _pre_activation(x, w_t, bias, b, t, yr)
            for d in range(n_chan):
                p = yr[d]
                yr[d] = p / (one + _exp(-p))


@_jit
def conv_backward_kernel(x, w_t, bias, dy, dx, dw_b, dbias_b, b0, b1):
    """Gradients of conv_forward_kernel for b in [b0, b1): dx (B, L, D) and the
    per-batch-element dw_b (B, K, D), dbias_b (B, D) (summed over B by the caller)."""
    _, length, n_chan = x.shape
    width = w_t.shape[0]
    zero, one = dy.dtype.type(0), dy.dtype.type(1)
    dp = np.empty(n_chan, dtype=dy.dtype)              # dL/d(pre-activation)
    for b in range(b0, b1):
        dx[b] = zero
        dw_b[b] = zero
        dbr = dbias_b[b]
        dbr[:] = zero
        for t in range(length):
            _pre_activation(x, w_t, bias, b, t, dp)
            dyr = dy[b, t]
            for d in range(n_chan):                     # silu'(p) = s (1 + p (1 - s))
                p = dp[d]
                s = one / (one + _exp(-p))
                g = dyr[d] * s * (one + p * (one - s))
                dp[d] = g
                dbr[d] += g
            for k in range(width):
                src = t - (width - 1) + k
                if src >= 0:
                    xr = x[b, src]
                    dxr = dx[b, src]
                    wr = w_t[k]
                    dwr = dw_b[b, k]
                    for d in range(n_chan):
                        dxr[d] += wr[d] * dp[d]
                        dwr[d] += dp[d] * xr[d]


class FusedCausalConvSiLU(torch.autograd.Function):
    """autograd Function around the two kernels; see ``causal_conv1d_silu``. The kernels
    work time-major, (B, L, D), like the scan's: the output is a (B, D, L) view of
    time-major memory, and so is the input gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        dtype = x.dtype
        xa = x.detach().transpose(1, 2).contiguous()                    # B x L x D
        w_t = weight.detach().to(dtype).reshape(weight.shape[0], -1).t().contiguous()  # K x D
        ba = bias.detach().to(dtype).contiguous()
        y = torch.empty_like(xa)
        _run_split(conv_forward_kernel, x.shape[0], xa.numpy(), w_t.numpy(), ba.numpy(),
                   y.numpy())
        ctx.save_for_backward(xa, w_t, ba)
        ctx.weight_shape, ctx.dtypes = weight.shape, (weight.dtype, bias.dtype)
        return y.transpose(1, 2)                                        # B x D x L

    @staticmethod
    def backward(ctx, dy):
        xa, w_t, ba = ctx.saved_tensors
        batch, _, n_chan = xa.shape
        dx = torch.empty_like(xa)
        dw_b = torch.empty(batch, w_t.shape[0], n_chan, dtype=xa.dtype)
        dbias_b = torch.empty(batch, n_chan, dtype=xa.dtype)
        _run_split(conv_backward_kernel, batch, xa.numpy(), w_t.numpy(), ba.numpy(),
                   dy.detach().transpose(1, 2).to(xa.dtype).contiguous().numpy(), dx.numpy(),
                   dw_b.numpy(), dbias_b.numpy())
        w_dtype, b_dtype = ctx.dtypes
        return (dx.transpose(1, 2), dw_b.sum(0).t().reshape(ctx.weight_shape).to(w_dtype),
                dbias_b.sum(0).to(b_dtype))


def causal_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """silu of the causal depthwise convolution of x (B, D, L) with Conv1d weights
    (D, 1, K) and bias (D,): (B, D, L), fused for CPU float32/float64 tensors."""
    return FusedCausalConvSiLU.apply(x, weight, bias)
