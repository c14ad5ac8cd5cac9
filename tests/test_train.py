"""mepkg.train: overfitting, determinism, fold outputs, and a fold that learns to spot."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FOLD_FRAME_SKIP, FOLD_K, TINY_MODEL, synthetic_fold

from mepkg.h5io import read_scores, write_features
from mepkg.model import SlowFastMamba, load_model
from mepkg.train import TrainConfig, fold_loss, make_optimizer, run_fold

torch.set_num_threads(1)

def test_overfits_a_handful_of_windows():
    torch.manual_seed(0)
    sets, labels = synthetic_fold(subjects=("s1",), videos_per_subject=1, n_sampled=60)
    x = torch.as_tensor(sets[0].features[:6])                        # 6 x 36 x 10
    spot_t = (torch.rand(6, FOLD_K) > 0.6).float()
    cls_t = torch.randint(0, 5, (6, FOLD_K))
    model = SlowFastMamba(**TINY_MODEL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    weights = torch.ones(5)
    config = TrainConfig()
    losses = []
    for _ in range(100):
        spot, logits = model(x)
        loss, _, _ = fold_loss(spot, logits, spot_t, cls_t, weights, config)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_loss_is_the_release_weighted_mean():
    spot = torch.tensor([[0.5, 0.5]])
    logits = torch.zeros(1, 2, 5)
    loss, mse, ce = fold_loss(spot, logits, torch.tensor([[1.0, 0.0]]), torch.tensor([[0, 4]]),
                              torch.tensor([2.0, 1, 1, 1, 6]), TrainConfig())
    assert mse.item() == pytest.approx(0.25)
    assert ce.item() == pytest.approx((2 + 6) * np.log(5) / 2)      # sum w nll / n frames
    assert loss.item() == pytest.approx(0.9 * 0.25 + 0.1 * ce.item())


def _config(**kw):
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "model": TINY_MODEL, "device": "cpu", **kw})


def test_fold_outputs_and_same_seed_same_scores(tmp_path):
    sets, labels = synthetic_fold()
    feature_dir = tmp_path / "features"
    for fs in sets:
        write_features(feature_dir / f"{fs.attrs['video_id']}.h5", fs)
    labels_csv = tmp_path / "labels.csv"
    labels.to_csv(labels_csv, index=False)

    out_a = run_fold(feature_dir, labels_csv, "s2", tmp_path / "a", _config())
    out_b = run_fold(feature_dir, labels_csv, "s2", tmp_path / "b", _config())
    scores_a, scores_b = read_scores(out_a / "scores.h5"), read_scores(out_b / "scores.h5")
    assert [s.video_id for s in scores_a] == ["s2_0", "s2_1"]
    for a, b in zip(scores_a, scores_b):
        np.testing.assert_array_equal(a.spot, b.spot)
        np.testing.assert_array_equal(a.logits, b.logits)
        assert a.spot.shape == ((120 // 5 - 1 + 1) * 5,) and a.logits.shape == (120, 5)
        assert (a.frame_skip, a.k, a.n_frames, a.fps) == (FOLD_FRAME_SKIP, FOLD_K, 240, 100.0)

    log_rows = pd.read_csv(out_a / "train_log.csv")
    assert list(log_rows.columns) == ["epoch", "loss", "mse", "ce", "lr", "seconds"]
    assert log_rows["epoch"].tolist() == [1, 2]
    model, meta = load_model(out_a / "model.pt")
    assert (meta["k"], meta["frame_skip"], meta["fps"]) == (FOLD_K, FOLD_FRAME_SKIP, 100.0)
    assert meta["class_names"] == ["negative", "positive", "surprise", "others", "neutral"]
    assert meta["train_config"]["seed"] == 100 and meta["model_config"]["d_model"] == 16
    assert len(meta["input_checksum"]) == 64
    torch.testing.assert_close(model.spot_head.weight,
                               load_model(out_b / "model.pt")[0].spot_head.weight, rtol=0, atol=0)

    # another seed: other weights
    out_c = run_fold(feature_dir, labels_csv, "s2", tmp_path / "c", _config(seed=7))
    assert not np.array_equal(read_scores(out_c / "scores.h5")[0].spot, scores_a[0].spot)


def test_subject_all_predicts_nothing_and_unknown_subject_is_an_error(tmp_path):
    sets, labels = synthetic_fold(subjects=("s1", "s2"), videos_per_subject=1)
    out = run_fold(None, labels, "all", tmp_path / "all", _config(epochs=1), videos=sets)
    assert (out / "model.pt").exists() and not (out / "scores.h5").exists()
    with pytest.raises(ValueError, match="subject 's9' has no features.*s1, s2"):
        run_fold(None, labels, "s9", tmp_path / "x", _config(epochs=1), videos=sets)
    with pytest.raises(ValueError, match="no video of another subject"):
        run_fold(None, labels, "s1", tmp_path / "z", _config(), videos=sets[:1])
    with pytest.raises(FileNotFoundError, match="no such features folder"):
        run_fold(tmp_path / "missing", labels, "s1", tmp_path / "y", _config())
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="run the features stage"):
        run_fold(tmp_path / "empty", labels, "s1", tmp_path / "y", _config())


@pytest.mark.slow
def test_fold_learns_to_spot_synthetic_bumps(tmp_path):
    sets, labels = synthetic_fold(subjects=("s1", "s2", "s3", "s4"), videos_per_subject=2,
                                  n_sampled=200, events_per_video=4, seed=3)
    config = TrainConfig(epochs=12, batch_size=16, max_lr=3e-3, device="cpu",
                         model=dict(d_model=32, depth=1, d_state=8))
    out = run_fold(None, labels, "s4", tmp_path / "fold", config, videos=sets)
    for scores in read_scores(out / "scores.h5"):
        inside = np.zeros(len(scores.spot), bool)
        for row in labels[labels["video"] == scores.video].itertuples():
            inside[row.onset // FOLD_FRAME_SKIP + 1: row.offset // FOLD_FRAME_SKIP] = True
        ratio = scores.spot[inside].mean() / scores.spot[~inside].mean()
        assert ratio > 2, (scores.video_id, ratio)


def test_make_optimizer_is_fused_adam_with_the_default_update():
    torch.manual_seed(0)
    # eval mode: batch norm in training mode cancels the stem's biases, whose
    # gradients would then be rounding noise that Adam scales up
    models = [SlowFastMamba(d_model=16, depth=1, d_state=8).eval() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    start = models[0].stem[0].weight.detach().clone()
    fused = make_optimizer(models[0], 1e-2)
    plain = torch.optim.Adam(models[1].parameters(), lr=1e-2, foreach=False)
    assert fused.defaults["fused"] and fused.defaults["lr"] == 1e-2
    x = torch.randn(4, 36, 16)
    for _ in range(5):
        for model, opt in zip(models, (fused, plain)):
            spot, logits = model(x)
            opt.zero_grad()
            (spot.square().mean() + logits.square().mean()).backward()
            opt.step()
    for (name, p), q in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")
    assert not torch.equal(models[0].stem[0].weight, start)          # it did update


# ---------------------------------------------------------------- fixed-shape steps (train_step)
def test_fixed_shape_batches_train_and_predict_like_the_plain_loop(tmp_path, monkeypatch, caplog):
    """What a CUDA graph replays, run on the CPU without the graph ("static"): full batches
    through the static buffers, the last smaller batch eagerly, prediction padded to the
    fixed batch. Same losses as the plain loop, bit for bit; the same scores."""
    import logging
    import re

    import mepkg.train as train

    sets, labels = synthetic_fold()
    config = _config(epochs=3, batch_size=10, eval_batch_size=16)
    with caplog.at_level(logging.INFO, logger="mepkg.train"):
        plain = run_fold(None, labels, "s2", tmp_path / "plain", config, videos=sets)
    n_windows = int(re.search(r"(\d+) windows", caplog.text).group(1))
    assert n_windows % 10 != 0                    # the epoch ends with a smaller batch
    monkeypatch.setattr(train, "step_mode", lambda device, cuda_graph: "static")
    static = run_fold(None, labels, "s2", tmp_path / "static", config, videos=sets)

    log_plain = pd.read_csv(plain / "train_log.csv")
    log_static = pd.read_csv(static / "train_log.csv")
    for column in ("loss", "mse", "ce", "lr"):
        np.testing.assert_array_equal(log_static[column], log_plain[column])
    for a, b in zip(read_scores(plain / "scores.h5"), read_scores(static / "scores.h5")):
        assert len(a.spot) > 16 * FOLD_K // 2          # several prediction batches, the last padded
        np.testing.assert_allclose(b.spot, a.spot, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.logits, a.logits, rtol=1e-5, atol=1e-5)


def test_device_hyperparameters_follow_the_one_cycle_schedule():
    """A graph's Adam reads lr and beta1 from device tensors: the one-cycle schedule (lr and
    momentum) must reach them each step. Checked on the CPU with torch's single-tensor Adam
    (the capturable one needs a GPU) against the fused Adam of the plain loop."""
    from mepkg.train_step import TrainStep

    torch.manual_seed(0)
    # eval mode: batch norm in training mode cancels the stem's biases (see the test above)
    models = [SlowFastMamba(**TINY_MODEL).eval() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    plain_opt = make_optimizer(models[0], 3e-4)
    device_opt = torch.optim.Adam(models[1].parameters(), lr=torch.tensor(3e-4),
                                  betas=(torch.tensor(0.9), torch.tensor(0.999)), foreach=False)
    steps = []
    for model, opt, mode in ((models[0], plain_opt, "eager"), (models[1], device_opt, "static")):
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=20)
        steps.append(TrainStep(model, opt, schedule, lambda s, l, st, ct: (
            fold_loss(s, l, st, ct, torch.ones(5), TrainConfig())), batch_size=4, mode=mode))
    gen = torch.Generator().manual_seed(1)
    losses, beta1 = {"eager": [], "static": []}, []
    for _ in range(20):
        x = torch.randn(4, 36, FOLD_K, generator=gen)
        spot_t = (torch.rand(4, FOLD_K, generator=gen) > 0.7).float()
        cls_t = torch.randint(0, 5, (4, FOLD_K), generator=gen)
        for step in steps:
            losses[step.mode].append(step(x, spot_t, cls_t)[0].item())
        group, ref = device_opt.param_groups[0], plain_opt.param_groups[0]
        assert isinstance(group["lr"], torch.Tensor) and isinstance(group["betas"][0], torch.Tensor)
        assert group["lr"].item() == pytest.approx(ref["lr"], rel=1e-6)
        assert group["betas"][0].item() == pytest.approx(ref["betas"][0], rel=1e-6)
        beta1.append(group["betas"][0].item())
    assert min(beta1) < 0.86 and max(beta1) > 0.94             # the momentum did cycle
    np.testing.assert_allclose(losses["static"], losses["eager"], rtol=1e-4)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6)


def test_graphs_only_on_cuda():
    from mepkg.train_step import Predictor, TrainStep, step_mode

    assert step_mode(torch.device("cpu"), True) == "eager"
    assert step_mode(torch.device("cuda"), False) == "eager"
    assert step_mode(torch.device("cuda", 0), True) == "graph"
    model = SlowFastMamba(**TINY_MODEL)
    opt = make_optimizer(model, 1e-3)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        TrainStep(model, opt, torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=2),
                  lambda *a: None, 4, "graph")
    with pytest.raises(ValueError, match="expected one of eager, static, graph"):
        Predictor(model, 4, "compiled")


def test_failed_capture_warns_once_and_trains_eagerly(monkeypatch, caplog):
    """The graph path's control flow on the CPU: warm-up steps, then a capture that fails
    (torch.cuda.graph raising, as an op that cannot be captured does): one warning, and
    every step, before and after, the plain loop's."""
    import contextlib
    import logging

    import mepkg.train_step as train_step
    from mepkg.train_step import WARMUP_STEPS, TrainStep

    class Uncapturable:
        def __enter__(self):
            raise RuntimeError("operation not permitted when stream is capturing")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: None)
    monkeypatch.setattr(torch.cuda, "graph", lambda graph: Uncapturable())
    monkeypatch.setattr(train_step, "_side_stream", lambda device: contextlib.nullcontext())
    torch.manual_seed(0)
    models = [SlowFastMamba(**TINY_MODEL).eval() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    steps = []
    for model, mode in zip(models, ("eager", "static")):
        opt = make_optimizer(model, 1e-3)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=12)
        steps.append(TrainStep(model, opt, schedule, lambda s, l, st, ct: (
            fold_loss(s, l, st, ct, torch.ones(5), TrainConfig())), batch_size=4, mode=mode))
    steps[1].mode = "graph"                     # the CUDA control flow, on the CPU
    gen = torch.Generator().manual_seed(2)
    losses = [[], []]
    with caplog.at_level(logging.WARNING, logger="mepkg.train_step"):
        for i in range(WARMUP_STEPS + 5):
            n = 3 if i == WARMUP_STEPS + 2 else 4   # one smaller batch on the way
            x = torch.randn(n, 36, FOLD_K, generator=gen)
            spot_t = (torch.rand(n, FOLD_K, generator=gen) > 0.7).float()
            cls_t = torch.randint(0, 5, (n, FOLD_K), generator=gen)
            for j, step in enumerate(steps):
                losses[j].append(step(x, spot_t, cls_t).tolist())
    assert losses[0] == losses[1]
    assert steps[1].mode == "eager"
    warnings = [r for r in caplog.records if "capture of the training step failed" in r.message]
    assert len(warnings) == 1 and "training this fold eagerly" in warnings[0].message
