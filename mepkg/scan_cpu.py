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
def _softplus(x):
    # torch.nn.functional.softplus with threshold 20
    return x if x > 20 else math.log1p(math.exp(x))


@_jit
def _sigmoid(x, one):
    # one: 1 in x's float type, so float32 stays float32 (a bare 1 promotes to float64)
    return one / (one + math.exp(-x))


@_jit
def scan_forward_kernel(u, delta, A, Bt, Ct, D, z, delta_bias, softplus, has_z, y, b0, b1):
    """y[b, d, t] = (C_t . h_t + D_d u_t) * silu(z_t) for b in [b0, b1), h_0 = 0,
    h_t = exp(delta_t A_d) * h_{t-1} + delta_t u_t B_t, delta_t = softplus?(delta + bias).

    u, delta, z, y: (B, D, L); A: (D, N); Bt, Ct: (B, L, N) (time-major so the
    loop over N is contiguous); D, delta_bias: (D,).
    """
    _, n_chan, length = u.shape
    n_state = A.shape[1]
    h = np.empty(n_state, dtype=y.dtype)
    zero, one = y.dtype.type(0), y.dtype.type(1)
    for b in range(b0, b1):
        for d in range(n_chan):
            h[:] = 0
            for t in range(length):
                dt = delta[b, d, t] + delta_bias[d]
                if softplus:
                    dt = _softplus(dt)
                dtu = dt * u[b, d, t]
                acc = zero
                for n in range(n_state):              # vectorised over N
                    h[n] = _exp(dt * A[d, n]) * h[n] + dtu * Bt[b, t, n]
                    acc += Ct[b, t, n] * h[n]
                out = acc + D[d] * u[b, d, t]
                if has_z:
                    zt = z[b, d, t]
                    out *= zt * _sigmoid(zt, one)
                y[b, d, t] = out


@_jit
def scan_backward_kernel(u, delta, A, Bt, Ct, D, z, delta_bias, softplus, has_z, dy,
                         du, ddelta, dA_b, dBt, dCt, dD_b, dz, dbias_b, b0, b1):
    """Gradients of scan_forward_kernel's y for b in [b0, b1), given dy = dL/dy.

    Writes du, ddelta, dz (B, D, L), and the per-batch-element parts dA_b (B, D, N),
    dD_b, dbias_b (B, D) (summed over B by the caller). Accumulates dBt, dCt
    (B, L, N, zeroed by the caller) over channels. States are recomputed, not stored:
    hs[t + 1] = h_t, dAs[t] = exp(delta_t A_d), ys[t] = C_t . h_t + D_d u_t, for one
    channel at a time.
    """
    _, n_chan, length = u.shape
    n_state = A.shape[1]
    zero, one = dy.dtype.type(0), dy.dtype.type(1)
    hs = np.zeros((length + 1, n_state), dtype=dy.dtype)  # hs[0] = h_0 = 0
    dAs = np.empty((length, n_state), dtype=dy.dtype)
    dts = np.empty(length, dtype=dy.dtype)
    ys = np.empty(length, dtype=dy.dtype)                 # y before the gate
    g = np.empty(n_state, dtype=dy.dtype)
    for b in range(b0, b1):
        for d in range(n_chan):
            # recompute the states
            for t in range(length):
                dt = delta[b, d, t] + delta_bias[d]
                if softplus:
                    dt = _softplus(dt)
                dts[t] = dt
                dtu = dt * u[b, d, t]
                acc = zero
                for n in range(n_state):
                    a = _exp(dt * A[d, n])
                    dAs[t, n] = a
                    h = a * hs[t, n] + dtu * Bt[b, t, n]
                    hs[t + 1, n] = h
                    acc += Ct[b, t, n] * h
                ys[t] = acc + D[d] * u[b, d, t]
            # adjoint, backwards in time: g = dL/dh_t
            g[:] = 0
            dD_acc = zero
            dbias_acc = zero
            for t in range(length - 1, -1, -1):
                ut = u[b, d, t]
                dt = dts[t]
                dyt = dy[b, d, t]
                if has_z:                               # y = y_ssm * silu(z)
                    zt = z[b, d, t]
                    sig = _sigmoid(zt, one)
                    dz[b, d, t] = dyt * ys[t] * sig * (one + zt * (one - sig))
                    dyt = dyt * zt * sig
                dD_acc += dyt * ut
                dtu = dt * ut
                du_acc = dyt * D[d]
                ddt_acc = zero
                for n in range(n_state):                # vectorised over N
                    gn = g[n] + dyt * Ct[b, t, n]       # C_t dy_t + dA_{t+1} g_{t+1}
                    dCt[b, t, n] += dyt * hs[t + 1, n]
                    dBt[b, t, n] += gn * dtu
                    du_acc += gn * dt * Bt[b, t, n]
                    via_a = gn * dAs[t, n] * hs[t, n]   # dL/d(delta_t A) per state
                    ddt_acc += gn * ut * Bt[b, t, n] + via_a * A[d, n]
                    dA_b[b, d, n] += via_a * dt
                    g[n] = gn * dAs[t, n]
                du[b, d, t] = du_acc
                if softplus:
                    x = delta[b, d, t] + delta_bias[d]
                    if x <= 20:
                        ddt_acc *= _sigmoid(x, one)
                ddelta[b, d, t] = ddt_acc
                dbias_acc += ddt_acc
            dD_b[b, d] = dD_acc
            dbias_b[b, d] = dbias_acc


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


def _np(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    return t.detach().to(dtype).contiguous().numpy()


class FusedSelectiveScan(torch.autograd.Function):
    """autograd Function around the kernels; inputs as ``fused_selective_scan``."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        dtype = u.dtype
        batch, n_chan, length = u.shape
        arrs = _prepare(dtype, u, delta, A, B, C, D, z, delta_bias)
        y = torch.empty(batch, n_chan, length, dtype=dtype)
        _run_split(scan_forward_kernel, batch, *arrs, bool(delta_softplus), z is not None,
                   y.numpy())
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        ctx.delta_softplus = bool(delta_softplus)
        return y

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, B, C, D, z, delta_bias = ctx.saved_tensors
        dtype = u.dtype
        batch, n_chan, length = u.shape
        n_state = A.shape[1]
        arrs = _prepare(dtype, u, delta, A, B, C, D, z, delta_bias)
        new = lambda *shape: torch.empty(*shape, dtype=dtype)  # noqa: E731
        du, ddelta, dz = new(batch, n_chan, length), new(batch, n_chan, length), new(
            batch, n_chan, length)
        dA_b, dD_b, dbias_b = new(batch, n_chan, n_state), new(batch, n_chan), new(batch, n_chan)
        dA_b.zero_()
        dBt = torch.zeros(batch, length, n_state, dtype=dtype)
        dCt = torch.zeros(batch, length, n_state, dtype=dtype)
        _run_split(scan_backward_kernel, batch, *arrs, ctx.delta_softplus, z is not None,
                   _np(dy, dtype), du.numpy(), ddelta.numpy(), dA_b.numpy(), dBt.numpy(),
                   dCt.numpy(), dD_b.numpy(), dz.numpy(), dbias_b.numpy())
        cast = lambda g, like: None if like is None else g.to(like.dtype)  # noqa: E731
        return (cast(du, u), cast(ddelta, delta), cast(dA_b.sum(0), A),
                cast(dBt.transpose(1, 2), B), cast(dCt.transpose(1, 2), C),
                cast(dD_b.sum(0), D), cast(dz, z), cast(dbias_b.sum(0), delta_bias), None)


def _prepare(dtype, u, delta, A, B, C, D, z, delta_bias):
    n_chan = u.shape[1]
    zeros = torch.zeros(n_chan, dtype=dtype)
    return (_np(u, dtype), _np(delta, dtype), _np(A, dtype),
            _np(B.transpose(1, 2), dtype), _np(C.transpose(1, 2), dtype),      # B x L x N
            _np(D if D is not None else zeros, dtype),
            _np(z, dtype) if z is not None else np.zeros((0, 0, 0), dtype=_np(zeros, dtype).dtype),
            _np(delta_bias if delta_bias is not None else zeros, dtype))


def fused_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                         delta_softplus=False):
    """Selective scan on CPU tensors (float32 fast; float64 exact), fused forward and
    backward: same arguments and result as ``mepkg.mamba.selective_scan_reference``."""
    if u.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"fused_selective_scan takes float32 or float64, got {u.dtype}")
    return FusedSelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
