"""mepkg.mamba: mamba_ssm-compatible parameters and init, the scan against its loop."""

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from mepkg import mamba as mamba_mod
from mepkg.mamba import Mamba, MambaConfig, selective_scan, selective_scan_reference

torch.set_num_threads(1)


def test_config_derives_inner_width_and_dt_rank():
    cfg = MambaConfig(d_model=128)
    assert (cfg.d_inner, cfg.dt_rank, cfg.d_state, cfg.d_conv) == (256, 8, 64, 4)
    assert MambaConfig(d_model=33).dt_rank == 3          # ceil(33 / 16)
    assert MambaConfig(d_model=64, dt_rank=5).dt_rank == 5


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
    m = Mamba(d_model=64, d_state=8)
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


@pytest.mark.parametrize("with_z", [True, False])
def test_fast_scan_equals_reference_loop_values_and_gradients(with_z):
    inputs = _scan_inputs(torch.float32)
    if not with_z:
        inputs["z"] = None
    results = []
    for scan in (selective_scan, selective_scan_reference):
        leaves = {k: (v.clone().requires_grad_() if v is not None else None)
                  for k, v in inputs.items()}
        y = scan(**leaves, delta_softplus=True)
        weights = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
        (y * weights).sum().backward()
        grads = {k: v.grad for k, v in leaves.items() if v is not None}
        results.append((y.detach(), grads))
    (y_fast, g_fast), (y_ref, g_ref) = results
    assert y_fast.shape == (3, 6, 17)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-5, atol=1e-5)
    assert set(g_fast) == set(g_ref) and len(g_fast) == (8 if with_z else 7)
    for name in g_ref:
        torch.testing.assert_close(g_fast[name], g_ref[name], rtol=1e-4, atol=1e-4,
                                   msg=lambda m: f"gradient of {name}: {m}")


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
    for scan in (selective_scan_reference, selective_scan):
        torch.testing.assert_close(scan(u, delta, A, B, C, D), expected)


def test_mamba_is_causal_and_keeps_shape():
    torch.manual_seed(0)
    m = Mamba(d_model=16, d_state=8).eval()
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
        Mamba(d_model=8, d_state=4)(torch.randn(1, 3, 8))
    assert "pure-PyTorch sequential scan" in caplog.text
    assert mamba_mod.scan_backend("cpu") == "pure-PyTorch sequential scan"


def test_cuda_path_is_chosen_when_mamba_ssm_imports(monkeypatch, caplog):
    monkeypatch.setattr(mamba_mod, "_cuda_scan", lambda *a, **k: None)
    assert mamba_mod.scan_backend("cuda") == "mamba_ssm CUDA kernel"
    assert mamba_mod.scan_backend("cpu") == "pure-PyTorch sequential scan"
    monkeypatch.setattr(mamba_mod, "_cuda_scan", None)
    monkeypatch.setattr(mamba_mod, "_CUDA_SCAN_ERROR", "ModuleNotFoundError: mamba_ssm")
    mamba_mod._logged_backends.clear()
    with caplog.at_level(logging.WARNING, logger="mepkg.mamba"):
        mamba_mod._log_backend_once(torch.device("cuda"))
    assert "pure-PyTorch" in caplog.text and "mamba_ssm not importable" in caplog.text
