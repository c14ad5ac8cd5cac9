"""HDF5 schemas: landmark and feature files round-trip; truncated or foreign files are rejected."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mepkg import __version__
from mepkg.h5io import (FeatureSet, LandmarkTrack, channel_names, read_features, read_landmarks,
                        write_features, write_landmarks)


def make_track(w: int = 4) -> LandmarkTrack:
    rng = np.random.default_rng(0)
    detected = np.array([True, False, True, True])[:w]
    points = rng.uniform(0, 640, (w, 68, 2)).astype(np.float32)
    points[~detected] = np.nan
    return LandmarkTrack(
        ref_frame=np.arange(w, dtype=np.int64) * 105,
        face_box=rng.uniform(0, 640, (w, 4)).astype(np.float32),
        landmarks=points, detected=detected,
        attrs={"backend": "dlib", "backend_version": "20.0.1", "k": 30, "frame_skip": 7,
               "n_frames": 600, "fps": 200.0, "video": "/data/006_1"})


def make_features(w: int = 3, k: int = 30) -> FeatureSet:
    rng = np.random.default_rng(1)
    return FeatureSet(
        features=rng.normal(size=(w, 36, k)).astype(np.float32),
        window_start=np.arange(w, dtype=np.int64) * (k // 2),
        landmarks=rng.uniform(0, 320, (w, 68, 2)).astype(np.float32),
        crop_box=np.tile(np.array([10, 280, 20, 290], np.int32), (w, 1)),
        quality=np.array([0, 1, 6], np.uint8)[:w],
        attrs={"video_id": "006_1", "subject": "006", "video": "006_1", "fps": 200.0,
               "frame_skip": 7, "k": k, "n_frames": 600, "landmark_backend": "dlib",
               "flow_params": '{"pyr_scale": 0.5}', "mepkg_version": "0.1.0"})


def test_landmarks_round_trip(tmp_path):
    track = make_track()
    path = write_landmarks(tmp_path / "lm" / "006_1.h5", track)
    back = read_landmarks(path)
    for name in ("ref_frame", "face_box", "landmarks", "detected"):
        np.testing.assert_array_equal(getattr(back, name), getattr(track, name))
        assert getattr(back, name).dtype == getattr(track, name).dtype
    assert back.attrs == {**track.attrs, "mepkg_version": __version__}


@pytest.mark.parametrize("writer", ["landmarks", "features", "scores"])
def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary(
        tmp_path, monkeypatch, writer):
    """Atomic writes: a crash after some datasets are written (here: the second
    create_dataset raises) leaves the previous complete file and no temporary."""
    from mepkg.h5io import VideoScores, read_scores, write_scores

    spot = np.linspace(0, 1, 10, dtype=np.float32)
    scores = [VideoScores("006_1", "006", "006_1", spot, np.zeros((10, 5), np.float32), 7, 30)]
    write = {"landmarks": lambda p: write_landmarks(p, make_track()),
             "features": lambda p: write_features(p, make_features()),
             "scores": lambda p: write_scores(p, scores, fold="006")}[writer]
    read = {"landmarks": read_landmarks, "features": read_features, "scores": read_scores}[writer]
    path = tmp_path / "out" / "006_1.h5"
    write(path)
    before = path.read_bytes()
    calls = []
    real = h5py.Group.create_dataset

    def crash(self, name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", crash)
    with pytest.raises(OSError, match="simulated"):
        write(path)
    monkeypatch.undo()
    assert len(calls) == 2                                  # it did fail midway
    assert path.read_bytes() == before                      # the old file, untouched
    assert read(path)                                       # ... and still readable
    assert sorted(p.name for p in path.parent.iterdir()) == ["006_1.h5"]   # no temporary
    path.unlink()
    monkeypatch.setattr(h5py.Group, "create_dataset", crash)
    calls.clear()
    with pytest.raises(OSError):
        write(path)
    assert list(path.parent.iterdir()) == []                # no file that looks complete


def test_features_round_trip(tmp_path):
    fs = make_features()
    back = read_features(write_features(tmp_path / "006_1.h5", fs))
    for name in ("features", "window_start", "landmarks", "crop_box", "quality"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fs, name))
        assert getattr(back, name).dtype == getattr(fs, name).dtype
    assert back.attrs == {**fs.attrs, "channel_names": channel_names()}
    assert back.n_windows == 3 and back.k == 30
    with h5py.File(tmp_path / "006_1.h5") as h5:
        assert h5.attrs["schema"] == "mepkg.features/1"


def test_truncated_files_are_rejected(tmp_path):
    for write, read, obj in ((write_landmarks, read_landmarks, make_track()),
                             (write_features, read_features, make_features())):
        path = write(tmp_path / "full.h5", obj)
        cut = tmp_path / "cut.h5"
        cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(ValueError, match="cut.h5.*not a readable HDF5"):
            read(cut)


def test_foreign_files_are_rejected(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("images", data=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="other.h5: not a mepkg landmarks file"):
        read_landmarks(other)
    with pytest.raises(ValueError, match="other.h5: not a mepkg features file"):
        read_features(other)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        read_features(tmp_path / "missing.h5")


def test_wrong_shapes_and_missing_parts_are_rejected(tmp_path):
    path = write_features(tmp_path / "f.h5", make_features())
    with h5py.File(path, "a") as h5:                      # 35 channels instead of 36
        data = h5["features"][()]
        del h5["features"]
        h5.create_dataset("features", data=data[:, :35])
    with pytest.raises(ValueError, match="'features' has shape \\(3, 35, 30\\).*expected nx36x30"):
        read_features(path)
    path = write_landmarks(tmp_path / "l.h5", make_track())
    with h5py.File(path, "a") as h5:
        del h5["detected"]
    with pytest.raises(ValueError, match="lacks dataset 'detected'"):
        read_landmarks(path)
    with h5py.File(path, "a") as h5:
        del h5.attrs["frame_skip"]
    with pytest.raises(ValueError, match="lacks attribute\\(s\\) frame_skip"):
        read_landmarks(path)


def test_writers_check_consistency(tmp_path):
    fs = make_features()
    fs.quality = fs.quality[:2]
    with pytest.raises(ValueError, match="'quality' has shape \\(2,\\), expected \\(3,\\)"):
        write_features(tmp_path / "f.h5", fs)
    fs = make_features()
    del fs.attrs["video_id"]
    with pytest.raises(ValueError, match="lacks attribute\\(s\\) video_id"):
        write_features(tmp_path / "f.h5", fs)
    assert not (tmp_path / "f.h5").exists()
    track = make_track()
    track.landmarks = track.landmarks[:, :5]
    with pytest.raises(ValueError, match="inconsistent landmark track"):
        write_landmarks(tmp_path / "l.h5", track)


def test_scores_round_trip(tmp_path):
    from mepkg.h5io import VideoScores, read_scores, write_scores

    spot = np.linspace(0, 1, 45, dtype=np.float32)
    logits = np.arange(45 * 5, dtype=np.float32).reshape(45, 5)
    path = write_scores(tmp_path / "scores.h5", [VideoScores("006_1", "006", "006_1", spot,
                                                             logits, frame_skip=7, k=30)],
                        fold="006")
    (back,) = read_scores(path)
    np.testing.assert_array_equal(back.spot, spot)
    np.testing.assert_array_equal(back.logits, logits)
    assert (back.video_id, back.subject, back.frame_skip, back.k) == ("006_1", "006", 7, 30)
    with pytest.raises(ValueError, match="not a mepkg scores file"):
        read_scores(write_features(tmp_path / "f.h5", make_features()))


def test_files_name_their_channels_classes_and_writer_for_other_tools(tmp_path):
    """Read with h5py alone: no mepkg needed to know what the axes mean."""
    from mepkg.h5io import VideoScores, write_scores

    write_landmarks(tmp_path / "l.h5", make_track())
    write_features(tmp_path / "f.h5", make_features())
    write_scores(tmp_path / "s.h5", [VideoScores("006_1", "006", "006_1", np.zeros(4, np.float32),
                                                  np.zeros((4, 5), np.float32), 7, 30)], fold="006")
    for name in ("l.h5", "f.h5", "s.h5"):
        with h5py.File(tmp_path / name) as h5:
            assert h5.attrs["mepkg_version"] == __version__, name
    with h5py.File(tmp_path / "f.h5") as h5:
        names = [str(n) for n in h5.attrs["channel_names"]]
    # docs/method.md §2.7: (dx, dy) of each of the 18 ROI motions, interleaved
    assert len(names) == 36 == len(set(names))
    assert names[0].endswith("_dx") and names[1] == names[0][:-3] + "_dy"
    assert all(n.endswith("_dx") for n in names[::2]) and all(n.endswith("_dy") for n in names[1::2])
    with h5py.File(tmp_path / "s.h5") as h5:
        assert [str(c) for c in h5.attrs["class_names"]] == [
            "negative", "positive", "surprise", "others", "neutral"]


def test_features_in_another_channel_order_are_rejected(tmp_path):
    path = write_features(tmp_path / "f.h5", make_features())
    with h5py.File(path, "a") as h5:
        h5.attrs["channel_names"] = list(reversed(channel_names()))
    with pytest.raises(ValueError, match="not in mepkg's order; re-run features"):
        read_features(path)
