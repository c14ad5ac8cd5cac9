"""Hazards of real footage in the synthetic benchmark (mepkg.synth.hazards)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mepkg.synth import generate_benchmark
from mepkg.synth.hazards import (HazardConfig, HazardEvent, HazardRenderer,
                                 intervals_over_no_face, plan_hazards)
from mepkg.synth.layouts import write_frames
from mepkg.synth.plan import plan_video

ALL = HazardConfig(occluder=True, drift_out=True, leave=True)


def test_hazards_are_off_by_default_and_validated():
    assert not HazardConfig().enabled and ALL.enabled and HazardConfig(flicker=0.1).enabled
    with pytest.raises(ValueError, match="codec='x264'"):
        HazardConfig(codec="x264")
    with pytest.raises(ValueError, match="unknown option.*'hand'"):
        HazardConfig.from_dict({"hand": True})
    with pytest.raises(ValueError, match="needs layout generic, not sammlv"):
        generate_benchmark("/nonexistent", "tiny", "sammlv", hazards={"codec": "mp4v"})


def test_each_hazard_happens_once_in_its_own_slot():
    events = plan_hazards(1600, 200.0, ALL, seed=5)
    assert sorted(e.hazard for e in events) == ["drift_out", "leave", "occluder"]
    assert events == plan_hazards(1600, 200.0, ALL, seed=5)           # deterministic
    assert events != plan_hazards(1600, 200.0, ALL, seed=6)
    for a, b in zip(events, events[1:]):
        assert a.offset < b.onset                                     # never overlapping
    assert events[0].onset >= 100 and events[-1].offset < 1500        # 0.5 s margins
    assert plan_hazards(1600, 200.0, HazardConfig(flicker=0.2), seed=5) == []


def _renderer(events, flicker=0.0):
    """A white 'face' (its landmark box: columns 100-199, rows 100-199) on black, 320 px,
    the mouth (landmarks 48-67) at row 180."""
    points = np.array([[100, 100], [199, 199]] * 34, np.float32)
    points[48:68] = [[130, 180], [170, 180]] * 10
    return HazardRenderer(points, 320, 30.0, HazardConfig(leave=True, drift_out=True,
                                                          occluder=True, flicker=flicker),
                          events, seed=0)


def _frames(n):
    frame = np.zeros((320, 320, 3), np.uint8)
    frame[100:200, 100:200] = 255
    return (frame.copy() for _ in range(n))


@pytest.mark.parametrize("hazard", ["leave", "drift_out"])
def test_no_face_rows_are_the_frames_with_less_than_half_the_face_inside(hazard):
    event = HazardEvent(hazard, 10, 69, 12)
    renderer = _renderer([event])
    out = list(renderer.apply(_frames(80)))
    inside = np.array([(f[100:200, :, 0] > 128).sum() / 100 / 100 for f in out])
    assert inside[:10].min() == 1.0 and inside[70:].min() == 1.0      # before and after
    rows = renderer.table("s1", "v1")
    gone = [r for r in rows if r["hazard"] == "no_face"]
    if hazard == "drift_out":                                         # 35 % out at most
        assert gone == [] and inside[30:50].max() == pytest.approx(0.65, abs=0.02)
    else:
        (row,) = gone
        assert (inside[row["onset"]:row["offset"] + 1] < 0.5).all()
        assert inside[row["onset"] - 1] >= 0.5 and inside[row["offset"] + 1] >= 0.5
        assert inside[25:55].max() == 0.0                             # fully gone in between


def test_occluder_crosses_the_lower_face_during_its_event_only():
    renderer = _renderer([HazardEvent("occluder", 5, 34, 30)])
    out = list(renderer.apply(_frames(40)))
    changed = [int((f != next(_frames(1))).any(axis=2).sum()) for f in out]
    assert changed[:5] == [0] * 5 and changed[35:] == [0] * 5
    assert min(changed[5:35]) > 0
    ys = np.flatnonzero((out[20] != next(_frames(1))).any(axis=(1, 2)))
    assert ys.min() > 120 and ys.max() < 220                          # lower face only


def test_flicker_changes_the_gain_every_frame():
    out = list(_renderer([], flicker=0.2).apply(_frames(30)))
    levels = [float(f[150, 150, 0]) for f in out]
    assert max(levels) == 255 and min(levels) < 230


def test_mp4v_output_is_a_readable_mpeg4_video(tmp_path):
    _, video = plan_video(seconds=1, fps=30, seed=0)
    path = tmp_path / "v.mp4"
    write_frames(_frames(30), path, "generic", video, 320, quality=50, codec="mp4v")
    cap = cv2.VideoCapture(str(path))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 30 and fourcc.lower() in ("mp4v", "fmp4")   # FFmpeg's tag for MPEG-4 Part 2


def test_intervals_over_no_face_counts_overlaps_per_video():
    import pandas as pd

    hazards = pd.DataFrame({"subject": ["1", "1"], "video": ["a", "a"],
                            "hazard": ["leave", "no_face"], "onset": [90, 100],
                            "offset": [300, 200]})
    intervals = pd.DataFrame({"subject": ["1", "1", "1", "2"], "video": ["a", "a", "a", "a"],
                              "onset": [10, 190, 201, 150], "offset": [99, 195, 260, 160]})
    assert intervals_over_no_face(intervals, hazards)["onset"].tolist() == [190]
