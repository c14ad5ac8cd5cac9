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
def _pre_activation(x, w_t, bias, b, t, d0, out):
    """out[j] = bias[d] + sum_k w[d, k] x[b, t - K + 1 + k, d] for d = d0 + j (x = 0 before
    t 0): the causal convolution at step t, before the silu, vectorised over channels."""
    width = w_t.shape[0]
    w = out.shape[0]
    for j in range(w):
        out[j] = bias[d0 + j]
    for k in range(width):
        s = t - (width - 1) + k
        if s >= 0:
            xr = x[b, s, d0:d0 + w]
            wr = w_t[k, d0:d0 + w]
            for j in range(w):
                out[j] += wr[j] * xr[j]


@_jit
def conv_forward_kernel(x, w_t, bias, y, block, i0, i1):
    """y[b, t, d] = silu(bias[d] + sum_k w_t[k, d] x[b, t - K + 1 + k, d]), x = 0 before t 0,
    for the tasks i in [i0, i1): batch element i // n_blocks, the (i % n_blocks)-th
    block of ``block`` channels. Time-major: x, y (B, L, D); w_t (K, D), the Conv1d
    weight transposed."""
    _, length, n_chan = x.shape
    n_blocks = (n_chan + block - 1) // block
    one = y.dtype.type(1)
    for i in range(i0, i1):
        b, d0 = i // n_blocks, (i % n_blocks) * block
        w = min(block, n_chan - d0)
        for t in range(length):
            yr = y[b, t, d0:d0 + w]
            _pre_activation(x, w_t, bias, b, t, d0, yr)
            for j in range(w):
                p = yr[j]
                yr[j] = p / (one + _exp(-p))


@_jit
def conv_backward_kernel(x, w_t, bias, dy, dx, dw_b, dbias_b, block, i0, i1):
    """Gradients of conv_forward_kernel for its tasks i in [i0, i1): dx (B, L, D) and the
    per-batch-element dw_b (B, K, D), dbias_b (B, D) (summed over B by the caller);
    every task writes its own elements."""
    _, length, n_chan = x.shape
    width = w_t.shape[0]
    n_blocks = (n_chan + block - 1) // block
    zero, one = dy.dtype.type(0), dy.dtype.type(1)
    dp_full = np.empty(block, dtype=dy.dtype)           # dL/d(pre-activation)
    for i in range(i0, i1):
        b, d0 = i // n_blocks, (i % n_blocks) * block
        w = min(block, n_chan - d0)
        dp = dp_full[:w]
        dx[b, :, d0:d0 + w] = zero
        dw_b[b, :, d0:d0 + w] = zero
        dbr = dbias_b[b, d0:d0 + w]
        dbr[:] = zero
        for t in range(length):
            _pre_activation(x, w_t, bias, b, t, d0, dp)
            dyr = dy[b, t, d0:d0 + w]
            for j in range(w):                          # silu'(p) = s (1 + p (1 - s))
                p = dp[j]
                s = one / (one + _exp(-p))
                g = dyr[j] * s * (one + p * (one - s))
                dp[j] = g
                dbr[j] += g
            for k in range(width):
                src = t - (width - 1) + k
                if src >= 0:
                    xr = x[b, src, d0:d0 + w]
                    dxr = dx[b, src, d0:d0 + w]
                    wr = w_t[k, d0:d0 + w]
                    dwr = dw_b[b, k, d0:d0 + w]
                    for j in range(w):
                        dxr[j] += wr[j] * dp[j]
                        dwr[j] += dp[j] * xr[j]


def channel_block(batch: int, n_chan: int, threads: int) -> int:
    """Channels per task: all of them (one task per batch element, the longest vector
    loops) where the batch gives every thread work, else blocks of a multiple of 8
    channels so that batch x blocks >= threads. The tasks' results do not depend on
    the blocks: the convolution has no sum over channels."""
    per_element = -(-threads // batch)                 # blocks each batch element needs
    if per_element <= 1:
        return n_chan
    return min(n_chan, max(8, (-(-n_chan // per_element) + 7) // 8 * 8))


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
        block = channel_block(x.shape[0], x.shape[1], torch.get_num_threads())
        _run_split(conv_forward_kernel, x.shape[0] * -(-x.shape[1] // block), xa.numpy(),
                   w_t.numpy(), ba.numpy(), y.numpy(), block)
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
        block = channel_block(batch, n_chan, torch.get_num_threads())
        _run_split(conv_backward_kernel, batch * -(-n_chan // block), xa.numpy(),
                   w_t.numpy(), ba.numpy(),
                   dy.detach().transpose(1, 2).to(xa.dtype).contiguous().numpy(), dx.numpy(),
                   dw_b.numpy(), dbias_b.numpy(), block)
        w_dtype, b_dtype = ctx.dtypes
        return (dx.transpose(1, 2), dw_b.sum(0).t().reshape(ctx.weight_shape).to(w_dtype),
                dbias_b.sum(0).to(b_dtype))


def causal_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """silu of the causal depthwise convolution of x (B, D, L) with Conv1d weights
    (D, 1, K) and bias (D,): (B, D, L), fused for CPU float32/float64 tensors."""
    return FusedCausalConvSiLU.apply(x, weight, bias)
