"""mepkg.mamba: mamba_ssm-compatible parameters and init; the fused CPU scan and the
pure-PyTorch loop against the reference loop; which scan runs where."""

import logging
import math
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_training_losses

from mepkg import mamba as mamba_mod
from mepkg.mamba import (Mamba, MambaConfig, selective_scan, selective_scan_loop,
                         selective_scan_reference)

scan_cpu = pytest.importorskip("mepkg.scan_cpu", reason="numba not installed")
fused_selective_scan = scan_cpu.fused_selective_scan

torch.set_num_threads(1)


def test_config_derives_inner_width_and_dt_rank():
    sizes = dict(d_state=64, d_conv=4, expand=2)
    cfg = MambaConfig(d_model=128, **sizes)
    assert (cfg.d_inner, cfg.dt_rank, cfg.d_state, cfg.d_conv) == (256, 8, 64, 4)
    assert MambaConfig(d_model=33, **sizes).dt_rank == 3          # ceil(33 / 16)
    assert MambaConfig(d_model=64, dt_rank=5, **sizes).dt_rank == 5


def test_parameter_names_and_shapes_match_mamba_ssm():
    m = Mamba(d_model=32, d_state=16, d_conv=4, expand=2)   # d_inner 64, dt_rank 2
    shapes = {name: tuple(p.shape) for name, p in m.named_parameters()}
    assert shapes == {
        "in_proj.weight": (128, 32),
        "conv1d.weight": (64, 1, 4), "conv1d.bias": (64,),
        "x_proj.weight": (2 + 32, 64),
        "dt_proj.weight": (64, 2), "dt_proj.bias": (64,),
        "A_log": (64, 16), "D": (64,),
        "out_proj.weight": (32, 64),
    }
    assert m.conv1d.padding == (3,) and m.conv1d.groups == 64


def test_init_follows_mamba_ssm():
    torch.manual_seed(0)
    m = Mamba(d_model=64, d_state=8, d_conv=4, expand=2)
    dt = F.softplus(m.dt_proj.bias.detach())
    assert dt.min() >= 1e-3 * (1 - 1e-4) and dt.max() <= 1e-1 * (1 + 1e-4)
    assert dt.max() / dt.min() > 10                       # spread log-uniformly, not constant
    torch.testing.assert_close(m.A_log.detach()[5], torch.log(torch.arange(1.0, 9.0)))
    assert torch.equal(m.D.detach(), torch.ones(128))
    bound = m.config.dt_rank ** -0.5
    assert m.dt_proj.weight.abs().max() <= bound


def _scan_inputs(dtype, batch=3, d=6, length=17, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)
    A = -torch.exp(r(d, n) * 0.5 + 1.0)
    return dict(u=r(batch, d, length), delta=r(batch, d, length) * 0.5, A=A,
                B=r(batch, n, length), C=r(batch, n, length), D=r(d), z=r(batch, d, length),
                delta_bias=r(d) * 0.1)


def _values_and_grads(scan, inputs, delta_softplus):
    leaves = {k: (v.clone().requires_grad_() if v is not None else None)
              for k, v in inputs.items()}
    y = scan(**leaves, delta_softplus=delta_softplus)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    (y * weights).sum().backward()
    return y.detach(), {k: v.grad for k, v in leaves.items() if v is not None}


def _assert_same_as_reference(scan, inputs, delta_softplus=True):
    y, grads = _values_and_grads(scan, inputs, delta_softplus)
    y_ref, grads_ref = _values_and_grads(selective_scan_reference, inputs, delta_softplus)
    assert y.shape == inputs["u"].shape
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    assert set(grads) == set(grads_ref) == {k for k, v in inputs.items() if v is not None}
    for name in grads_ref:
        scale = grads_ref[name].abs().max().item()
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=1e-4, atol=1e-5 * (1 + scale),
                                   msg=lambda m: f"gradient of {name}: {m}")


@pytest.mark.parametrize("with_z", [True, False])
def test_loop_equals_reference_values_and_gradients(with_z):
    inputs = _scan_inputs(torch.float32)
    if not with_z:
        inputs["z"] = None
    _assert_same_as_reference(selective_scan_loop, inputs)


@pytest.mark.parametrize("batch, d, length, n", [
    (2, 8, 15, 16), (3, 40, 30, 16),     # 40 channels: one full block of 32 and a partial one
    (2, 6, 50, 64), (1, 70, 30, 64),
])
def test_fused_scan_equals_reference_values_and_gradients(batch, d, length, n):
    _assert_same_as_reference(fused_selective_scan,
                              _scan_inputs(torch.float32, batch, d, length, n))


def test_fused_scan_takes_and_returns_views_of_time_major_memory():
    # As Mamba.forward calls it: u, z halves of one (B, L, 2D) tensor, B and C columns
    # of one (B, L, R + 2N) tensor, delta a (B, L, D) tensor, all passed as transposed views.
    inputs = _scan_inputs(torch.float32, batch=2, d=40, length=15, n=16)
    time_major = {
        "xz": torch.cat([inputs["u"], inputs["z"]], dim=1).transpose(1, 2).contiguous(),
        "bc": torch.cat([inputs["B"], inputs["C"]], dim=1).transpose(1, 2).contiguous(),
        "delta": inputs["delta"].transpose(1, 2).contiguous()}

    def run(scan):
        leaves = {k: v.clone().requires_grad_() for k, v in time_major.items()}
        xz, bc = leaves["xz"], leaves["bc"]
        y = scan(xz[..., :40].transpose(1, 2), leaves["delta"].transpose(1, 2), inputs["A"],
                 bc[..., :16].transpose(1, 2), bc[..., 16:].transpose(1, 2), inputs["D"],
                 z=xz[..., 40:].transpose(1, 2), delta_bias=inputs["delta_bias"],
                 delta_softplus=True)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        return y, {k: v.grad for k, v in leaves.items()}

    y, grads = run(fused_selective_scan)
    y_ref, grads_ref = run(selective_scan_reference)
    assert y.shape == (2, 40, 15) and y.transpose(1, 2).is_contiguous()   # time-major out
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for name in grads_ref:
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=1e-4, atol=1e-4,
                                   msg=lambda m: f"gradient of {name}: {m}")


@pytest.mark.parametrize("drop", [("z",), ("D",), ("delta_bias",), ("z", "D", "delta_bias")])
@pytest.mark.parametrize("delta_softplus", [True, False])
def test_fused_scan_optional_inputs(drop, delta_softplus):
    inputs = _scan_inputs(torch.float32, batch=2, d=5, length=15, n=16)
    if not delta_softplus:
        inputs["delta"] = inputs["delta"].abs()          # step sizes stay positive
    for name in drop:
        inputs[name] = None
    _assert_same_as_reference(fused_selective_scan, inputs, delta_softplus)


def test_fused_scan_gradcheck_float64():
    inputs = _scan_inputs(torch.float64, batch=2, d=3, length=6, n=4)
    names = list(inputs)
    leaves = [inputs[k].requires_grad_() for k in names]
    fn = lambda *xs: fused_selective_scan(**dict(zip(names, xs)), delta_softplus=True)  # noqa: E731
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6)


def test_fused_exp_is_accurate_in_float32():
    x = torch.linspace(-87, 10, 200_001)
    got = torch.from_numpy(scan_cpu.fast_exp_array(x.numpy()))
    rel = ((got.double() - torch.exp(x.double())) / torch.exp(x.double())).abs().max().item()
    assert rel < 3e-7
    assert scan_cpu.fast_exp_array(torch.tensor([-200.0]).numpy())[0] < 1e-37   # no NaN/inf


@pytest.mark.parametrize("batch, d, n, threads", [
    (5, 8, 16, 2),
    (1, 200, 64, 3),       # one window, four channel blocks: the threads split the channels
])
def test_fused_scan_same_for_any_thread_count(batch, d, n, threads):
    inputs = _scan_inputs(torch.float32, batch=batch, d=d, length=15, n=n)
    assert scan_cpu.channel_block(d, 15, n) < d or batch >= threads
    torch.set_num_threads(threads)
    try:
        y2, g2 = _values_and_grads(fused_selective_scan, inputs, True)
    finally:
        torch.set_num_threads(1)
    y1, g1 = _values_and_grads(fused_selective_scan, inputs, True)
    assert torch.equal(y1, y2) and all(torch.equal(g1[k], g2[k]) for k in g1)
    torch.testing.assert_close(y1, selective_scan_reference(**inputs, delta_softplus=True),
                               rtol=1e-5, atol=1e-5)


def test_fused_conv_silu_same_for_any_thread_count():
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(150, 150, kernel_size=4, groups=150, padding=3)   # 3 channel blocks
    x = torch.randn(1, 150, 20)
    results = []
    for threads in (3, 1):
        torch.set_num_threads(threads)
        try:
            conv.zero_grad()
            xl = x.clone().requires_grad_()
            y = mamba_mod.conv1d_silu(xl, conv)
            (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        finally:
            torch.set_num_threads(1)
        results.append((y.detach(), xl.grad, conv.weight.grad.clone(), conv.bias.grad.clone()))
    assert all(torch.equal(a, b) for a, b in zip(*results))
    torch.testing.assert_close(results[0][0], mamba_mod.conv1d_silu_torch(x, conv).detach())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_conv_silu_equals_torch_conv(dtype):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(40, 40, kernel_size=4, groups=40, padding=3).to(dtype)
    xz = torch.randn(3, 15, 80, dtype=dtype)          # time-major, x its first half (Mamba)
    results = []
    for fn in (mamba_mod.conv1d_silu, mamba_mod.conv1d_silu_torch):
        conv.zero_grad()
        xzl = xz.clone().requires_grad_()
        y = fn(xzl[..., :40].transpose(1, 2), conv)    # B x D x L view
        (y * torch.linspace(-1, 1, y.numel(), dtype=dtype).reshape(y.shape)).sum().backward()
        results.append((y.detach(), xzl.grad, conv.weight.grad.clone(), conv.bias.grad.clone()))
    for fused, torch_conv in zip(*results):
        torch.testing.assert_close(fused, torch_conv, rtol=1e-5, atol=1e-6)


def test_training_losses_do_not_depend_on_the_scan(monkeypatch):
    def losses(scan):                                   # fused: fused conv too; loop: torch's
        monkeypatch.setattr(mamba_mod, "selective_scan", scan)
        monkeypatch.setattr(mamba_mod, "conv1d_silu", mamba_mod.conv1d_silu
                            if scan is fused_selective_scan else mamba_mod.conv1d_silu_torch)
        return tiny_training_losses(batch=4, k=16)

    fused, loop = losses(fused_selective_scan), losses(selective_scan_loop)
    torch.testing.assert_close(fused, loop, rtol=1e-4, atol=0)
    assert fused[-1] < fused[0]                           # it trains


def test_reference_loop_matches_closed_form_for_one_channel():
    # d=1, n=1, constant delta: h_t = sum_s exp(delta*A)^(t-s) * delta*B_s*u_s
    u = torch.tensor([[[1.0, 2.0, -1.0]]])
    delta = torch.full((1, 1, 3), 0.5)
    A = torch.tensor([[-2.0]])
    B = torch.tensor([[[1.0, 1.0, 2.0]]])
    C = torch.tensor([[[1.0, 3.0, 1.0]]])
    D = torch.tensor([0.5])
    a = math.exp(-1.0)
    h = [0.5, a * 0.5 + 1.0, a * (a * 0.5 + 1.0) - 1.0]
    expected = torch.tensor([[[h[0] * 1 + 0.5, h[1] * 3 + 1.0, h[2] * 1 - 0.5]]])
    for scan in (selective_scan_reference, selective_scan_loop, fused_selective_scan):
        torch.testing.assert_close(scan(u, delta, A, B, C, D), expected)


def test_mamba_is_causal_and_keeps_shape():
    torch.manual_seed(0)
    m = Mamba(d_model=16, d_state=8, d_conv=4, expand=2).eval()
    x = torch.randn(2, 12, 16)
    y = m(x)
    assert y.shape == (2, 12, 16)
    x2 = x.clone()
    x2[:, 7:] += 1.0
    y2 = m(x2)
    torch.testing.assert_close(y2[:, :7], y[:, :7])
    assert not torch.allclose(y2[:, 7:], y[:, 7:])


def test_scan_path_is_logged(caplog):
    mamba_mod._logged_backends.clear()
    with caplog.at_level(logging.INFO, logger="mepkg.mamba"):
        Mamba(d_model=8, d_state=4, d_conv=4, expand=2)(torch.randn(1, 3, 8))
    assert "fused CPU scan (numba)" in caplog.text
    assert mamba_mod.scan_backend("cpu") == "fused CPU scan (numba)"


def test_cpu_falls_back_to_the_loop_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "numba", None)          # import numba fails
    monkeypatch.delitem(sys.modules, "mepkg.scan_cpu")
    monkeypatch.setattr(mamba_mod, "_fused", {})
    monkeypatch.setattr(mamba_mod, "_logged_backends", set())
    inputs = _scan_inputs(torch.float32)
    with caplog.at_level(logging.INFO, logger="mepkg.mamba"):
        y = selective_scan(**inputs, delta_softplus=True)
        selective_scan(**inputs, delta_softplus=True)
    assert mamba_mod.scan_backend("cpu") == "pure-PyTorch sequential scan"
    torch.testing.assert_close(y, selective_scan_loop(**inputs, delta_softplus=True))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Fused CPU selective scan unavailable" in warnings[0].message


def test_fused_scan_only_takes_cpu_float_tensors(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("fused scan called")
    monkeypatch.setattr(mamba_mod, "_fused", {"scan": refuse})
    inputs = _scan_inputs(torch.float32)
    meta = {k: v.to("meta") for k, v in inputs.items()}      # stands in for a CUDA tensor
    assert selective_scan(**meta, delta_softplus=True).device.type == "meta"
    half = {k: v.to(torch.bfloat16) for k, v in inputs.items()}
    assert selective_scan(**half, delta_softplus=True).dtype == torch.bfloat16


def test_cuda_path_is_chosen_when_mamba_ssm_imports(monkeypatch, caplog):
    monkeypatch.setattr(mamba_mod, "_cuda_scan", lambda *a, **k: None)
    assert mamba_mod.scan_backend("cuda") == "mamba_ssm CUDA kernel"
    assert mamba_mod.scan_backend("cpu") == "fused CPU scan (numba)"


def test_cuda_takes_triton_without_mamba_ssm_and_the_loop_without_triton(monkeypatch, caplog):
    monkeypatch.setattr(mamba_mod, "_cuda_scan", None)
    monkeypatch.setattr(mamba_mod, "_CUDA_SCAN_ERROR", "ModuleNotFoundError: mamba_ssm")
    monkeypatch.setattr(mamba_mod, "_triton", {"scan": lambda *a, **k: None})
    assert mamba_mod.scan_backend("cuda") == "fused Triton scan"
    assert mamba_mod.scan_backend("cpu") == "fused CPU scan (numba)"   # never Triton on CPU
    monkeypatch.setattr(mamba_mod, "_triton", {})
    monkeypatch.setitem(sys.modules, "triton", None)                   # import triton fails
    monkeypatch.setattr(mamba_mod, "_logged_backends", set())
    with caplog.at_level(logging.INFO, logger="mepkg.mamba"):
        mamba_mod._log_backend_once(torch.device("cuda"))
        mamba_mod._log_backend_once(torch.device("cuda"))
    assert mamba_mod.scan_backend("cuda") == "pure-PyTorch sequential scan"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "mamba_ssm not importable" in warnings[0] and "no usable triton" in warnings[0]


def test_old_triton_is_not_used(monkeypatch):
    fake = type(sys)("triton")
    fake.__version__ = "2.3.1"
    monkeypatch.setitem(sys.modules, "triton", fake)
    monkeypatch.setattr(mamba_mod, "_triton", {})
    assert mamba_mod._triton_scan() is None
    assert "triton 2.3.1 is older than 3.0" in mamba_mod._triton["error"]
    with pytest.raises(RuntimeError, match="backend 'triton' is not available: .*2.3.1"):
        selective_scan(**_scan_inputs(torch.float32), backend="triton")


@pytest.mark.parametrize("version, parsed", [("3.9.0", (3, 9, 0)), ("3.0.0+git1a2b", (3, 0, 0)),
                                             ("2.1.0rc1", (2, 1, 0)), ("3.1", (3, 1))])
def test_triton_version_is_parsed(version, parsed):
    assert mamba_mod._version_tuple(version) == parsed


def test_backend_by_name_gives_that_path():
    inputs = _scan_inputs(torch.float32)
    expected = selective_scan_reference(**inputs, delta_softplus=True)
    for name in ("numba", "loop", "reference"):
        torch.testing.assert_close(selective_scan(**inputs, delta_softplus=True, backend=name),
                                   expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown selective-scan backend 'cuda'"):
        selective_scan(**inputs, backend="cuda")
