"""Synthetic micro-expression benchmark: long face videos with known events.

Identities are morphs of one real face photo (``faces``); expressions,
blinks, head motion and lighting are displacement fields and gains applied
per frame (``motion``); ``plan`` decides who, what and when without
rendering; ``layouts`` and ``sheets`` write the real datasets' on-disk
formats plus ``truth.csv``.

    plan = plan_benchmark("tiny", "sammlv", seed=0)      # milliseconds: folds, events
    generate_benchmark("data/synth", "tiny", "sammlv")   # frames + sheets + truth.csv
    render_video("bench.avi", seconds=20, frame_size=640)
"""

from mepkg.synth.layouts import generate_benchmark, render_video
from mepkg.synth.plan import (LAYOUT_FPS, SIZES, BenchmarkPlan, Identity, PlannedEvent,
                              SizePreset, VideoPlan, plan_benchmark, plan_video)

__all__ = ["BenchmarkPlan", "Identity", "LAYOUT_FPS", "PlannedEvent", "SIZES", "SizePreset",
           "VideoPlan", "generate_benchmark", "plan_benchmark", "plan_video", "render_video"]
