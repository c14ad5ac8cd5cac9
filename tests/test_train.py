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
