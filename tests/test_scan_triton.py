"""The Triton selective scan (mepkg.scan_triton) against the reference loop, on CPU
tensors through Triton's interpreter, so that it is checked without a GPU.

Triton chooses between compiling and interpreting when a kernel is decorated:
its own library functions (tl.zeros, tl.sum) when triton is imported, ours when
mepkg.scan_triton is; and it reads TRITON_INTERPRET again when an interpreted
kernel calls another. So this module sets TRITON_INTERPRET=1 before it imports
triton, keeps it set during its tests (autouse fixture) and restores the
environment in between, so that other tests' subprocesses do not inherit it.
Where triton was imported earlier in the session without the interpreter, the
module is skipped with that reason (run it with TRITON_INTERPRET=1 set).
The interpreter runs every kernel instruction as numpy operations: shapes stay
small here.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch

from conftest import tiny_training_losses

from mepkg import mamba as mamba_mod
from mepkg.mamba import selective_scan, selective_scan_reference


def _import_interpreted():
    """mepkg.scan_triton with its kernels interpreted; skips where that cannot be had."""
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        from triton import knobs
        if not knobs.runtime.interpret:
            pytest.skip("triton was imported earlier in this session without Triton's "
                        "interpreter; run these tests with TRITON_INTERPRET=1 set",
                        allow_module_level=True)
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        pytest.importorskip("triton", reason="triton not installed (CI installs it from the "
                                             "constraints file; torch's CUDA wheels bring it)")
        module = importlib.import_module("mepkg.scan_triton")
        if not module.INTERPRETED:
            module = importlib.reload(module)
    finally:
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved
    return module


scan_triton = _import_interpreted()
triton_selective_scan = scan_triton.triton_selective_scan


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _scan_inputs(dtype=torch.float32, batch=2, d=8, length=15, n=16, seed=0):
    """Inputs as Mamba.forward makes them: A negative (float32), delta around softplus's
    knee, D and delta_bias float32; u, delta, B, C, z in ``dtype``."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, dt=dtype):
        return torch.randn(*shape, generator=g).to(dt)
    A = -(torch.rand(d, n, generator=g) * 4 + 0.1)
    return dict(u=r(batch, d, length), delta=r(batch, d, length) * 0.5, A=A,
                B=r(batch, n, length), C=r(batch, n, length), D=r(d, dt=torch.float32),
                z=r(batch, d, length), delta_bias=r(d, dt=torch.float32) * 0.1)


def _values_and_grads(scan, inputs, delta_softplus=True):
    leaves = {k: (v.clone().requires_grad_() if v is not None else None)
              for k, v in inputs.items()}
    y = scan(**leaves, delta_softplus=delta_softplus)
    weights = torch.linspace(-1, 1, y.numel(), dtype=torch.float32).reshape(y.shape)
    (y.float() * weights.to(y.dtype).float()).sum().backward()
    return y.detach(), {k: v.grad for k, v in leaves.items() if v is not None}


def _assert_matches(inputs, expected_inputs=None, delta_softplus=True, rel=1e-5):
    """Triton's y and every gradient on ``inputs`` against the reference on
    ``expected_inputs`` (default: the same), within ``rel`` of each tensor's largest value."""
    y, grads = _values_and_grads(triton_selective_scan, inputs, delta_softplus)
    y_ref, grads_ref = _values_and_grads(selective_scan_reference, expected_inputs or inputs,
                                         delta_softplus)
    assert y.shape == y_ref.shape and y.dtype == inputs["u"].dtype
    assert set(grads) == set(grads_ref) == {k for k, v in inputs.items() if v is not None}
    for name, got, want in [("y", y, y_ref)] + [(k, grads[k], grads_ref[k]) for k in grads_ref]:
        assert got.dtype == (inputs[name].dtype if name != "y" else y.dtype), name
        scale = want.abs().max().item()
        torch.testing.assert_close(got.float(), want.float(), rtol=rel, atol=rel * scale,
                                   msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("length", [15, 30, 50])
@pytest.mark.parametrize("n", [16, 64])
def test_float32_values_and_every_gradient_equal_the_reference(length, n):
    _assert_matches(_scan_inputs(torch.float32, batch=2, d=8, length=length, n=n))


@pytest.mark.parametrize("batch, d, length, n", [
    (1, 40, 15, 64),       # two channel blocks of 32, the second partial
    (2, 20, 15, 10),       # a state size that is no power of two
])
def test_partial_blocks_equal_the_reference(batch, d, length, n):
    _assert_matches(_scan_inputs(torch.float32, batch, d, length, n))


@pytest.mark.slow
@pytest.mark.parametrize("length, n", [(30, 64), (50, 64)])
def test_paper_width_equals_the_reference(length, n):
    _assert_matches(_scan_inputs(torch.float32, batch=2, d=96, length=length, n=n))


@pytest.mark.parametrize("drop, delta_softplus", [
    (("z",), True), (("D", "delta_bias"), True), (("D", "z", "delta_bias"), False)])
def test_optional_inputs(drop, delta_softplus):
    inputs = _scan_inputs()
    for name in drop:
        inputs[name] = None
    _assert_matches(inputs, delta_softplus=delta_softplus)


def test_large_step_sizes_take_softplus_identity_branch():
    inputs = _scan_inputs(length=15)
    inputs["delta"] = inputs["delta"] * 30 + 10          # many above softplus's threshold 20
    _assert_matches(inputs)


def test_bfloat16_inputs_within_one_percent_of_float32():
    # bf16 has an 8-bit significand (0.4% per rounding): y and the gradients are
    # rounded once to bf16 from a float32 state and float32 sums, so they stay within
    # 1% of the largest value of the float32 reference on the same (rounded) inputs.
    inputs = _scan_inputs(torch.bfloat16, batch=2, d=8, length=30, n=16)
    as_f32 = {k: v.float() for k, v in inputs.items()}
    _assert_matches(inputs, as_f32, rel=1e-2)


def test_takes_and_returns_views_of_time_major_memory():
    # As Mamba.forward calls it: u and z halves of one (B, L, 2D) tensor, B and C columns
    # of one (B, L, R + 2N) tensor, all passed as transposed views; y and du come back
    # as (B, D, L) views of time-major memory.
    inputs = _scan_inputs(batch=2, d=8, length=15, n=16)
    xz = torch.cat([inputs["u"], inputs["z"]], dim=1).transpose(1, 2).contiguous()
    dt_bc = torch.cat([torch.randn(2, 3, 15), inputs["B"], inputs["C"]], dim=1)
    dt_bc = dt_bc.transpose(1, 2).contiguous()
    views = dict(inputs, u=xz[..., :8].transpose(1, 2), z=xz[..., 8:].transpose(1, 2),
                 B=dt_bc[..., 3:19].transpose(1, 2), C=dt_bc[..., 19:].transpose(1, 2))
    assert not views["u"].is_contiguous() and not views["B"].is_contiguous()
    y = triton_selective_scan(**views, delta_softplus=True)
    assert y.transpose(1, 2).is_contiguous()
    torch.testing.assert_close(y, selective_scan_reference(**inputs, delta_softplus=True),
                               rtol=1e-5, atol=1e-5)


def test_cpu_tensors_need_the_interpreter(monkeypatch):
    monkeypatch.setattr(scan_triton, "INTERPRETED", False)
    with pytest.raises(RuntimeError, match="runs on CUDA tensors"):
        triton_selective_scan(**_scan_inputs())


@pytest.mark.slow
def test_training_with_the_triton_scan_gives_the_loops_losses(monkeypatch):
    # A training step of a tiny model, 20 steps: the Triton scan (forced by name on CPU
    # tensors, through the interpreter; ~1 min) against the loop, relative 1e-4.
    monkeypatch.setattr(mamba_mod, "_triton", {})     # mamba.py imports the interpreted module
    monkeypatch.setitem(sys.modules, "mepkg.scan_triton", scan_triton)

    def losses(backend):
        def scan(*args, **kwargs):
            return selective_scan(*args, **kwargs, backend=backend)
        monkeypatch.setattr(mamba_mod, "selective_scan", scan)
        return tiny_training_losses(batch=1, k=12)

    fused, loop = losses("triton"), losses("loop")
    assert mamba_mod._triton["scan"] is triton_selective_scan
    torch.testing.assert_close(fused, loop, rtol=1e-4, atol=0)
    assert fused[-1] < fused[0]                           # it trains
