"""Fused selective scan in Triton, for CUDA tensors (no compiler, no mamba_ssm needed).

Same arguments and result as ``mepkg.mamba.selective_scan_reference``; mamba_ssm's
kernel design, written in Triton (which ships with torch's CUDA wheels):

- forward: one launch per call (one per Mamba block and direction). The grid is
  batch x blocks of ``BLOCK_D`` channels; each program keeps its block's state h
  (BLOCK_D x N, float32) in registers and loops over time inside the kernel,
  reading u, delta, B, C, z of one step and writing y of that step. Nothing of
  size (B, L, D, N) is written, and autograd saves only the inputs;
- backward: one launch. Each program first recomputes its block's states
  h_1..h_L (a forward sweep, stored into a float32 scratch of the call's
  (B, L + 1, D, N) that lives only during the launch; mamba_ssm recomputes them too,
  in shared memory), then runs the adjoint backwards in time,
  g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}, accumulating every gradient.
  Sums over channels (dB, dC) are written per channel block and sums over the
  batch (dA, dD, d delta_bias) per batch element, then reduced by torch:
  deterministic, no atomics.

The D skip, the silu(z) gate, delta + delta_bias and its softplus (and their
derivatives) are in the kernels. Inputs: float32 or bfloat16 (float16 too) in any
strides, as ``Mamba.forward`` passes them (transposed views of time-major
(B, L, D) memory); the state and every sum are float32; y and the gradients come
back in the inputs' dtypes, y as a (B, D, L) view of time-major memory.

The kernels run on CUDA tensors; under Triton's interpreter (``TRITON_INTERPRET=1``
in the environment when this module is first imported) they run on CPU tensors,
slowly: that is how the tests check them without a GPU. ``mepkg.mamba`` never
sends CPU tensors here unless asked by name (``selective_scan(..., backend="triton")``).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"  # read as triton.jit reads it


@triton.jit
def _softplus(x):
    """torch's softplus (threshold 20), log1p(exp(x)) computed accurately for small exp(x)
    (Kahan: log1p(e) = e log(w) / (w - 1), w = 1 + e)."""
    e = tl.exp(tl.minimum(x, 20.0))
    w = 1.0 + e
    log1p = tl.where(w == 1.0, e, tl.log(w) * e / tl.where(w == 1.0, 1.0, w - 1.0))
    return tl.where(x > 20.0, x, log1p)


@triton.jit
def _load_f32(ptrs, mask):
    """A masked load as float32 (0 where masked): the inputs may be bfloat16 or float16."""
    return tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _step_sizes(delta_ptr, bias_ptr, base, offs_d, mask_d, HAS_BIAS: tl.constexpr,
                SOFTPLUS: tl.constexpr):
    """delta_t (+ delta_bias) (through softplus) for a block of channels, float32; also
    the value before softplus (for its derivative)."""
    x = _load_f32(delta_ptr + base, mask_d)
    if HAS_BIAS:
        x += _load_f32(bias_ptr + offs_d, mask_d)
    if SOFTPLUS:
        dt = _softplus(x)
    else:
        dt = x
    return dt, x


@triton.jit
def _scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, y_ptr,
    n_chan, length, n_state,
    su_b, su_d, su_l, sdl_b, sdl_d, sdl_l, sA_d, sA_n,
    sB_b, sB_n, sB_l, sC_b, sC_n, sC_l, sz_b, sz_d, sz_l, sy_b, sy_l, sy_d,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """y[b, t, d] for one batch element and one block of channels, looping over time with
    the state h (BLOCK_D x BLOCK_N, float32) in registers."""
    b = tl.program_id(0).to(tl.int64)              # offsets past 2^31 at large batches
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < n_chan
    mask_n = offs_n < n_state
    A = _load_f32(A_ptr + offs_d[:, None] * sA_d + offs_n[None, :] * sA_n,
                  mask_d[:, None] & mask_n[None, :])
    if HAS_D:
        Dv = _load_f32(D_ptr + offs_d, mask_d)
    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for t in range(length):
        dt, _ = _step_sizes(delta_ptr, bias_ptr, b * sdl_b + offs_d * sdl_d + t * sdl_l,
                            offs_d, mask_d, HAS_BIAS, SOFTPLUS)
        u = _load_f32(u_ptr + b * su_b + offs_d * su_d + t * su_l, mask_d)
        Bt = _load_f32(B_ptr + b * sB_b + offs_n * sB_n + t * sB_l, mask_n)
        Ct = _load_f32(C_ptr + b * sC_b + offs_n * sC_n + t * sC_l, mask_n)
        h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * Bt[None, :]
        y = tl.sum(h * Ct[None, :], axis=1)
        if HAS_D:
            y += Dv * u
        if HAS_Z:
            zt = _load_f32(z_ptr + b * sz_b + offs_d * sz_d + t * sz_l, mask_d)
            y = y * zt / (1.0 + tl.exp(-zt))
        tl.store(y_ptr + b * sy_b + t * sy_l + offs_d * sy_d, y.to(y_ptr.dtype.element_ty),
                 mask=mask_d)


@triton.jit
def _scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dy_ptr, hs_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    n_chan, length, n_state,
    su_b, su_d, su_l, sdl_b, sdl_d, sdl_l, sA_d, sA_n,
    sB_b, sB_n, sB_l, sC_b, sC_n, sC_l, sz_b, sz_d, sz_l, sdy_b, sdy_d, sdy_l,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Gradients for one batch element and one block of channels.

    Scratch hs (B, L + 1, D, N) float32: the recomputed states, hs[b, t] = h_t (h_0 = 0),
    written by the forward sweep, read by the reverse sweep of the same program. Outputs
    (contiguous): du, ddelta, dz (B, L, D) in the inputs' dtypes; float32 dA (B, D, N)
    and dD, dbias (B, D) per batch element; float32 dB, dC (B, n_blocks, L, N) per
    channel block.
    """
    b = tl.program_id(0).to(tl.int64)              # offsets past 2^31 at large batches
    blk = tl.program_id(1)
    n_blocks = tl.num_programs(1)
    offs_d = blk * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < n_chan
    mask_n = offs_n < n_state
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A = _load_f32(A_ptr + offs_d[:, None] * sA_d + offs_n[None, :] * sA_n, mask_dn)
    if HAS_D:
        Dv = _load_f32(D_ptr + offs_d, mask_d)
    h_step = n_chan * n_state                                   # hs stride over time
    hs_blk = hs_ptr + b * (length + 1) * h_step + offs_d[:, None] * n_state + offs_n[None, :]

    # forward sweep: recompute and keep h_0 = 0, h_1..h_L
    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    tl.store(hs_blk, h, mask=mask_dn)
    for t in range(length):
        dt, _ = _step_sizes(delta_ptr, bias_ptr, b * sdl_b + offs_d * sdl_d + t * sdl_l,
                            offs_d, mask_d, HAS_BIAS, SOFTPLUS)
        u = _load_f32(u_ptr + b * su_b + offs_d * su_d + t * su_l, mask_d)
        Bt = _load_f32(B_ptr + b * sB_b + offs_n * sB_n + t * sB_l, mask_n)
        h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * Bt[None, :]
        tl.store(hs_blk + (t + 1) * h_step, h, mask=mask_dn)
    tl.debug_barrier()

    # reverse sweep: the adjoint g_t = dL/dh_t, backwards in time
    g = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)          # exp(dt_{t+1} A) g_{t+1}
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for i in range(length):
        t = length - 1 - i
        dt, x = _step_sizes(delta_ptr, bias_ptr, b * sdl_b + offs_d * sdl_d + t * sdl_l,
                            offs_d, mask_d, HAS_BIAS, SOFTPLUS)
        u = _load_f32(u_ptr + b * su_b + offs_d * su_d + t * su_l, mask_d)
        Bt = _load_f32(B_ptr + b * sB_b + offs_n * sB_n + t * sB_l, mask_n)
        Ct = _load_f32(C_ptr + b * sC_b + offs_n * sC_n + t * sC_l, mask_n)
        dy = _load_f32(dy_ptr + b * sdy_b + offs_d * sdy_d + t * sdy_l, mask_d)
        h1 = tl.load(hs_blk + (t + 1) * h_step, mask=mask_dn, other=0.0)      # h_t
        h0 = tl.load(hs_blk + t * h_step, mask=mask_dn, other=0.0)            # h_{t-1}
        out_off = b * length * n_chan + t * n_chan + offs_d
        if HAS_Z:                                  # y = (C_t . h_t + D u_t) silu(z_t)
            zt = _load_f32(z_ptr + b * sz_b + offs_d * sz_d + t * sz_l, mask_d)
            y_pre = tl.sum(h1 * Ct[None, :], axis=1)
            if HAS_D:
                y_pre += Dv * u
            sig = 1.0 / (1.0 + tl.exp(-zt))
            dz = dy * y_pre * sig * (1.0 + zt * (1.0 - sig))
            tl.store(dz_ptr + out_off, dz.to(dz_ptr.dtype.element_ty), mask=mask_d)
            dy = dy * zt * sig
        if HAS_D:
            dD_acc += dy * u
        g += dy[:, None] * Ct[None, :]
        dA_t = tl.exp(dt[:, None] * A)
        dtu = dt * u
        dC = tl.sum(dy[:, None] * h1, axis=0)
        dB = tl.sum(g * dtu[:, None], axis=0)
        part = ((b * n_blocks + blk) * length + t) * n_state + offs_n
        tl.store(dC_ptr + part, dC, mask=mask_n)
        tl.store(dB_ptr + part, dB, mask=mask_n)
        gB = tl.sum(g * Bt[None, :], axis=1)
        via_a = g * dA_t * h0                      # dL/d(dt_t A) per state
        sA = tl.sum(via_a * A, axis=1)
        dA_acc += via_a * dt[:, None]
        du = dt * gB
        if HAS_D:
            du += Dv * dy
        ddt = u * gB + sA
        if SOFTPLUS:                               # softplus' = sigmoid
            ddt = ddt / (1.0 + tl.exp(-x))
        dbias_acc += ddt
        tl.store(du_ptr + out_off, du.to(du_ptr.dtype.element_ty), mask=mask_d)
        tl.store(ddelta_ptr + out_off, ddt.to(ddelta_ptr.dtype.element_ty), mask=mask_d)
        g = g * dA_t
    per_b = b * n_chan + offs_d
    tl.store(dA_ptr + per_b[:, None] * n_state + offs_n[None, :], dA_acc, mask=mask_dn)
    tl.store(dD_ptr + per_b, dD_acc, mask=mask_d)
    tl.store(dbias_ptr + per_b, dbias_acc, mask=mask_d)


def _blocks(n_chan: int, n_state: int) -> tuple[int, int]:
    """(BLOCK_D, BLOCK_N): the state padded to a power of two; channels per program so that
    a program's state is <= 2048 float32 values (16 registers per thread at 4 warps)."""
    block_n = max(16, triton.next_power_of_2(n_state))
    block_d = max(16, min(64, 2048 // block_n, triton.next_power_of_2(n_chan)))
    return block_d, block_n


def _check_device(u: torch.Tensor) -> None:
    if u.device.type != "cuda" and not INTERPRETED:
        raise RuntimeError(
            f"the Triton selective scan runs on CUDA tensors, got {u.device.type} ones "
            "(on CPU only under Triton's interpreter: TRITON_INTERPRET=1 set before "
            "mepkg.scan_triton is imported)")


class TritonSelectiveScan(torch.autograd.Function):
    """autograd Function around the two kernels; arguments as ``triton_selective_scan``.
    Saved for the backward: the inputs themselves (no states, no copies)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        _check_device(u)
        batch, n_chan, length = u.shape
        n_state = A.shape[1]
        block_d, block_n = _blocks(n_chan, n_state)
        y = torch.empty(batch, length, n_chan, dtype=u.dtype, device=u.device)  # time-major
        dummy = u                                          # stands in for absent D, z, bias
        zz = z if z is not None else dummy
        grid = (batch, triton.cdiv(n_chan, block_d))
        _scan_fwd_kernel[grid](
            u, delta, A, B, C, D if D is not None else dummy, zz,
            delta_bias if delta_bias is not None else dummy, y,
            n_chan, length, n_state, *u.stride(), *delta.stride(), *A.stride(),
            *B.stride(), *C.stride(), *zz.stride(), y.stride(0), y.stride(1), y.stride(2),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=bool(delta_softplus), BLOCK_D=block_d, BLOCK_N=block_n, num_warps=4)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        ctx.delta_softplus = bool(delta_softplus)
        return y.transpose(1, 2)                                       # B x D x L

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, B, C, D, z, delta_bias = ctx.saved_tensors
        batch, n_chan, length = u.shape
        n_state = A.shape[1]
        block_d, block_n = _blocks(n_chan, n_state)
        n_blocks = triton.cdiv(n_chan, block_d)
        dev, f32 = u.device, torch.float32
        hs = torch.empty(batch, length + 1, n_chan, n_state, dtype=f32, device=dev)  # scratch
        du = torch.empty(batch, length, n_chan, dtype=u.dtype, device=dev)
        ddelta = torch.empty(batch, length, n_chan, dtype=delta.dtype, device=dev)
        dz = (torch.empty(batch, length, n_chan, dtype=z.dtype, device=dev)
              if z is not None else None)
        dA_b = torch.empty(batch, n_chan, n_state, dtype=f32, device=dev)
        dB_p = torch.empty(batch, n_blocks, length, n_state, dtype=f32, device=dev)
        dC_p = torch.empty(batch, n_blocks, length, n_state, dtype=f32, device=dev)
        dD_b = torch.empty(batch, n_chan, dtype=f32, device=dev)
        dbias_b = torch.empty(batch, n_chan, dtype=f32, device=dev)
        dummy = u
        zz = z if z is not None else dummy
        _scan_bwd_kernel[(batch, n_blocks)](
            u, delta, A, B, C, D if D is not None else dummy, zz,
            delta_bias if delta_bias is not None else dummy, dy, hs,
            du, ddelta, dz if dz is not None else du, dA_b, dB_p, dC_p, dD_b, dbias_b,
            n_chan, length, n_state, *u.stride(), *delta.stride(), *A.stride(),
            *B.stride(), *C.stride(), *zz.stride(), *dy.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=ctx.delta_softplus, BLOCK_D=block_d, BLOCK_N=block_n, num_warps=4)
        del hs
        grads = (du.transpose(1, 2), ddelta.transpose(1, 2), dA_b.sum(0).to(A.dtype),
                 dB_p.sum(1).transpose(1, 2).to(B.dtype), dC_p.sum(1).transpose(1, 2).to(C.dtype),
                 None if D is None else dD_b.sum(0).to(D.dtype),
                 None if dz is None else dz.transpose(1, 2),
                 None if delta_bias is None else dbias_b.sum(0).to(delta_bias.dtype))
        return grads + (None,)


def triton_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                          delta_softplus=False):
    """Selective scan with the fused Triton kernels: same arguments and result as
    ``mepkg.mamba.selective_scan_reference`` (u, delta, z (B, D, L); A (D, N); B, C
    (B, N, L); D, delta_bias (D,)). CUDA tensors (CPU ones under the interpreter);
    inputs float32, bfloat16 or float16, the state float32."""
    return TritonSelectiveScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
