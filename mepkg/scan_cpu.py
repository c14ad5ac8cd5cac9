"""Fused selective scan for CPU tensors: numba kernels behind a torch autograd Function.

One call per Mamba block (and direction) does the whole scan, as mamba_ssm's CUDA
kernel does:

- forward: for each (batch, channel) pair the state h (N values) stays in cache
  while the loop runs over time; only y (B, D, L) is written. Nothing of size
  (B, L, D, N) is materialised and autograd records one node, not ~4 per step.
- backward: recomputes the pair's states h_1..h_L and exp(delta_t A) into an
  (L + 1) x N scratch (a few KB), then runs the adjoint backwards in time,
  g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}, accumulating every gradient.

delta_bias + softplus on the way in and the D skip and silu(z) gate on the way
out are fused too (their derivatives in the same loops), so the Mamba block
costs one forward and one backward call here instead of a dozen torch ops.

Why numba, and how it is fast: the work is B x D x L x N updates, each with one
exp(delta_t A_n). A scalar loop calling libm's expf runs ~7.8 ns per update, no
faster than the torch loop. ``_exp32`` below is a branch-free Cephes-style
polynomial exp (x = k ln2 + r, degree-6 polynomial for exp(r), 2^k assembled
from the exponent bits by an LLVM bitcast), so LLVM vectorises the inner loop
over N under fastmath (no Intel SVML needed). numba installs from a wheel
(no compiler on the user's machine), compiles on first use (seconds) and caches
the machine code next to this file (or in numba's user cache directory when
the package directory is read-only; without any cache it just compiles again).

Threads: kernels release the GIL; with torch.get_num_threads() > 1 the batch is
split into that many contiguous ranges run on a small thread pool, so the one
knob users already set (torch.set_num_threads, TrainConfig.threads) also sets
the scan's parallelism. Each batch element is computed by one thread and
per-element partial sums (dA, dD, d delta_bias) are reduced afterwards, so results
are identical for any thread count.

Fast-exp accuracy: relative error <= 2e-7 on [-87, 88]; below -87 it returns
~1e-38 instead of a denormal or 0, above 88 a large finite number instead of inf.
float64 inputs use math.exp (scalar, exact): a path for gradcheck, not for speed.

Shapes (mamba_ssm layout): u, delta, z, y (B, D, L); A (D, N); B, C (B, N, L);
D, delta_bias (D,). B batch, D channels (d_inner), L steps, N state size.
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch
import torch.nn.functional as F
from llvmlite import ir
from numba import types
from numba.core.errors import NumbaWarning
from numba.extending import intrinsic, overload

_F32 = np.float32
_LOG2E = _F32(1.4426950408889634)
_LN2_HI = _F32(0.693359375)            # ln 2 split in two so k * ln2 stays exact
_LN2_LO = _F32(-2.12194440e-4)
_EXP_LO, _EXP_HI = _F32(-87.0), _F32(88.0)  # 2^k stays a normal float32
_HALF, _ONE = _F32(0.5), _F32(1.0)
# Cephes expf: exp(r) ~ 1 + r + r^2 P(r) on |r| <= ln2 / 2
_P0, _P1, _P2 = _F32(1.9875691500e-4), _F32(1.3981999507e-3), _F32(8.3334519073e-3)
_P3, _P4, _P5 = _F32(4.1665795894e-2), _F32(1.6666665459e-1), _F32(5.0000001201e-1)

# no 'nnan'/'ninf': NaN and inf inputs propagate as in torch; reassoc lets the
# sums over N vectorise, contract allows FMAs
_FASTMATH = {"reassoc", "contract", "nsz", "arcp", "afn"}


@intrinsic
def _i32_bits_as_f32(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (a free LLVM bitcast, vectorisable)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


def _exp(x):
    """exp for the kernels: a vectorisable polynomial for float32, math.exp otherwise."""
    return math.exp(x)


@overload(_exp, fastmath=_FASTMATH)
def _exp_overload(x):
    if x == types.float32:
        def exp32(x):
            x = min(max(x, _EXP_LO), _EXP_HI)
            kf = np.floor(x * _LOG2E + _HALF)                   # x = k ln2 + r
            r = x - kf * _LN2_HI - kf * _LN2_LO
            p = (((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5) * (r * r) + r + _ONE
            return p * _i32_bits_as_f32(np.int32((np.int32(kf) + 127) << 23))  # times 2^k
        return exp32
    return lambda x: math.exp(x)


def _jit(fn):
    """njit with on-disk caching; without a writable cache location compile each run."""
    opts = dict(nogil=True, fastmath=_FASTMATH, error_model="numpy")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumbaWarning)
            return numba.njit(cache=True, **opts)(fn)
    except RuntimeError:           # "cannot cache ... no locator available"
        return numba.njit(**opts)(fn)


@_jit
def fast_exp_array(x):
    """The kernels' exp applied to a 1-D array (for tests)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _exp(x[i])
    return out


@_jit
def scan_forward_kernel(dt, u, A_t, Bt, Ct, ys, block, b0, b1):
    """ys[b, t] = C_t . h_t for b in [b0, b1), where h_0 = 0 and
    h_t[n, d] = exp(dt_t[d] A[d, n]) h_{t-1}[n, d] + dt_t[d] u_t[d] B_t[n].

    dt, u, ys: (B, L, D) time-major, channels last; A_t: (N, D); Bt, Ct: (B, L, N).
    The innermost loop runs over ``block`` channels (vectorised), so the state
    of one block, N x block, stays in L1 while the loop runs over time.
    """
    _, length, n_chan = u.shape
    n_state = A_t.shape[0]
    h = np.empty((n_state, block), dtype=ys.dtype)
    dtu = np.empty(block, dtype=ys.dtype)
    acc = np.empty(block, dtype=ys.dtype)
    for b in range(b0, b1):
        for d0 in range(0, n_chan, block):
            w = min(block, n_chan - d0)
            h[:] = 0
            for t in range(length):
                dtr = dt[b, t, d0:d0 + w]
                ur = u[b, t, d0:d0 + w]
                for j in range(w):
                    dtu[j] = dtr[j] * ur[j]
                    acc[j] = 0
                for n in range(n_state):
                    Bn = Bt[b, t, n]
                    Cn = Ct[b, t, n]
                    Ar = A_t[n, d0:d0 + w]
                    hr = h[n]
                    for j in range(w):                  # vectorised over channels
                        hv = _exp(dtr[j] * Ar[j]) * hr[j] + dtu[j] * Bn
                        hr[j] = hv
                        acc[j] += Cn * hv
                ys[b, t, d0:d0 + w] = acc[:w]


@_jit
def scan_backward_kernel(dt, u, A_t, Bt, Ct, dys, ddt, du, dA_b, dBt, dCt, block, b0, b1):
    """Gradients of scan_forward_kernel's ys for b in [b0, b1), given dys = dL/dys.

    Writes ddt, du (B, L, D) and the per-batch-element dA_b (B, N, D) (summed over B
    by the caller); accumulates dBt, dCt (B, L, N, zeroed by the caller) over
    channels. Per block of channels the states are recomputed into hs (L + 1, N,
    block), hs[t + 1] = h_t, not stored by the forward; then the adjoint runs
    backwards in time: g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1} (g holds the
    second term), dB_t += g_t dt_t u_t, dC_t += dy_t h_t, du_t = dt_t sum_n g_t B_t,
    ddt_t = u_t sum_n g_t B_t + sum_n g_t exp(dt_t A) h_{t-1} A,
    dA += g_t exp(dt_t A) h_{t-1} dt_t.
    """
    _, length, n_chan = u.shape
    n_state = A_t.shape[0]
    zero = dys.dtype.type(0)
    hs = np.zeros((length + 1, n_state, block), dtype=dys.dtype)   # hs[0] = h_0 = 0
    g = np.empty((n_state, block), dtype=dys.dtype)
    dtu = np.empty(block, dtype=dys.dtype)
    gB = np.empty(block, dtype=dys.dtype)
    sA = np.empty(block, dtype=dys.dtype)
    for b in range(b0, b1):
        for d0 in range(0, n_chan, block):
            w = min(block, n_chan - d0)
            for t in range(length):                     # recompute the states
                dtr = dt[b, t, d0:d0 + w]
                ur = u[b, t, d0:d0 + w]
                for j in range(w):
                    dtu[j] = dtr[j] * ur[j]
                for n in range(n_state):
                    Bn = Bt[b, t, n]
                    Ar = A_t[n, d0:d0 + w]
                    h0 = hs[t, n]
                    h1 = hs[t + 1, n]
                    for j in range(w):
                        h1[j] = _exp(dtr[j] * Ar[j]) * h0[j] + dtu[j] * Bn
            g[:] = 0
            for t in range(length - 1, -1, -1):         # adjoint, backwards in time
                dtr = dt[b, t, d0:d0 + w]
                ur = u[b, t, d0:d0 + w]
                dyr = dys[b, t, d0:d0 + w]
                for j in range(w):
                    dtu[j] = dtr[j] * ur[j]
                    gB[j] = 0
                    sA[j] = 0
                for n in range(n_state):
                    Bn = Bt[b, t, n]
                    Cn = Ct[b, t, n]
                    Ar = A_t[n, d0:d0 + w]
                    dAr = dA_b[b, n, d0:d0 + w]
                    gr = g[n]
                    h0 = hs[t, n]
                    h1 = hs[t + 1, n]
                    dC_acc = zero
                    dB_acc = zero
                    for j in range(w):                  # vectorised over channels
                        gn = gr[j] + dyr[j] * Cn
                        a = _exp(dtr[j] * Ar[j])
                        via_a = gn * a * h0[j]          # dL/d(dt_t A) per state
                        dC_acc += dyr[j] * h1[j]
                        dB_acc += gn * dtu[j]
                        gB[j] += gn * Bn
                        sA[j] += via_a * Ar[j]
                        dAr[j] += via_a * dtr[j]
                        gr[j] = gn * a
                    dCt[b, t, n] += dC_acc
                    dBt[b, t, n] += dB_acc
                for j in range(w):
                    du[b, t, d0 + j] = dtr[j] * gB[j]
                    ddt[b, t, d0 + j] = ur[j] * gB[j] + sA[j]


_pool: ThreadPoolExecutor | None = None


def _run_split(kernel, batch: int, *args) -> None:
    """Run ``kernel(*args, b0, b1)`` over the batch, split across torch.get_num_threads()."""
    global _pool
    threads = min(torch.get_num_threads(), batch)
    if threads <= 1:
        kernel(*args, 0, batch)
        return
    if _pool is None or _pool._max_workers < threads - 1:
        _pool = ThreadPoolExecutor(max_workers=max(threads - 1, os.cpu_count() or 1),
                                   thread_name_prefix="mepkg-scan")
    bounds = [batch * i // threads for i in range(threads + 1)]
    futures = [_pool.submit(kernel, *args, bounds[i], bounds[i + 1]) for i in range(1, threads)]
    kernel(*args, bounds[0], bounds[1])
    for f in futures:
        f.result()


SCRATCH_BYTES = 256 * 1024  # recomputed states of one channel block: fits L2


def channel_block(n_chan: int, length: int, n_state: int, itemsize: int = 4) -> int:
    """Channels per block: a multiple of 8 (one AVX register of float32) whose
    recomputed states, (L + 1) x N x block, fit in SCRATCH_BYTES; at most n_chan."""
    block = SCRATCH_BYTES // ((length + 1) * n_state * itemsize) // 8 * 8
    return max(8, min(block, n_chan))


def _time_major(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.detach().to(dtype).transpose(1, 2).contiguous()         # B x D x L -> B x L x D


class FusedSelectiveScan(torch.autograd.Function):
    """autograd Function around the kernels; inputs as ``fused_selective_scan``.

    The kernels do the scan, ys = C . h; the O(B D L) parts (bias and softplus of
    delta, the D skip, the silu(z) gate and their derivatives) are vectorised torch
    ops here, inside the one autograd node. Saved for the backward: the inputs in
    the kernels' layout and y before the gate, all O(B L (D + N)); no states.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        dtype = u.dtype
        batch, n_chan, length = u.shape
        with torch.no_grad():
            x = delta.to(dtype)
            if delta_bias is not None:
                x = x + delta_bias.to(dtype)[None, :, None]
            dt = F.softplus(x) if delta_softplus else x                   # B x D x L
            dt_t, u_t = _time_major(dt, dtype), _time_major(u, dtype)     # B x L x D
            A_t = A.detach().to(dtype).t().contiguous()                   # N x D
            B_t, C_t = _time_major(B, dtype), _time_major(C, dtype)       # B x L x N
            ys = torch.empty(batch, length, n_chan, dtype=dtype)          # B x L x D
            block = channel_block(n_chan, length, A.shape[1], ys.element_size())
            _run_split(scan_forward_kernel, batch, dt_t.numpy(), u_t.numpy(), A_t.numpy(),
                       B_t.numpy(), C_t.numpy(), ys.numpy(), block)
            y = ys.transpose(1, 2)                                         # B x D x L
            if D is not None:
                y = y + u * D[None, :, None]
            y_pre = y
            if z is not None:
                y = y * F.silu(z)
        ctx.save_for_backward(dt_t, u_t, A_t, B_t, C_t, D, z,
                              y_pre if z is not None else None)
        ctx.flags = (delta_softplus, delta_bias is not None, block)
        ctx.dtypes = [None if t is None else t.dtype for t in (u, delta, A, B, C, D, delta_bias)]
        return y.contiguous()

    @staticmethod
    def backward(ctx, dy):
        dt_t, u_t, A_t, B_t, C_t, D, z, y_pre = ctx.saved_tensors
        delta_softplus, has_bias, block = ctx.flags
        dtype = u_t.dtype
        batch, length, n_chan = u_t.shape
        n_state = A_t.shape[0]
        dz = None
        if z is not None:                               # y = y_pre * silu(z)
            sig = torch.sigmoid(z)
            dz = dy * y_pre * sig * (1 + z * (1 - sig))
            dy = dy * z * sig
        dy_t = _time_major(dy, dtype)                                       # B x L x D
        ddt = torch.empty(batch, length, n_chan, dtype=dtype)               # B x L x D
        du = torch.empty(batch, length, n_chan, dtype=dtype)
        dA_b = torch.zeros(batch, n_state, n_chan, dtype=dtype)             # B x N x D
        dB_t = torch.zeros(batch, length, n_state, dtype=dtype)             # B x L x N
        dC_t = torch.zeros(batch, length, n_state, dtype=dtype)
        _run_split(scan_backward_kernel, batch, dt_t.numpy(), u_t.numpy(), A_t.numpy(),
                   B_t.numpy(), C_t.numpy(), dy_t.numpy(), ddt.numpy(), du.numpy(),
                   dA_b.numpy(), dB_t.numpy(), dC_t.numpy(), block)
        dD = None
        if D is not None:
            dD = (dy_t * u_t).sum((0, 1))
            du += dy_t * D.to(dtype)
        if delta_softplus:                              # softplus' = sigmoid = 1 - exp(-dt)
            ddt *= -torch.expm1(-dt_t)
        dbias = ddt.sum((0, 1)) if has_bias else None
        grads = (du.transpose(1, 2), ddt.transpose(1, 2), dA_b.sum(0).t(), dB_t.transpose(1, 2),
                 dC_t.transpose(1, 2), dD, dbias)
        du, ddelta, dA, dB, dC, dD, dbias = (None if g is None else g.to(to)
                                             for g, to in zip(grads, ctx.dtypes))
        return du, ddelta, dA, dB, dC, dD, dz, dbias, None


def fused_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                         delta_softplus=False):
    """Selective scan on CPU tensors (float32 fast; float64 exact), fused forward and
    backward: same arguments and result as ``mepkg.mamba.selective_scan_reference``."""
    if u.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"fused_selective_scan takes float32 or float64, got {u.dtype}")
    return FusedSelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
