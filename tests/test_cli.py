"""Every `mepkg` sub-command end to end on tiny synthetic data, checking content.

synth -> labels -> manifest -> landmarks -> features -> train-fold -> decode ->
evaluate -> package-model -> spot, once for a SAMM-LV-layout folder (frame
folders at 200 fps, k 30, frame_skip 7) and once for a CAS(ME)^3-layout folder
(spNO.<n>/<a|b>/color frame folders at 30 fps, k 50, frame_skip 1).

To stay fast, the stages after the manifest use one video of each of two
subjects: the fold holds the second subject out and trains on the first, the
model for `spot` trains on both. `train-fold` has no model-size option, so
this is also the one test that trains (one epoch, a few windows) and runs the
paper-size model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mepkg.cli import main
from mepkg.decode import DecodePriors, decode_videos, k_prime_from_labels
from mepkg.intervals import apply_veto
from mepkg.h5io import VideoScores, read_features, read_landmarks, read_scores
from mepkg.model import count_parameters, load_model
from mepkg.spot import SPOT_COLUMNS
from mepkg.targets import n_windows
from mepkg.datasets.frames import sampled_count
from mepkg.train import predict_video

pytestmark = pytest.mark.slow

LAYOUTS = {   # docs/method.md §1.6
    "sammlv": dict(fps=200.0, k=30, frame_skip=7, sheets=["SAMM_LongVideos_V3_Release.xlsx",
                                                           "SAMM_Micro_FACS_Codes_v2.xlsx"]),
    "casme3": dict(fps=30.0, k=50, frame_skip=1,
                   sheets=["cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"]),
}
EVENT_COLUMNS = ["subject", "video", "onset", "apex", "offset", "type", "emotion"]


def mepkg(*args) -> None:
    args = [str(a) for a in args]
    assert main(args) == 0, f"mepkg {' '.join(args)} failed"


class Run:
    """What the pipeline wrote for one layout."""

    def __init__(self, layout: str, root: Path):
        self.layout, self.root = layout, root
        self.__dict__.update(LAYOUTS[layout])
        self.data = root / "data"
        self.out = root / "out"


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def run(request, tmp_path_factory):
    torch.set_num_threads(1)
    r = Run(request.param, tmp_path_factory.mktemp(request.param))
    mepkg("synth", "--size", "tiny", "--layout", r.layout, "--seed", 0, "--out", r.data)
    mepkg("labels", "--dataset", r.layout, "--labels", *[r.data / s for s in r.sheets],
          "--out", r.out / "labels_only.csv")
    mepkg("manifest", "--dataset", r.layout, "--root", r.data, "--out", r.out)
    r.manifest = pd.read_csv(r.out / "manifest.csv", dtype={"subject": str, "video": str})
    r.labels = pd.read_csv(r.out / "labels.csv", dtype={"subject": str, "video": str})

    # one video of each of the first two subjects
    firsts = r.manifest.groupby("subject", sort=True).head(1).iloc[:2]
    r.videos = firsts.reset_index(drop=True)
    r.train_subject, r.held_out = r.videos.subject.tolist()
    r.video_paths = {v.video_id: _resolve(r, v.path) for v in r.videos.itertuples()}
    for v in r.videos.itertuples():
        path = r.video_paths[v.video_id]
        common = ["--k", r.k, "--frame-skip", r.frame_skip, "--fps", v.fps,
                  "--subject", v.subject]
        mepkg("landmarks", path, "--out", r.out / "landmarks" / f"{v.video_id}.h5", *common)
        mepkg("features", path, "--out", r.out / "features" / f"{v.video_id}.h5",
              "--landmarks", r.out / "landmarks" / f"{v.video_id}.h5", *common)
    train = ["--features", r.out / "features", "--labels", r.out / "labels.csv",
             "--epochs", 1, "--device", "cpu", "--threads", 1]
    mepkg("train-fold", *train, "--subject", r.held_out, "--out", r.out / "folds" / r.held_out)
    mepkg("train-fold", *train, "--subject", "all", "--out", r.out / "model_all")
    mepkg("decode", "--scores", r.out / "folds" / r.held_out / "scores.h5",
          "--labels", r.out / "labels.csv", "--out", r.out / "intervals.csv")
    for mode in ("official", "strict"):
        mepkg("evaluate", "--pred", r.out / "intervals.csv", "--gt", r.out / "labels.csv",
              "--mode", mode, "--out", r.out / f"metrics_{mode}.json")
    mepkg("package-model", "--model", r.out / "model_all" / "model.pt",
          "--labels", r.out / "labels.csv", "--out", r.out / "model.pt")
    held_video = r.videos.set_index("subject").loc[r.held_out]
    r.spot_video = r.video_paths[held_video.video_id]
    mepkg("spot", r.spot_video, "--model", r.out / "model.pt", "--fps", held_video.fps,
          "--device", "cpu", "--out", r.out / "spot")
    return r


def _resolve(r: Run, path: str) -> Path:
    """Manifest paths are as given to --root's parent; find the folder under the data root."""
    p = Path(path)
    for candidate in (p, r.data / p, r.data / Path(*p.parts[1:])):
        if candidate.exists():
            return candidate
    raise AssertionError(f"manifest path {path} not found under {r.data}")


def test_synth_labels_and_manifest(run):
    truth = pd.read_csv(run.data / "truth.csv", dtype={"subject": str, "video": str})
    only = pd.read_csv(run.out / "labels_only.csv", dtype={"subject": str, "video": str})
    # the label sheet(s) alone and the scanned root give the same events: the synthetic truth
    pd.testing.assert_frame_equal(only, run.labels)
    key = ["subject", "video", "onset"]
    if run.layout == "casme3":       # the part A ME sheet lists the micro-expressions only
        truth = truth[truth.type == "micro"]
    assert set(run.labels.type) == ({"micro"} if run.layout == "casme3" else {"micro", "macro"})
    got = run.labels[EVENT_COLUMNS].sort_values(key).reset_index(drop=True)
    want = truth[EVENT_COLUMNS].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.fillna(""), want.fillna(""), check_dtype=False)
    # the manifest: one row per video folder, the layout's rate, the frames on disk
    m = run.manifest
    assert len(m) == 6 and m.subject.nunique() == 3
    assert (m.fps == run.fps).all() and (m.n_missing == 0).all()
    assert m.video_id.tolist() == [f"{s}_{v}" if run.layout == "casme3" else v
                                   for s, v in zip(m.subject, m.video)]
    for v in m.itertuples():
        assert len(list(_resolve(run, v.path).glob("*.jpg"))) == v.n_frames
    assert set(zip(run.labels.subject, run.labels.video)) <= set(zip(m.subject, m.video))


def test_landmarks_and_features_carry_ids_rate_and_window_counts(run):
    for v in run.videos.itertuples():
        w = n_windows(sampled_count(v.n_frames, run.frame_skip), run.k)
        assert w >= 2
        track = read_landmarks(run.out / "landmarks" / f"{v.video_id}.h5")
        assert (track.attrs["k"], track.attrs["frame_skip"]) == (run.k, run.frame_skip)
        assert track.attrs["fps"] == run.fps and track.attrs["n_frames"] == v.n_frames
        assert track.ref_frame.tolist() == [i * run.k // 2 * run.frame_skip for i in range(w)]
        assert track.detected.all()
        fs = read_features(run.out / "features" / f"{v.video_id}.h5")
        assert fs.attrs["video_id"] == v.video_id          # CAS(ME)^3: spNO.1_a, not "color"
        assert fs.attrs["subject"] == v.subject
        assert fs.attrs["fps"] == run.fps and fs.attrs["n_frames"] == v.n_frames
        assert (fs.k, fs.attrs["frame_skip"]) == (run.k, run.frame_skip)
        assert fs.features.shape == (w, 36, run.k) and np.isfinite(fs.features).all()
        assert fs.window_start.tolist() == [i * run.k // 2 for i in range(w)]
        assert np.abs(fs.features).max() > 0                 # the synthetic faces move


def test_train_fold_predicts_the_held_out_subject_only(run):
    fold = run.out / "folds" / run.held_out
    model, meta = load_model(fold / "model.pt", "cpu")
    assert count_parameters(model) == 8_359_686              # the paper's model, full size
    assert (meta["k"], meta["frame_skip"], meta["fps"]) == (run.k, run.frame_skip, run.fps)
    assert meta["train_config"]["epochs"] == 1
    log = pd.read_csv(fold / "train_log.csv")
    assert log.epoch.tolist() == [1] and np.isfinite(log.loss).all()
    scores = read_scores(fold / "scores.h5")
    held = run.videos[run.videos.subject == run.held_out].iloc[0]
    assert [(s.video_id, s.subject) for s in scores] == [(held.video_id, run.held_out)]
    s = scores[0]
    fs = read_features(run.out / "features" / f"{held.video_id}.h5")
    assert (s.k, s.frame_skip, s.fps, s.n_frames) == (run.k, run.frame_skip, run.fps,
                                                      held.n_frames)
    assert len(s.spot) == (fs.n_windows + 1) * run.k // 2 and s.logits.shape == (len(s.spot), 5)
    # the curve is the fold model's prediction of the held-out features
    spot, logits = predict_video(model, fs.features)
    np.testing.assert_allclose(s.spot, spot, rtol=0, atol=1e-6)
    # the model for spot trained on every subject, so it predicts none
    assert not (run.out / "model_all" / "scores.h5").exists()
    assert (run.out / "model_all" / "model.pt").exists()


def test_decode_and_evaluate(run):
    intervals = pd.read_csv(run.out / "intervals.csv", dtype={"subject": str, "video": str})
    assert intervals.columns.tolist() == ["subject", "video", "onset", "offset", "emotion",
                                          "apex", "score", "vote", "vetoed", "frame_skip"]
    held = run.videos[run.videos.subject == run.held_out].iloc[0]
    assert len(intervals) >= 1
    assert set(intervals.subject) == {run.held_out} and set(intervals.video) == {held.video}
    assert (intervals[["onset", "apex", "offset"]] % run.frame_skip == 0).all().all()
    assert (intervals.onset <= intervals.apex).all() and (intervals.apex <= intervals.offset).all()
    assert (intervals.offset < held.n_frames).all()
    # k' from the training subjects' labels (k_rule train): the held-out one left out
    trained = [s for s in sorted(set(run.labels.subject)) if s != run.held_out]
    k_p = k_prime_from_labels(run.labels, run.frame_skip, trained)
    scores = read_scores(run.out / "folds" / run.held_out / "scores.h5")
    expected = decode_videos(scores, DecodePriors(), k_p)
    assert list(zip(intervals.onset, intervals.offset, intervals.emotion)) == list(
        zip(expected.onset, expected.offset, expected.emotion))

    micro = run.labels[run.labels.type == "micro"]
    official = json.loads((run.out / "metrics_official.json").read_text())
    strict = json.loads((run.out / "metrics_strict.json").read_text())
    assert official["mode"] == "official" and strict["mode"] == "strict"
    assert official["emotions"] == ["negative", "positive", "surprise"]
    # official scores the subjects with predictions: every micro event of the held-out subject
    assert list(official["per_subject"]) == [run.held_out]
    sp = official["spotting"]
    assert sp["tp"] + sp["fn"] == int((micro.subject == run.held_out).sum())
    kept = int((~intervals.vetoed).sum())
    assert sp["tp"] + sp["fp"] == kept
    # strict scores every subject of the ground truth
    assert sorted(strict["per_subject"]) == sorted(set(micro.subject))
    assert strict["spotting"]["tp"] + strict["spotting"]["fn"] == len(micro)
    assert 0.0 <= official["strs"] <= 1.0 and "bootstrap" in official


def test_package_model_and_spot(run):
    _, meta = load_model(run.out / "model.pt", "cpu")
    k_all = k_prime_from_labels(run.labels, run.frame_skip)
    assert meta["decode"]["k_prime"] == k_all
    assert meta["decode"]["priors"] == DecodePriors().to_dict()
    spot = pd.read_csv(run.out / "spot" / "intervals.csv", dtype={"subject": str, "video": str})
    assert spot.columns.tolist() == SPOT_COLUMNS
    assert (run.out / "spot" / "timeline.png").stat().st_size > 1000
    # what spot finds is the packaged model's decoding of the same video's features
    held = run.videos[run.videos.subject == run.held_out].iloc[0]
    model, _ = load_model(run.out / "model.pt", "cpu")
    fs = read_features(run.out / "features" / f"{held.video_id}.h5")
    curve, logits = predict_video(model, fs.features)
    scores = VideoScores(video_id=held.video_id, subject=held.subject, video=held.video,
                         spot=curve, logits=logits, frame_skip=run.frame_skip, k=run.k,
                         fps=run.fps, n_frames=held.n_frames)
    expected = apply_veto(decode_videos([scores], DecodePriors(), k_all))
    assert list(zip(spot.onset, spot.offset, spot.emotion)) == list(
        zip(expected.onset, expected.offset, expected.emotion))
    np.testing.assert_allclose(spot.onset_s, spot.onset / run.fps)
    # the video is named as the dataset names it (CAS(ME)^3: spNO.2 / a, not "color")
    assert (spot.subject.astype(str) == held.subject).all()
    assert (spot.video.astype(str) == held.video).all()
