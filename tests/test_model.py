"""mepkg.model: the paper's parameter count, shapes, init, model files, release conversion."""

import math

import pytest
import torch

from mepkg.mamba import Mamba
from mepkg.model import (MODEL_FORMAT_VERSION, SlowFastMamba, convert_release_checkpoint,
                         count_parameters, load_model, save_model_file)

torch.set_num_threads(1)

SMALL = dict(d_model=16, depth=2, d_state=8)


def test_parameter_count_is_the_papers():
    assert count_parameters(SlowFastMamba()) == 8_359_686


@pytest.mark.parametrize("k, slow_len", [(30, 15), (50, 25), (10, 5)])
def test_forward_shapes(k, slow_len):
    torch.manual_seed(0)
    model = SlowFastMamba(**SMALL).eval()
    seen = {}
    model.slow_stem.register_forward_hook(lambda m, i, o: seen.update(slow=o.shape))
    spot, logits = model(torch.randn(3, 36, k))
    assert spot.shape == (3, k) and logits.shape == (3, k, 5)
    assert seen["slow"] == (3, 32, slow_len)                      # 2D channels, k/2 steps
    assert ((spot > 0) & (spot < 1)).all()
    with pytest.raises(ValueError, match=r"\(batch, 36, k\)"):
        model(torch.randn(3, 30, 36))


def test_structure_and_init():
    torch.manual_seed(0)
    model = SlowFastMamba(d_model=32, depth=4, d_state=8)
    rates = [block.drop_path.p for block in model.fast_stages[0]]
    assert rates == pytest.approx([0.0, 0.0, 0.2 / 3, 0.4 / 3], abs=1e-6)
    assert [block.drop_path.p for block in model.slow_stages[2]] == rates
    assert len(model.slow_stages) == len(model.fast_stages) == 3 and len(model.laterals) == 2
    assert model.slow_stages[0][0].mamba.config.d_model == 64        # slow width 2D
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0, name           # dt_proj too (release)
        if isinstance(m, torch.nn.LayerNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and m.bias.abs().sum() == 0
    head = model.class_head.weight
    assert 0.015 < head.std() < 0.025        # trunc normal std .02 (cut at +-2 absolute, as timm)
    for m in model.modules():
        if isinstance(m, Mamba):
            fan_in = m.out_proj.weight.shape[1]
            bound = 1 / math.sqrt(fan_in) / 2                        # kaiming(a=sqrt5) / sqrt(4)
            assert m.out_proj.weight.abs().max() <= bound
            assert m.out_proj.weight.abs().max() > 0.8 * bound
    kept = SlowFastMamba(d_model=32, depth=1, d_state=8, keep_mamba_dt_init=True)
    assert kept.fast_stages[0][0].mamba.dt_proj.bias.min() < -2        # softplus^-1(<=0.1)


def _release_state_dict(model: SlowFastMamba) -> dict:
    """Our state dict renamed into the release's naming (see release_key_to_mepkg)."""
    out = {}
    for name, tensor in model.state_dict().items():
        parts = name.split(".")
        if parts[0] in ("slow_stages", "fast_stages"):
            stage, index, rest = int(parts[1]) + 1, parts[2], ".".join(parts[3:])
            prefix = f"block{stage}{'_fast' if parts[0] == 'fast_stages' else ''}.{index}"
            rest = rest.replace("norm_in.", "attn.norm.").replace("mamba.", "attn.mamba.") \
                       .replace("norm_out.", "norm1.")
            out[f"{prefix}.{rest}"] = tensor
            if rest.startswith("norm1."):                 # the unused second LayerNorm
                out[f"{prefix}.{rest.replace('norm1.', 'norm2.')}"] = torch.full_like(tensor, 7.0)
        elif parts[0] == "laterals":
            out[f"fuse_{int(parts[1]) + 1}.conv.{'.'.join(parts[2:])}"] = tensor
        else:
            rename = {"stem": "Stem", "slow_stem": "Stem_slow", "spot_head": "fc_spot.0",
                      "class_head": "fc_recog.0"}[parts[0]]
            out[f"{rename}.{'.'.join(parts[1:])}"] = tensor
    return {f"module.{k}": v for k, v in out.items()}


def test_release_naming_has_the_papers_count_with_unused_norms():
    state = _release_state_dict(SlowFastMamba())
    n = sum(t.numel() for name, t in state.items()
            if "running_" not in name and "num_batches" not in name)
    assert n == 8_368_902


def test_convert_release_checkpoint_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    model = SlowFastMamba(**SMALL)
    with torch.no_grad():                      # non-trivial BN statistics and biases
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        model.spot_head.bias.fill_(0.3)
    model.eval()
    release = tmp_path / "subject_1.pkl"
    torch.save(_release_state_dict(model), release)
    out = convert_release_checkpoint(release, tmp_path / "model.pt", k=30, frame_skip=7,
                                     fps=200.0)
    loaded, meta = load_model(out, "cpu")
    assert meta["k"] == 30 and meta["frame_skip"] == 7
    assert meta["model_config"]["d_model"] == 16 and meta["model_config"]["depth"] == 2
    x = torch.randn(4, 36, 30)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_convert_rejects_a_foreign_or_mismatched_checkpoint(tmp_path):
    foreign = tmp_path / "other.pkl"
    torch.save({"layer.weight": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a METST_SF"):
        convert_release_checkpoint(foreign, tmp_path / "m.pt")
    state = _release_state_dict(SlowFastMamba(**SMALL))
    del state["module.block2_fast.1.attn.mamba.D"]
    broken = tmp_path / "broken.pkl"
    torch.save(state, broken)
    with pytest.raises(ValueError, match=r"fast_stages\.1\.1\.mamba\.D"):
        convert_release_checkpoint(broken, tmp_path / "m.pt", k=30, frame_skip=7, fps=200.0)


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_model(tmp_path / "none.pt")
    path = save_model_file(tmp_path / "m.pt", SlowFastMamba(**SMALL), k=30, frame_skip=7)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = MODEL_FORMAT_VERSION + 1
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format_version"):
        load_model(tmp_path / "future.pt")
    del payload["k"]
    payload["format_version"] = MODEL_FORMAT_VERSION
    torch.save(payload, tmp_path / "nok.pt")
    with pytest.raises(ValueError, match=r"lacks \['k'\]"):
        load_model(tmp_path / "nok.pt")
    torch.save(_release_state_dict(SlowFastMamba(**SMALL)), tmp_path / "release.pkl")
    with pytest.raises(ValueError, match="convert-checkpoint"):
        load_model(tmp_path / "release.pkl")
