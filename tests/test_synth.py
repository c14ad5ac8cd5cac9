"""Tests of the synthetic ME benchmark (mepkg.synth).

Fast tests check the plan, the motion fields and the label sheets without
rendering videos; the slow ones render the tiny benchmark (both frame
layouts, once per session) and check it with dlib and optical flow.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from mepkg.constants import EMOTIONS, SAMM_EMOTION_SHEET, SAMM_INTERVAL_SHEET
from mepkg.datasets.common import LABEL_COLUMNS
from mepkg.synth import SIZES, generate_benchmark, plan_benchmark, render_video
from mepkg.synth import layouts, sheets
from mepkg.synth.faces import ASTRONAUT_LANDMARKS, detect_faces, render_identity
from mepkg.synth.motion import PATTERNS, VideoRenderer, event_field, profile
from mepkg.synth.plan import TIMING, PlannedEvent

from conftest import FIXTURES  # noqa: E402  (absent on a fresh clone: comparisons skipped)


# ---------------------------------------------------------------- the plan
def test_plan_is_deterministic():
    # called at workflow parse time: its speed is measured in benchmarks/timings.py
    plan = plan_benchmark("standard", "sammlv", seed=3)
    again = plan_benchmark("standard", "sammlv", seed=3)
    pd.testing.assert_frame_equal(plan.truth(), again.truth())
    assert plan.identities == again.identities
    assert [v.jerks for v in plan.videos] == [v.jerks for v in again.videos]
    assert not plan.truth().equals(plan_benchmark("standard", "sammlv", seed=4).truth())


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("layout", ["sammlv", "casme3", "generic"])
def test_plan_events_are_valid_and_apart(size, layout):
    plan = plan_benchmark(size, layout, seed=0)
    preset = SIZES[size]
    assert len(plan.subjects) == preset.n_subjects == len(plan.folds())
    assert len(plan.videos) == preset.n_subjects * preset.videos_per_subject
    gap = math.ceil(TIMING.min_gap_seconds * plan.fps)
    for v in plan.videos:
        micro = [e for e in v.events if e.type == "micro"]
        assert preset.micro_per_video[0] <= len(micro) <= preset.micro_per_video[1]
        ends = [-1] + [x for e in v.events for x in (e.onset, e.offset)] + [v.n_frames]
        # sorted, onset < apex < offset, >= 0.5 s between events and to both ends
        assert all(b - a >= gap for a, b in zip(ends[0::2], ends[1::2]))
        for e in v.events:
            assert e.onset < e.apex < e.offset
        for e in micro:
            assert TIMING.micro_seconds[0] - 1 / plan.fps <= (e.offset - e.onset) / plan.fps \
                <= TIMING.micro_seconds[1] + 1 / plan.fps
            assert 0.5 <= e.amplitude <= 2.0 and e.emotion in EMOTIONS and e.emotion_raw
        for j in v.jerks:       # jerks happen between events
            assert not any(e.onset <= f <= e.offset for e in v.events
                           for f in (j.frame, j.frame + j.frames))
    truth = plan.truth()
    assert list(truth.columns) == LABEL_COLUMNS
    assert set(truth.type) == {"micro", "macro"}
    assert (truth[truth.type == "macro"].emotion == "").all()


def test_plan_names_and_rates_follow_the_layout():
    samm, casme, generic = (plan_benchmark("tiny", layout) for layout in ("sammlv", "casme3", "generic"))
    assert samm.fps == 200 and casme.fps == 30 and generic.fps == 30
    assert samm.subjects == ["001", "002", "003"]
    assert [v.video for v in samm.videos[:2]] == ["001_1", "001_2"]
    assert casme.subjects[0] == "spNO.1" and [v.video for v in casme.videos[:2]] == ["a", "b"]
    raw = set(samm.truth().emotion_raw) - {""}
    assert raw <= {"Anger", "Contempt", "Disgust", "Fear", "Sadness", "Happiness", "Surprise", "Other"}
    raw = set(casme.truth().emotion_raw) - {""}
    assert raw <= {"anger", "disgust", "fear", "sad", "happy", "surprise", "others"}


def test_class_frequencies_are_skewed_like_the_real_sets():
    micro = plan_benchmark("standard", "casme3").truth().query("type == 'micro'")
    freq = micro.emotion.value_counts(normalize=True)
    assert set(freq.index) == set(EMOTIONS)
    for cls, p in TIMING.class_freq:
        assert abs(freq[cls] - p) < 0.03
    assert freq.idxmax() == "negative"


# ---------------------------------------------------------------- motion
def test_profile_rises_to_apex_and_falls_back():
    ev = PlannedEvent(10, 14, 30, "micro", "brow_lower", 1.0)
    t = np.arange(0, 40)
    p = profile(ev, t)
    assert p[10] == 0 and p[14] == 1 and p[30] == pytest.approx(0, abs=1e-12)
    assert (p[:10] == 0).all() and (p[31:] == 0).all()
    assert (np.diff(p[10:15]) > 0).all() and (np.diff(p[14:31]) < 0).all()


@pytest.fixture(scope="module")
def face():
    plan = plan_benchmark("tiny", "sammlv")
    return render_identity(plan.identities["001"], 320)


@pytest.mark.parametrize("pattern", ["unilateral_lip_pull", "unilateral_brow_raise"])
def test_event_field_peak_has_the_amplitude_at_crop_scale(face, pattern):
    (comp,) = PATTERNS[pattern]
    field = event_field(face, pattern, amplitude=2.0)
    magnitude = np.hypot(field[0], field[1])
    y, x = np.unravel_index(np.argmax(magnitude), magnitude.shape)
    assert magnitude.max() == pytest.approx(2.0 * face.crop_px, rel=0.02)   # 2 crop px
    centre = face.landmarks[list(comp.landmarks)].mean(axis=0)
    assert np.hypot(x - centre[0], y - centre[1]) < 1.5
    direction = field[:, y, x] / magnitude.max()
    assert direction == pytest.approx(np.array(comp.direction) / np.hypot(*comp.direction), abs=0.01)
    # local: nothing outside the +-3 sigma box around the centre
    yy, xx = np.nonzero(magnitude > 1e-6)
    reach = 3 * comp.sigma * face.g + 2
    assert np.abs(xx - centre[0]).max() < reach and np.abs(yy - centre[1]).max() < reach


def test_face_geometry_and_frames_are_reproducible(face):
    assert 0.43 < (face.landmarks[16, 0] - face.landmarks[0, 0]) / 320 < 0.6
    plan = plan_benchmark("tiny", "sammlv")
    video = plan.videos[0]
    first = [f for _, f in zip(range(5), VideoRenderer(face, video))]
    again = [f for _, f in zip(range(5), VideoRenderer(face, video))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == (320, 320, 3) and first[0].dtype == np.uint8


# ---------------------------------------------------------------- sheets
def _cells(path: Path, sheet: str, last_row: int) -> dict:
    ws = openpyxl.load_workbook(path)[sheet]
    return {c.coordinate: c.value for row in ws.iter_rows(max_row=last_row) for c in row
            if c.value is not None}


def test_samm_sheets_have_the_real_preamble_and_header(tmp_path):
    plan = plan_benchmark("tiny", "sammlv")
    long_path, micro_path = sheets.write_samm_sheets(plan, tmp_path)
    raw = pd.read_excel(long_path, header=None, dtype=str)
    assert list(raw.iloc[9]) == sheets.SAMM_LV_HEADER            # Excel row 10
    raw = pd.read_excel(micro_path, sheet_name="MICRO_ONLY", header=None, dtype=str)
    assert list(raw.iloc[13])[:11] == sheets.SAMM_MICRO_HEADER[:11]
    if FIXTURES.exists():     # same preamble text, same header row as the real files
        real = FIXTURES / "sammlv_layout"
        assert _cells(long_path, "Sheet1", 10) == _cells(real / SAMM_INTERVAL_SHEET, "Sheet1", 10)
        assert _cells(micro_path, "MICRO_ONLY", 14) == \
            _cells(real / SAMM_EMOTION_SHEET, "MICRO_ONLY", 14)
    body = pd.read_excel(long_path, header=9, dtype={"Subject": str, "Filename": str})
    truth = plan.truth()
    assert len(body) == len(truth)
    assert (body.Onset.to_numpy() == truth.onset.to_numpy() + 1).all()      # 1-based
    assert (body.Duration == body.Offset - body.Onset).all()
    assert set(body.Type) == {"Micro - 1/2", "Macro"}
    assert body.Filename.iloc[0] == "001_1_1"
    micro = pd.read_excel(micro_path, sheet_name="MICRO_ONLY", header=13, dtype=str)
    assert len(micro) == (truth.type == "micro").sum()
    assert list(micro["Estimated Emotion"]) == list(truth[truth.type == "micro"].emotion_raw)


def test_casme3_sheet_layout(tmp_path):
    plan = plan_benchmark("tiny", "casme3")
    path = sheets.write_casme3_sheet(plan, tmp_path)
    assert path.name == "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    body = pd.read_excel(path, sheet_name="label")
    assert list(body.columns) == sheets.CASME3_HEADER
    micro = plan.truth().query("type == 'micro'")
    assert len(body) == len(micro)
    assert (body.Apex.to_numpy() == micro.apex.to_numpy() + 1).all()
    if FIXTURES.exists():
        real = pd.read_excel(FIXTURES / "casme3" / path.name, sheet_name="label", nrows=1)
        assert list(real.columns) == list(body.columns)


def test_sheets_are_byte_reproducible(tmp_path):
    plan = plan_benchmark("tiny", "sammlv")
    a = sheets.write_samm_sheets(plan, tmp_path / "a")
    time.sleep(1.1)        # a timestamp would differ now
    b = sheets.write_samm_sheets(plan, tmp_path / "b")
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))


# ---------------------------------------------------------------- rendered benchmark
@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny benchmark in both frame layouts, rendered once."""
    root = tmp_path_factory.mktemp("synth")
    return {layout: generate_benchmark(root / layout, "tiny", layout, seed=0)
            for layout in ("sammlv", "casme3")}


def _frame(root: Path, layout: str, video, t: int, flags=cv2.IMREAD_COLOR) -> np.ndarray:
    return cv2.imread(str(layouts.frame_dir(root, layout, video) / layouts.frame_name(layout, video, t)),
                      flags)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["sammlv", "casme3"])
def test_tiny_benchmark_layout_and_truth(tiny, layout):
    root = tiny[layout]
    plan = plan_benchmark("tiny", layout)
    truth = pd.read_csv(root / "truth.csv", dtype={"subject": str, "video": str},
                        keep_default_na=False)
    pd.testing.assert_frame_equal(truth, plan.truth(), check_dtype=False)
    assert json.loads((root / layouts.COMPLETE).read_text())["frames"] == \
        sum(v.n_frames for v in plan.videos)
    assert not list(root.parent.glob(f".{layout}.tmp-*"))
    for v in plan.videos:
        files = list(layouts.frame_dir(root, layout, v).glob("*.jpg"))
        assert len(files) == v.n_frames
    v = plan.videos[0]
    first = {"sammlv": "001_1_0001.jpg", "casme3": "0.jpg"}[layout]
    assert (layouts.frame_dir(root, layout, v) / first).exists()
    assert _frame(root, layout, v, 0).shape == (SIZES["tiny"].frame_size,) * 2 + (3,)
    # a second call keeps the complete benchmark; a foreign folder is refused
    assert generate_benchmark(root, "tiny", layout, seed=0) == root
    with pytest.raises(ValueError, match="not this synthetic benchmark"):
        generate_benchmark(root, "tiny", layout, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["sammlv", "casme3"])
def test_dataset_adapters_read_the_benchmark_back(tiny, layout):
    """read_labels on the sheets gives truth.csv (CAS(ME)^3: its MEs only, as the
    real sheet holds only MEs); scan_dataset finds every video with its length."""
    from mepkg.datasets import default_label_files, read_labels, scan_dataset

    root, plan = tiny[layout], plan_benchmark("tiny", layout)
    labels = read_labels(layout, default_label_files(layout, root)).reset_index(drop=True)
    truth = plan.truth()
    if layout == "casme3":
        truth = truth[truth.type == "micro"].reset_index(drop=True)
    pd.testing.assert_frame_equal(labels, truth, check_dtype=False)
    _, manifest = scan_dataset(layout, root)
    assert dict(zip(manifest.video, manifest.n_frames)) == {v.video: v.n_frames for v in plan.videos}
    assert (manifest.fps == plan.fps).all() and (manifest.n_missing == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["sammlv", "casme3"])
def test_dlib_finds_one_face_on_every_video(tiny, layout):
    plan = plan_benchmark("tiny", layout)
    for v in plan.videos:
        faces = detect_faces(_frame(tiny[layout], layout, v, 0))
        assert len(faces) == 1, f"{v.video}: {len(faces)} faces"
        assert faces[0].shape == (68, 2)
        template = render_identity(plan.identities[v.subject], plan.frame_size)
        assert np.abs(faces[0] - template.landmarks).mean() < 3.0     # px


def _crop(gray: np.ndarray, lm: np.ndarray):
    """The feature stage's 320-px crop (docs/method.md §2) and the frame -> crop mapping."""
    g = (lm[42, 0] - lm[39, 0]) / 2
    cx, cy = (lm[39] + lm[42]) / 2
    r0, r1, c0, c1 = int(cy - 3.5 * g), int(cy + 5.5 * g), int(cx - 4.5 * g), int(cx + 4.5 * g)
    scale = np.array([320 / (c1 - c0), 320 / (r1 - r0)])
    return cv2.resize(gray[r0:r1, c0:c1], (320, 320)), lambda p: (p - [c0, r0]) * scale


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["sammlv", "casme3"])
def test_micro_expression_motion_is_there(tiny, layout):
    """Farneback flow, onset -> apex, in the feature crop, minus the nose bridge
    (head motion): every ME's main blob moves by about its amplitude in its
    direction; a region far from the pattern does not move."""
    plan = plan_benchmark("tiny", layout)
    far_motion, alongs = [], []
    for v in plan.videos:
        face = render_identity(plan.identities[v.subject], plan.frame_size)
        for ev in (e for e in v.events if e.type == "micro"):
            onset, to_crop = _crop(_frame(tiny[layout], layout, v, ev.onset, 0), face.landmarks)
            apex, _ = _crop(_frame(tiny[layout], layout, v, ev.apex, 0), face.landmarks)
            flow = cv2.calcOpticalFlowFarneback(onset, apex, None, 0.5, 3, 15, 5, 7, 1.5, 0)
            lm = to_crop(face.landmarks)

            def mean_flow(p, r=8):
                x, y = int(p[0]), int(p[1])
                return flow[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 2).mean(axis=0)

            head = mean_flow(lm[[29, 30]].mean(axis=0), 10)
            comps = PATTERNS[ev.pattern]
            centres = [lm[list(c.landmarks)].mean(axis=0) for c in comps]
            expected = np.array(comps[0].direction) * ev.amplitude      # crop px
            unit = expected / np.linalg.norm(expected)
            measured = mean_flow(centres[0]) - head
            along = measured @ unit / np.linalg.norm(expected)          # 1 = as planned
            across = abs(measured[0] * unit[1] - measured[1] * unit[0])  # crop px
            # Farneback under-reads sub-pixel blobs a little; the noise floor is ~0.5 crop px
            assert 0.3 < along < 1.5 and across < 0.8, (v.video, ev, measured, expected)
            alongs.append(along)
            candidates = lm[[19, 24, 51, 57, 2, 14, 31, 35]]
            far = max(candidates, key=lambda p: min(np.linalg.norm(p - c) for c in centres))
            far_motion.append(np.linalg.norm(mean_flow(far) - head))
    assert 0.6 < np.median(alongs) < 1.2
    assert np.median(far_motion) < 0.25 and max(far_motion) < 1.0


@pytest.mark.slow
def test_generation_is_reproducible_in_parallel(tiny, tmp_path):
    """Same seed, two worker processes: byte-identical sheet, truth and frames."""
    first = tiny["casme3"]
    again = generate_benchmark(tmp_path / "casme3", "tiny", "casme3", seed=0, workers=2)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (again / f).read_bytes() for f in files)


@pytest.mark.slow
def test_astronaut_landmarks_match_dlib():
    from skimage import data

    faces = detect_faces(data.astronaut()[..., ::-1])
    main = max(faces, key=lambda f: np.ptp(f[:, 0]))
    assert np.abs(main - ASTRONAUT_LANDMARKS).max() <= 1.0


@pytest.mark.slow
def test_generic_layout_and_render_video(tmp_path):
    root = generate_benchmark(tmp_path / "generic", "tiny", "generic", seed=0)
    plan = plan_benchmark("tiny", "generic")
    labels = pd.read_csv(root / "labels.csv", keep_default_na=False)
    assert list(labels.columns) == ["subject", "video", "onset", "apex", "offset", "type", "emotion"]
    assert (labels.onset == plan.truth().onset + 1).all()            # 1-based
    from mepkg.datasets import read_labels

    pd.testing.assert_frame_equal(read_labels("generic", root / "labels.csv").reset_index(drop=True),
                                  plan.truth(), check_dtype=False)
    v = plan.videos[0]
    cap = cv2.VideoCapture(str(root / "videos" / v.subject / f"{v.video}.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == v.n_frames
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30)
    cap.release()
    video = render_video(tmp_path / "bench.avi", seconds=1.0, frame_size=640, fps=30)
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    assert ok and frame.shape == (640, 640, 3) and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert len(detect_faces(frame)) == 1


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    """A failure before the end leaves neither ``out`` nor the temporary folder."""
    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(layouts, "write_frames", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate_benchmark(tmp_path / "out", "tiny", "casme3")
    assert list(tmp_path.iterdir()) == []
