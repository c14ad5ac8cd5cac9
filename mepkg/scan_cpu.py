"""Fused selective scan for CPU tensors: numba kernels behind a torch autograd Function.

One call per Mamba block (and direction) does the whole scan, as mamba_ssm's CUDA
kernel does:

- forward: per batch element and block of channels, the state h (N x block)
  stays in L1 while the loop runs over time; only y is written.
  Nothing of size (B, L, D, N) is materialised and autograd records one node,
  not ~4 per step;
- backward: recomputes the block's states h_1..h_L and exp(delta_t A) into two
  (L + 1) x N x block scratches (<= 256 KB each, see ``channel_block``), then runs the adjoint backwards in
  time, g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}, accumulating every gradient.

The D skip and the silu(z) gate (and their derivatives, and softplus's) are in
the kernels too; only delta + delta_bias and its softplus are torch ops.

Why this design (measured on a shared 2-vCPU AVX-512 machine, 1 thread, batch 32,
float32). The work is B x D x L x N state updates, each with one exp(delta A):
at the paper's fast path (D 256, L 30, N 64) 15.7M per call. A scalar numba loop
calling libm's expf (~7.8 ns per update) is no faster than the torch loop, and
numba vectorises exp only with Intel's SVML, absent from the wheels. So:

- ``_exp`` is a branch-free Cephes-style polynomial (x = k ln2 + r, degree-6
  polynomial for exp(r), 2^k assembled in the exponent bits by an LLVM bitcast)
  that LLVM vectorises under fastmath (relative error <= 3e-7);
- the innermost loops run over channels, not over the state: every channel has
  its own delta, all share B_t[n] and C_t[n], so the vector lanes need no
  horizontal sums, and a block of 32-128 channels is a long, contiguous loop
  even at the CPU config's N = 16 (vectorising over N was 2-3x slower there);
- recomputing the states in the backward instead of storing them keeps the
  working set in L2; autograd's copies of every step's B x D x N tensors were
  most of the loop's backward.

Result, kernels' forward + backward per call: ~12-20 + 27-50 ms at the paper's
fast path (the reference loop: ~80-200 + 130-300 ms, mepkg's torch loop ~50-100
+ 110-240 ms, all on the same shared machine at different loads); ~0.7 + 1.9 ms
at the CPU config's (D 64, L 30, N 16; the loop ~8 + 18 ms). numba
installs from a wheel (no compiler on the user's machine) and compiles on first
use (~5-12 s, then cached next to this file, or in numba's user cache directory
when the package directory is read-only; without any writable cache it compiles
again each run).

Threads: kernels release the GIL. The work is split into tasks, one per batch
element and block of channels (32 x 8 = 256 tasks per call at the paper's fast
path), and with torch.get_num_threads() > 1 that many threads (the caller and a
small pool) take contiguous chunks of them from a shared counter until none is
left, so a thread that starts late on a busy machine takes fewer: the one knob users
already set (torch.set_num_threads, TrainConfig.threads, --threads) also sets
the kernels' parallelism, and a batch smaller than the thread count (or not a
multiple of it) still keeps every thread busy. Every task writes its own
elements, partial sums included (dA, dD, d delta_bias per batch element; dB, dC
per channel block), reduced afterwards: results are identical for any thread
count. The pool is plain Python threads (blocking, never spinning) rather than a
numba threading layer: numba's OpenMP layer would be a second OpenMP runtime
beside torch's, and its workqueue layer aborts when two threads call a kernel at
once. What else decides whether threads pay: torch's OpenMP workers spin-wait
~3 ms after each torch op by default, taking the cores these threads need (on
the 2-core machine of docs/benchmarks.md 2 threads then ran the scan 10-100x
slower than 1), and sleeping at once costs a wake-up per op: jobs set a short
spin (``mepkg.jobs.OPENMP_WAIT``).

Edge cases of the fast exp: below -87 it returns ~1e-38 instead of a denormal or 0,
above 88 a large finite number instead of inf. float64 inputs use math.exp
(scalar, exact): a path for gradcheck, not for speed.

Layout: ``fused_selective_scan`` takes and returns mamba_ssm's shapes, u, delta,
z, y (B, D, L); A (D, N); B, C (B, N, L); D, delta_bias (D,) (B batch, D channels
(d_inner), L steps, N state size), but the kernels run time-major, on (B, L, D)
and (B, L, N) arrays: the layout of the linear layers around the scan, and the
one in which a step's channels are contiguous. ``Mamba.forward`` passes
transposed views of that memory, so nothing is copied on the way in, and gets
y (and the gradients) back as views the same way; the contiguous (B, D, L)
tensors of the tests are transposed once per call. Doing the transposes in
torch around every call instead costs ~20% of a CPU-model training step.
"""

from __future__ import annotations

import itertools
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


def _jit(fn=None, **extra):
    """njit with on-disk caching; without a writable cache location compile each run.
    ``extra``: more njit options (``@_jit(inline="always")``)."""
    if fn is None:
        return lambda f: _jit(f, **extra)
    opts = dict(nogil=True, fastmath=_FASTMATH, error_model="numpy", **extra)
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


@_jit(inline="always")
def _state_step(Bm, Cm, b, t, A_t, d0, w, dtr, ur, h0, h1, dA, acc, dtu):
    """One step of the recurrence for a block of w channels:
    dA[n, j] = exp(dt_j A[d0 + j, n]), h1[n, j] = dA[n, j] h0[n, j] + dt_j u_j B_t[n] and
    acc[j] = C_t . h1[:, j], with dtr, ur the step's dt and u (h1 may be h0: in place).
    dA None (the forward) skips storing exp(dt A): a separate loop, chosen at compile time.
    Inlined into both kernels, so the loop over channels stays vectorised."""
    for j in range(w):
        dtu[j] = dtr[j] * ur[j]
        acc[j] = 0
    for n in range(A_t.shape[0]):
        Bn = Bm[b, t, n]
        Cn = Cm[b, t, n]
        Ar = A_t[n, d0:d0 + w]
        h0r = h0[n]
        h1r = h1[n]
        if dA is None:                                  # resolved at compile time
            for j in range(w):                          # vectorised over channels
                hv = _exp(dtr[j] * Ar[j]) * h0r[j] + dtu[j] * Bn
                h1r[j] = hv
                acc[j] += Cn * hv
        else:
            ar = dA[n]
            for j in range(w):
                a = _exp(dtr[j] * Ar[j])
                ar[j] = a
                hv = a * h0r[j] + dtu[j] * Bn
                h1r[j] = hv
                acc[j] += Cn * hv


@_jit
def scan_forward_kernel(u, dt, A_t, Bm, Cm, D, z, has_z, y, block, i0, i1):
    """y[b] = (C_t . h_t + D u_t) * silu(z_t) for the tasks i in [i0, i1) (task i: batch
    element i // n_blocks, the (i % n_blocks)-th block of ``block`` channels), where
    h_0 = 0 and h_t[n, d] = exp(dt_t[d] A[d, n]) h_{t-1}[n, d] + dt_t[d] u_t[d] B_t[n].

    Time-major: u, dt (softplus already applied), z, y: (B, L, D); A_t: (N, D), A
    transposed; Bm, Cm: (B, L, N); D: (D,). The blocks are the backward's; the
    innermost loops run over contiguous channels (vectorised) and the block's state,
    N x block, stays in L1 while the loop runs over time.
    """
    _, length, n_chan = u.shape
    n_state = A_t.shape[0]
    n_blocks = (n_chan + block - 1) // block
    zero, one = y.dtype.type(0), y.dtype.type(1)
    h = np.empty((n_state, block), dtype=y.dtype)
    acc = np.empty(block, dtype=y.dtype)
    dtu = np.empty(block, dtype=y.dtype)
    for i in range(i0, i1):
        b, d0 = i // n_blocks, (i % n_blocks) * block
        w = min(block, n_chan - d0)
        h[:] = 0
        for t in range(length):
            ur = u[b, t, d0:d0 + w]
            _state_step(Bm, Cm, b, t, A_t, d0, w, dt[b, t, d0:d0 + w], ur, h, h, None,
                        acc, dtu)
            yr = y[b, t, d0:d0 + w]
            Dr = D[d0:d0 + w]
            if has_z:
                zr = z[b, t, d0:d0 + w]
                for j in range(w):
                    zt = zr[j]
                    yr[j] = (acc[j] + Dr[j] * ur[j]) * (zt / (one + _exp(-zt)))
            else:
                for j in range(w):
                    yr[j] = acc[j] + Dr[j] * ur[j]
    return zero


@_jit
def scan_backward_kernel(u, dt, A_t, Bm, Cm, D, z, has_z, delta, delta_bias, softplus, dy,
                         du, ddelta, dz, dA_b, dB_p, dC_p, dD_b, dbias_b, block, i0, i1):
    """Gradients of scan_forward_kernel's y for the tasks i in [i0, i1) (as the
    forward's: batch element, channel block), given dy = dL/dy.

    Time-major as the forward. delta: the step sizes before delta_bias and softplus
    (for its derivative), (B, L, D). Writes du, ddelta, dz (B, L, D), the
    per-batch-element dA_b (B, N, D), dD_b, dbias_b (B, D) (summed over B by the
    caller) and the per-block dB_p, dC_p (n_blocks, B, L, N) (summed over blocks by
    the caller): every task writes its own elements, so tasks run in any order and
    on any thread with the same result.
    Per block of channels the states are recomputed into hs (L + 1, N, block),
    hs[t + 1] = h_t, with dAs[t] = exp(dt_t A) beside them (cheaper to keep than to
    recompute), not stored by the forward; then the adjoint runs backwards in time:
    g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}, dB_t += g_t dt_t u_t, dC_t += dy_t h_t,
    du_t = dt_t sum_n g_t B_t + D dy_t,
    ddt_t = u_t sum_n g_t B_t + sum_n g_t exp(dt_t A) h_{t-1} A,
    dA += g_t exp(dt_t A) h_{t-1} dt_t (dy_t here is the gradient before the gate).
    """
    _, length, n_chan = u.shape
    n_state = A_t.shape[0]
    n_blocks = (n_chan + block - 1) // block
    zero, one = dy.dtype.type(0), dy.dtype.type(1)
    hs = np.zeros((length + 1, n_state, block), dtype=dy.dtype)  # hs[0] = h_0 = 0
    dAs = np.empty((length, n_state, block), dtype=dy.dtype)     # exp(dt_t A)
    ys = np.empty((length, block), dtype=dy.dtype)               # C_t . h_t
    dys = np.empty((length, block), dtype=dy.dtype)              # dL/d(C_t . h_t)
    g = np.empty((n_state, block), dtype=dy.dtype)
    gB = np.empty(block, dtype=dy.dtype)                         # sum_n g_t B_t
    sA = np.empty(block, dtype=dy.dtype)                         # sum_n g_t dA_t h_{t-1} A
    dtu = np.empty(block, dtype=dy.dtype)
    dA_blk = np.empty((n_state, block), dtype=dy.dtype)
    for i in range(i0, i1):
        b, blk = i // n_blocks, i % n_blocks
        d0 = blk * block
        w = min(block, n_chan - d0)
        Dr = D[d0:d0 + w]
        for t in range(length):                     # recompute the states
            _state_step(Bm, Cm, b, t, A_t, d0, w, dt[b, t, d0:d0 + w], u[b, t, d0:d0 + w],
                        hs[t], hs[t + 1], dAs[t], ys[t], dtu)
        dDr = dD_b[b, d0:d0 + w]
        dDr[:] = 0
        for t in range(length):                     # through the gate and the D skip
            ur = u[b, t, d0:d0 + w]
            dyr = dy[b, t, d0:d0 + w]
            dysr = dys[t]
            if has_z:                               # y = y_pre * silu(z)
                zr = z[b, t, d0:d0 + w]
                dzr = dz[b, t, d0:d0 + w]
                ysr = ys[t]
                for j in range(w):
                    zt = zr[j]
                    sig = one / (one + _exp(-zt))
                    dzr[j] = dyr[j] * (ysr[j] + Dr[j] * ur[j]) * sig * (one + zt * (one - sig))
                    dysr[j] = dyr[j] * zt * sig
            else:
                for j in range(w):
                    dysr[j] = dyr[j]
            for j in range(w):
                dDr[j] += dysr[j] * ur[j]
        g[:] = 0
        dA_blk[:] = 0
        dbr = dbias_b[b, d0:d0 + w]
        dbr[:] = 0
        for t in range(length - 1, -1, -1):         # adjoint, backwards in time
            dtr = dt[b, t, d0:d0 + w]
            ur = u[b, t, d0:d0 + w]
            dyr = dys[t]
            for j in range(w):
                dtu[j] = dtr[j] * ur[j]
                gB[j] = 0
                sA[j] = 0
            for n in range(n_state):
                Bn = Bm[b, t, n]
                Cn = Cm[b, t, n]
                Ar = A_t[n, d0:d0 + w]
                dAr = dA_blk[n]
                gr = g[n]
                h0 = hs[t, n]
                h1 = hs[t + 1, n]
                ar = dAs[t, n]
                dC_acc = zero
                dB_acc = zero
                for j in range(w):                  # vectorised over channels
                    gn = gr[j] + dyr[j] * Cn
                    a = ar[j]
                    via_a = gn * a * h0[j]          # dL/d(dt_t A) per state
                    dC_acc += dyr[j] * h1[j]
                    dB_acc += gn * dtu[j]
                    gB[j] += gn * Bn
                    sA[j] += via_a * Ar[j]
                    dAr[j] += via_a * dtr[j]
                    gr[j] = gn * a
                dC_p[blk, b, t, n] = dC_acc
                dB_p[blk, b, t, n] = dB_acc
            dur = du[b, t, d0:d0 + w]
            ddr = ddelta[b, t, d0:d0 + w]
            delr = delta[b, t, d0:d0 + w]
            biasr = delta_bias[d0:d0 + w]
            for j in range(w):
                dur[j] = dtr[j] * gB[j] + Dr[j] * dyr[j]
                ddt = ur[j] * gB[j] + sA[j]
                if softplus:                        # softplus' = sigmoid
                    ddt *= one / (one + _exp(-(delr[j] + biasr[j])))
                ddr[j] = ddt
                dbr[j] += ddt
        for n in range(n_state):
            dA_b[b, n, d0:d0 + w] = dA_blk[n, :w]
    return zero


_pool: ThreadPoolExecutor | None = None


CHUNKS_PER_THREAD = 4      # tasks are handed out in about this many pieces per thread


def _run_split(kernel, n_tasks: int, *args) -> None:
    """Run ``kernel(*args, i0, i1)`` over the tasks [0, n_tasks) on
    torch.get_num_threads() threads (the calling thread one of them).

    The tasks are cut into contiguous chunks that the threads take in turn from a
    shared counter until none is left: a thread that starts late (a busy machine) or
    runs slowly gets fewer, and a helper that has not started by the time the calling
    thread has taken every chunk is cancelled, not waited for: then the call costs
    what one thread costs.
    """
    global _pool
    threads = min(torch.get_num_threads(), n_tasks)
    if threads <= 1:
        kernel(*args, 0, n_tasks)
        return
    if _pool is None or _pool._max_workers < threads - 1:
        _pool = ThreadPoolExecutor(max_workers=max(threads - 1, os.cpu_count() or 1),
                                   thread_name_prefix="mepkg-scan")
    n_chunks = min(n_tasks, threads * CHUNKS_PER_THREAD)
    bounds = [n_tasks * i // n_chunks for i in range(n_chunks + 1)]
    counter = itertools.count()                # next() is atomic under the GIL

    def work() -> None:
        while (i := next(counter)) < n_chunks:
            kernel(*args, bounds[i], bounds[i + 1])

    futures = [_pool.submit(work) for _ in range(threads - 1)]
    work()
    for f in futures:
        if not f.cancel():                     # not started yet: nothing left for it
            f.result()


SCRATCH_BYTES = 256 * 1024  # recomputed states of one channel block: fits L2


def channel_block(n_chan: int, length: int, n_state: int, itemsize: int = 4) -> int:
    """Channels per block: a multiple of 8 (one AVX register of float32) whose
    recomputed states, (L + 1) x N x block, fit in SCRATCH_BYTES (and so do their
    exp(dt A)); at most n_chan."""
    block = SCRATCH_BYTES // ((length + 1) * n_state * itemsize) // 8 * 8
    return max(8, min(block, n_chan))


def _n_blocks(n_chan: int, block: int) -> int:
    return -(-n_chan // block)


def _sum_blocks(parts: torch.Tensor) -> torch.Tensor:
    """parts.sum(0), added in block order (the same result for any thread count; 4x
    faster than torch's sum over a middle dimension at the paper's sizes)."""
    out = parts[0].clone()
    for part in parts[1:]:
        out += part
    return out


def _arr(t: torch.Tensor | None, dtype: torch.dtype, zeros_shape: tuple = (0,)) -> np.ndarray:
    """``t`` as a C-contiguous numpy array of ``dtype``; where None, zeros of ``zeros_shape``."""
    if t is None:
        return torch.zeros(zeros_shape, dtype=dtype).numpy()
    return t.detach().to(dtype).contiguous().numpy()


def _time_major(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A (B, D, L) or (B, N, L) tensor as a C-contiguous time-major (B, L, D) or (B, L, N)
    tensor of ``dtype``: no copy where ``t`` is a transposed view of time-major memory,
    as ``Mamba.forward`` passes them. None stays None."""
    if t is None:
        return None
    return t.detach().transpose(1, 2).to(dtype).contiguous()


def _np(t: torch.Tensor | None, dtype: torch.dtype) -> np.ndarray:
    """``t`` as a numpy array; None (a missing z or dz) as an empty (0, 0, 0) array."""
    return torch.zeros((0, 0, 0), dtype=dtype).numpy() if t is None else t.numpy()


class FusedSelectiveScan(torch.autograd.Function):
    """autograd Function around the kernels; inputs as ``fused_selective_scan``.

    The kernels work time-major, (B, L, D), the layout of the linear layers around
    the scan; (B, D, L) inputs that are transposed views of that memory (as
    ``Mamba.forward`` passes them) cost no copy, and the outputs and gradients are
    returned the same way: (B, D, L) views of time-major tensors.
    Only delta + delta_bias and its softplus are torch ops here (vectorised exp and
    log1p); everything else runs in the two kernels. Saved for the backward: the
    time-major operands the forward handed the kernel and dt, all O(B D L + D N);
    no states.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        dtype = u.dtype
        batch, n_chan, length = u.shape
        with torch.no_grad():
            x = delta.transpose(1, 2).to(dtype)                           # B x L x D
            if delta_bias is not None:
                x = x + delta_bias.to(dtype)
            dt = (F.softplus(x) if delta_softplus else x).contiguous()    # B x L x D
            u_t, B_t, C_t, z_t = (_time_major(t, dtype) for t in (u, B, C, z))
            y = torch.empty(batch, length, n_chan, dtype=dtype)
            block = channel_block(n_chan, length, A.shape[1], y.element_size())
            _run_split(scan_forward_kernel, batch * _n_blocks(n_chan, block), u_t.numpy(),
                       dt.numpy(), _arr(A.t(), dtype), B_t.numpy(), C_t.numpy(),
                       _arr(D, dtype, (n_chan,)), _np(z_t, dtype),
                       z is not None, y.numpy(), block)
        # the time-major operands, as the kernels read them: the backward copies nothing again
        ctx.save_for_backward(u_t, delta, dt, A, B_t, C_t, D, z_t, delta_bias)
        ctx.input_dtypes = tuple(None if t is None else t.dtype
                                 for t in (u, delta, A, B, C, D, z, delta_bias))
        ctx.delta_softplus = bool(delta_softplus)
        ctx.block = block
        return y.transpose(1, 2)                                          # B x D x L

    @staticmethod
    def backward(ctx, dy):
        u_t, delta, dt, A, B_t, C_t, D, z_t, delta_bias = ctx.saved_tensors
        dtype = u_t.dtype
        batch, length, n_chan = u_t.shape
        n_state = A.shape[1]
        new = lambda *shape: torch.empty(*shape, dtype=dtype)  # noqa: E731
        du, ddelta = new(batch, length, n_chan), new(batch, length, n_chan)
        dz = new(batch, length, n_chan) if z_t is not None else None
        dA_b, dD_b, dbias_b = new(batch, n_state, n_chan), new(batch, n_chan), new(batch, n_chan)
        n_blocks = _n_blocks(n_chan, ctx.block)
        dB_p = new(n_blocks, batch, length, n_state)
        dC_p = new(n_blocks, batch, length, n_state)
        _run_split(scan_backward_kernel, batch * n_blocks, u_t.numpy(), dt.numpy(),
                   _arr(A.t(), dtype), B_t.numpy(), C_t.numpy(),
                   _arr(D, dtype, (n_chan,)), _np(z_t, dtype), z_t is not None,
                   _time_major(delta, dtype).numpy(), _arr(delta_bias, dtype, (n_chan,)),
                   ctx.delta_softplus, _time_major(dy, dtype).numpy(), du.numpy(),
                   ddelta.numpy(), _np(dz, dtype), dA_b.numpy(), dB_p.numpy(), dC_p.numpy(),
                   dD_b.numpy(), dbias_b.numpy(), ctx.block)
        grads = (du.transpose(1, 2), ddelta.transpose(1, 2), dA_b.sum(0).t(),
                 _sum_blocks(dB_p).transpose(1, 2), _sum_blocks(dC_p).transpose(1, 2), dD_b.sum(0),
                 None if dz is None else dz.transpose(1, 2), dbias_b.sum(0))
        return tuple(None if like is None else g.to(like)
                     for g, like in zip(grads, ctx.input_dtypes)) + (None,)


def fused_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                         delta_softplus=False):
    """Selective scan on CPU tensors (float32 fast; float64 exact), fused forward and
    backward: same arguments and result as ``mepkg.mamba.selective_scan_reference``."""
    if u.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"fused_selective_scan takes float32 or float64, got {u.dtype}")
    return FusedSelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
