"""Leave-one-subject-out: a fold never trains on a window of its held-out subject.

Every video's features carry a subject signature (a constant in channels 34-35
no real flow reaches), and the model's forward pass is spied on while it
trains: the held-out subject's signature must never be batched, every other
subject's must. The same check runs through the workflow's own train_fold
script, and the model file's input checksum must cover exactly the training
subjects' feature files.
"""

import hashlib
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from mepkg.h5io import read_scores, write_features
from mepkg.model import SlowFastMamba, load_model
from mepkg.train import TrainConfig, run_fold
from conftest import FOLD_K, ROOT, TINY_MODEL, synthetic_fold

SUBJECTS = ("s1", "s2", "s3")
SIGNATURE = {"s1": 1000.0, "s2": 2000.0, "s3": 3000.0}   # channel 35; x0.9..1.1 augment
                                                          # keeps them apart (900..3300)


def _signed_fold():
    sets, labels = synthetic_fold(subjects=SUBJECTS, videos_per_subject=2, n_sampled=60,
                                  events_per_video=2)
    for fs in sets:
        fs.features[:, 34:36, :] = SIGNATURE[fs.attrs["subject"]]
    return sets, labels


@pytest.fixture
def batched_subjects(monkeypatch):
    """Spy: the subjects whose windows reach the model in training mode, per batch."""
    seen: list[set] = []
    forward = SlowFastMamba.forward

    def spy(self, x):
        if self.training:
            level = x[:, 35, 0].detach().cpu().numpy()                  # B
            seen.append({s for s, v in SIGNATURE.items()
                         if np.any(np.abs(level - v) <= 0.11 * v)})
        return forward(self, x)

    monkeypatch.setattr(SlowFastMamba, "forward", spy)
    return seen


def _config(**kw):
    return TrainConfig(**{"epochs": 1, "batch_size": 4, "model": TINY_MODEL, "device": "cpu", **kw})


@pytest.mark.parametrize("held_out", SUBJECTS)
def test_run_fold_never_batches_a_window_of_the_held_out_subject(tmp_path, batched_subjects,
                                                                 held_out):
    sets, labels = _signed_fold()
    out = run_fold(None, labels, held_out, tmp_path / held_out, _config(), videos=sets)
    assert batched_subjects, "the spy saw no training batch"
    trained_on = set().union(*batched_subjects)
    assert held_out not in trained_on, f"fold {held_out} trained on its held-out subject"
    assert trained_on == set(SUBJECTS) - {held_out}       # ... and on every other subject
    # the held-out subject is what the fold predicts, and only it
    assert {s.subject for s in read_scores(out / "scores.h5")} == {held_out}
    assert [s.video_id for s in read_scores(out / "scores.h5")] == [
        f"{held_out}_0", f"{held_out}_1"]


def test_subject_all_trains_on_every_subject(tmp_path, batched_subjects):
    sets, labels = _signed_fold()
    run_fold(None, labels, "all", tmp_path / "all", _config(), videos=sets)
    assert set().union(*batched_subjects) == set(SUBJECTS)


def _feature_files(tmp_path):
    sets, labels = _signed_fold()
    paths = [write_features(tmp_path / "features" / f"{fs.attrs['video_id']}.h5", fs)
             for fs in sets]
    labels_csv = tmp_path / "labels.csv"
    labels.to_csv(labels_csv, index=False)
    return sorted(paths), labels_csv


def _checksum(paths, labels_csv) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    h.update(Path(labels_csv).read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("held_out", ["s1", "s3"])
def test_workflow_train_fold_script_holds_its_subject_out(tmp_path, batched_subjects, held_out):
    """workflow_scripts/train_fold.py as Snakemake runs it (rule train_fold's
    input is every video's features; the script must pass the fold's subject)."""
    paths, labels_csv = _feature_files(tmp_path)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    train_params = config["train"]
    train_params.update(epochs=1, batch_size=4, model=TINY_MODEL)
    out = tmp_path / "folds" / held_out
    fake = SimpleNamespace(
        input=SimpleNamespace(features=[str(p) for p in paths], labels=str(labels_csv)),
        output=SimpleNamespace(model=str(out / "model.pt"), scores=str(out / "scores.h5"),
                               train_log=str(out / "train_log.csv")),
        params=SimpleNamespace(train=train_params, quality=config["quality"]), threads=1,
        rule="train_fold",
        resources=SimpleNamespace(device="cpu", cuda_graph=0),
        wildcards=SimpleNamespace(subject=held_out), log=[str(tmp_path / "train.log")])
    runpy.run_path(str(ROOT / "workflow_scripts" / "train_fold.py"),
                   init_globals={"snakemake": fake})
    trained_on = set().union(*batched_subjects)
    assert held_out not in trained_on and trained_on == set(SUBJECTS) - {held_out}
    assert {s.subject for s in read_scores(out / "scores.h5")} == {held_out}
    # the model file records the checksum of exactly the training subjects' features
    train_files = [p for p in paths if not p.name.startswith(f"{held_out}_")]
    assert len(train_files) == 4
    _, meta = load_model(out / "model.pt")
    assert meta["input_checksum"] == _checksum(train_files, labels_csv)
    assert meta["input_checksum"] != _checksum(paths, labels_csv)


def test_k_matches_the_windows():
    # the signature channels are inside the 36 x k window the model reads
    sets, _ = _signed_fold()
    assert sets[0].features.shape[1:] == (36, FOLD_K)
    assert torch.as_tensor(sets[0].features)[:, 35].min() == SIGNATURE["s1"]
