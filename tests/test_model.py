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


# The authors' METST_SF key names, written out from their network definition (network.py
# of zizheng-guo/BoostingVRME, saved from nn.DataParallel): Stem / Stem_slow convolutions,
# block{1,2,3} (slow) and block{1,2,3}_fast (fast) lists of blocks whose Mamba sits in
# .attn with its LayerNorm .attn.norm, the post-norm norm1 (norm2 defined, never used),
# fuse_{1,2}.conv lateral connections and the fc_spot / fc_recog heads.
RELEASE_TO_MEPKG = {
    "module.Stem.0.weight": "stem.0.weight",
    "module.Stem.1.running_var": "stem.1.running_var",
    "module.Stem.3.bias": "stem.3.bias",
    "module.Stem.4.num_batches_tracked": "stem.4.num_batches_tracked",
    "module.Stem_slow.0.weight": "slow_stem.0.weight",
    "module.Stem_slow.1.running_mean": "slow_stem.1.running_mean",
    "module.block1.0.attn.norm.weight": "slow_stages.0.0.norm_in.weight",
    "module.block1.0.attn.mamba.A_log": "slow_stages.0.0.mamba.A_log",
    "module.block2.3.attn.mamba.in_proj.weight": "slow_stages.1.3.mamba.in_proj.weight",
    "module.block3.1.attn.mamba.conv1d.bias": "slow_stages.2.1.mamba.conv1d.bias",
    "module.block3.2.attn.mamba.x_proj.weight": "slow_stages.2.2.mamba.x_proj.weight",
    "module.block1.1.attn.mamba.dt_proj.bias": "slow_stages.0.1.mamba.dt_proj.bias",
    "module.block2.0.attn.mamba.out_proj.weight": "slow_stages.1.0.mamba.out_proj.weight",
    "module.block3.3.attn.mamba.D": "slow_stages.2.3.mamba.D",
    "module.block1.2.norm1.bias": "slow_stages.0.2.norm_out.bias",
    "module.block1_fast.0.attn.norm.bias": "fast_stages.0.0.norm_in.bias",
    "module.block2_fast.1.attn.mamba.D": "fast_stages.1.1.mamba.D",
    "module.block3_fast.3.norm1.weight": "fast_stages.2.3.norm_out.weight",
    "module.fuse_1.conv.0.weight": "laterals.0.0.weight",
    "module.fuse_2.conv.1.running_var": "laterals.1.1.running_var",
    "module.fc_spot.0.weight": "spot_head.weight",
    "module.fc_spot.0.bias": "spot_head.bias",
    "module.fc_recog.0.weight": "class_head.weight",
    "module.fc_recog.0.bias": "class_head.bias",
    "module.block2.1.norm2.weight": None,                 # defined, never used: dropped
    "module.block3_fast.0.norm2.bias": None,
}


@pytest.mark.parametrize("release, ours", RELEASE_TO_MEPKG.items())
def test_release_key_names_are_the_authors(release, ours):
    from mepkg.model import release_key_to_mepkg

    assert release_key_to_mepkg(release) == ours
    if ours is not None:                  # and the name exists in the paper-size model
        assert ours in PAPER_STATE_KEYS


PAPER_STATE_KEYS = set(SlowFastMamba().state_dict())


def test_release_key_set_of_a_whole_model_is_the_authors():
    """Every key of a depth-1 release state dict, spelt out: they convert onto exactly
    our state dict (nothing missing, nothing extra)."""
    from mepkg.model import release_key_to_mepkg

    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    mamba = ["A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
             "dt_proj.weight", "dt_proj.bias", "out_proj.weight"]
    keys = ([f"Stem.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")]
            + [f"Stem.{i}.{p}" for i in (1, 4) for p in bn]
            + [f"Stem_slow.0.{p}" for p in ("weight", "bias")] + [f"Stem_slow.1.{p}" for p in bn]
            + [f"fuse_{j}.conv.0.{p}" for j in (1, 2) for p in ("weight", "bias")]
            + [f"fuse_{j}.conv.1.{p}" for j in (1, 2) for p in bn]
            + [f"fc_{h}.0.{p}" for h in ("spot", "recog") for p in ("weight", "bias")])
    for stage in ("block1", "block2", "block3", "block1_fast", "block2_fast", "block3_fast"):
        keys += [f"{stage}.0.attn.norm.{p}" for p in ("weight", "bias")]
        keys += [f"{stage}.0.attn.mamba.{p}" for p in mamba]
        keys += [f"{stage}.0.norm{n}.{p}" for n in (1, 2) for p in ("weight", "bias")]
    converted = {release_key_to_mepkg(f"module.{k}") for k in keys} - {None}
    assert converted == set(SlowFastMamba(d_model=16, depth=1, d_state=8).state_dict())
    assert len(keys) == len(converted) + 12                 # the 6 x 2 unused norm2 tensors


def test_drop_path_drops_whole_samples_and_rescales_the_rest():
    from mepkg.model import DropPath

    torch.manual_seed(0)
    drop = DropPath(0.5).train()
    x = torch.ones(400, 3, 2)
    y = drop(x)
    per_sample = y.reshape(400, -1)
    kept = (per_sample == 2.0).all(1)                      # 1 / (1 - 0.5)
    dropped = (per_sample == 0.0).all(1)
    assert bool((kept | dropped).all())                    # all of a sample or nothing
    assert 150 < int(dropped.sum()) < 250
    assert torch.equal(drop.eval()(x), x)                  # identity when evaluating
    assert torch.equal(DropPath(0.0).train()(x), x)


def test_depth_4_model_uses_its_drop_paths_in_training_only():
    torch.manual_seed(0)
    model = SlowFastMamba(d_model=16, depth=4, d_state=4)
    assert [b.drop_path.p for b in model.slow_stages[2]] == pytest.approx(
        [0.0, 0.0, 0.2 / 3, 0.4 / 3], abs=1e-6)
    x = torch.randn(64, 36, 10)
    model.train()
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x)[0]
        torch.manual_seed(2)
        b = model(x)[0]
        torch.manual_seed(1)
        a_again = model(x)[0]
    assert not torch.equal(a, b) and torch.equal(a, a_again)
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        c = model(x)[0]
        torch.manual_seed(2)
        assert torch.equal(c, model(x)[0])
