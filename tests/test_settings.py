"""Every setting reaches its stage: changing it changes what the stage does.

Decode priors: each on a hand-built curve that is sensitive to it, through
``decode_videos`` (the stage's entry point, which reads ``DecodePriors``), with
the expected intervals written out. Training settings: spied on in ``run_fold``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mepkg.decode as decode
from mepkg.decode import DecodePriors, decode_intervals, decode_videos
from mepkg.h5io import VideoScores
from mepkg.model import SlowFastMamba
from mepkg.train import TrainConfig, run_fold
from conftest import TINY_MODEL, synthetic_fold

SKIP = 7
BUMP = np.array([0.2, 0.6, 1.0, 0.6, 0.2])


def _video(spot, logits=None):
    spot = np.asarray(spot, np.float32)
    if logits is None:
        logits = np.zeros((len(spot), 5), np.float32)
        logits[:, 0] = 1.0                                 # every frame votes negative
    return VideoScores(video_id="s1_v", subject="s1", video="v", spot=spot,
                       logits=np.asarray(logits, np.float32), frame_skip=SKIP, k=30, fps=200.0)


def _noisy_bumps():
    """Five bumps of different heights and widths on noise (seeded)."""
    rng = np.random.default_rng(0)
    s = np.abs(rng.normal(0.05, 0.03, 200))
    for centre, height, width in [(30, 0.9, 9), (40, 0.5, 7), (90, 0.6, 15), (140, 0.35, 9),
                                  (170, 0.8, 5)]:
        s[centre - width // 2:centre - width // 2 + width] += np.hanning(width) * height
    return s


def _slow_rise():
    """A flat floor, a slow rise (0.015 .. 0.035) then a sharp peak: where the onset
    search starts depends on the level t1 = mean / t1_divisor (mean 0.0619)."""
    s = np.full(40, 0.01)
    s[5:19] = [0.015, 0.02, 0.025, 0.03, 0.035, 0.5, 1.0, 0.5, 0.03, 0.02, 0.01, 0.01, 0.01,
               0.01]
    return s


def _two_bumps(shift):
    s = np.full(40, 0.01)
    s[10:15] += BUMP
    s[10 + shift:15 + shift] += 0.9 * BUMP
    return s


# (prior, curve, k', base priors, changed value, intervals with base, intervals with change)
# Intervals are (start, end, apex) in sampled frames, as decode_intervals returns them.
CASES = [
    # p: a lower threshold admits the three lower bumps' peaks
    ("p", _noisy_bumps, 3, {}, 0.2,
     [(27, 34, 30), (85, 95, 89)],
     [(27, 34, 30), (38, 43, 40), (85, 95, 89), (137, 143, 140), (168, 173, 170)]),
    # smooth_factor: width 2k' = 6 blurs the narrow bump at 170 under the threshold, 1k' = 3 not
    ("smooth_factor", _noisy_bumps, 3, {}, 1,
     [(27, 34, 30), (85, 95, 89)],
     [(27, 33, 30), (85, 95, 89), (167, 173, 170)]),
    # t1_divisor: smoothed peak 10, k' 4 -> the offset search walks left from r0 = 14.
    # Default t1 = 0.0619 / 1.5 = 0.0413: the fall 0.03 > 0.02 at 13 is below it, the first
    # fall above it is 0.5 at 12 -> end 13. Divisor 10 (t1 = 0.0062): 0.03 at 13 counts -> 14.
    ("t1_divisor", _slow_rise, 4, {"extend_factor": 0}, 10.0,
     [(6, 13, 11)], [(6, 14, 11)]),
    # t2_factor: a low extension level lets both extensions walk further out
    ("t2_factor", _noisy_bumps, 3, {}, 0.3,
     [(27, 34, 30), (85, 95, 89)], [(17, 34, 30), (77, 96, 89)]),
    # extend_factor: 0 forbids the extensions
    ("extend_factor", _noisy_bumps, 3, {}, 0,
     [(27, 34, 30), (85, 95, 89)], [(28, 34, 30), (87, 93, 89)]),
    # iou_threshold: (11, 15) and (13, 17) overlap by 2 of 6 -> IoU 1/3 >= 0.2 drops the second,
    # < 0.9 keeps it (apex_factor 0.5: apexes 3 apart > 1.0 do not decide it)
    ("iou_threshold", lambda: _two_bumps(3), 2,
     {"p": 0.1, "smooth_factor": 1, "extend_factor": 1, "apex_factor": 0.5}, 0.9,
     [(11, 15, 12)], [(11, 15, 12), (13, 17, 15)]),
    # apex_factor: disjoint intervals with apexes 4 apart; 4 > 0.5 x 3 keeps both, 4 > 4 x 3 not
    # interval "fixed": [peak - k', peak + k'] instead of the boundary search, apex = the peak
    ("interval", _noisy_bumps, 3, {}, "fixed",
     [(27, 34, 30), (85, 95, 89)], [(28, 34, 31), (87, 93, 90)]),
    # t1_level: a fixed search level instead of mean / t1_divisor (0.006 ~ divisor 10 above)
    ("t1_level", _slow_rise, 4, {"extend_factor": 0}, 0.006,
     [(6, 13, 11)], [(6, 14, 11)]),
    # t2_level: a fixed extension level instead of t2_factor x mean
    ("t2_level", _noisy_bumps, 3, {}, 0.3,
     [(27, 34, 30), (85, 95, 89)], [(28, 34, 30), (86, 93, 89)]),
    # suppression off keeps the overlapping second interval of the iou_threshold case
    ("suppression", lambda: _two_bumps(3), 2,
     {"p": 0.1, "smooth_factor": 1, "extend_factor": 1, "apex_factor": 0.5}, False,
     [(11, 15, 12)], [(11, 15, 12), (13, 17, 15)]),
    ("apex_factor", lambda: _two_bumps(4), 3,
     {"p": 0.1, "smooth_factor": 1, "extend_factor": 0, "apex_factor": 0.5}, 4.0,
     [(9, 14, 12), (14, 19, 16)], [(9, 14, 12)]),
]


@pytest.mark.parametrize("name, curve, k_p, base, value, expected_base, expected_changed",
                         CASES, ids=[c[0] for c in CASES])
def test_each_decode_prior_changes_the_decoded_intervals(name, curve, k_p, base, value,
                                                         expected_base, expected_changed):
    s = curve()
    assert decode_intervals(s, k_p, **base) == expected_base
    assert decode_intervals(s, k_p, **{**base, name: value}) == expected_changed
    # through the stage: DecodePriors -> decode_videos, output in original frames
    for priors, expected in ((DecodePriors(**base), expected_base),
                             (DecodePriors(**{**base, name: value}), expected_changed)):
        out = decode_videos([_video(s)], priors, k_p)
        assert list(zip(out.onset, out.offset, out.apex)) == [
            (a * SKIP, b * SKIP, c * SKIP) for a, b, c in expected], (name, priors)


INTERVAL_PRIORS = ["p", "smooth_factor", "t1_divisor", "t2_factor", "extend_factor",
                   "iou_threshold", "apex_factor", "interval", "t1_level", "t2_level",
                   "suppression"]
ODD_VALUES = {"p": 0.37, "smooth_factor": 3, "t1_divisor": 2.5, "t2_factor": 0.7,
              "extend_factor": 2, "iou_threshold": 0.45, "apex_factor": 1.7,
              "interval": "fixed", "t1_level": 0.13, "t2_level": 0.29, "suppression": False}


@pytest.mark.parametrize("name", INTERVAL_PRIORS)
def test_decode_videos_hands_every_prior_to_the_interval_search(name, monkeypatch):
    seen = []
    real = decode.decode_intervals

    def spy(curve, k_p, **kwargs):
        seen.append(kwargs)
        return real(curve, k_p, **kwargs)

    monkeypatch.setattr(decode, "decode_intervals", spy)
    decode_videos([_video(_noisy_bumps())], DecodePriors(**{name: ODD_VALUES[name]}), 3)
    assert seen and seen[0][name] == ODD_VALUES[name]
    assert set(seen[0]) == set(INTERVAL_PRIORS) | {"mask"}
    assert seen[0]["mask"] is None                  # scores without window flags: no mask
    assert all(seen[0][other] == getattr(DecodePriors(), other)
               for other in INTERVAL_PRIORS if other != name)


CLASS_PRIORS = {"synergy": 2, "negative_penalty": 0.7}


@pytest.mark.parametrize("name", sorted(CLASS_PRIORS))
def test_decode_videos_hands_the_class_priors_to_the_per_frame_classes(name, monkeypatch):
    seen = []
    real = decode.frame_classes

    def spy(logits, *args, **kwargs):
        seen.append((args, kwargs))
        return real(logits, *args, **kwargs)

    monkeypatch.setattr(decode, "frame_classes", spy)
    priors = DecodePriors(**{name: CLASS_PRIORS[name]})
    decode_videos([_video(_noisy_bumps())], priors, 3)
    args, kwargs = seen[0]
    bound = dict(zip(["synergy", "negative_penalty"], args)) | kwargs
    assert bound[name] == CLASS_PRIORS[name]


def test_non_negative_share_reaches_the_vote():
    s = _noisy_bumps()
    logits = np.zeros((len(s), 5), np.float32)
    logits[:, 0] = 1.0                             # negative everywhere ...
    logits[86:89, 1] = 2.0                         # ... but 3 positive frames in the 90 bump
    plain = decode_videos([_video(s, logits)], DecodePriors(), 3)
    shared = decode_videos([_video(s, logits)], DecodePriors(non_negative_share=0.2), 3)
    # the bump at 89 spans (85, 95): vote over 86..93 = 3 positive of 8 -> 0.375 > 0.2
    assert plain.emotion.tolist() == ["negative", "negative"]
    assert shared.emotion.tolist() == ["negative", "positive"]


@pytest.mark.parametrize("drop_neutral", [True, False])
def test_drop_neutral_marks_neutral_votes_only_when_on(drop_neutral):
    s = _noisy_bumps()
    logits = np.zeros((len(s), 5), np.float32)
    logits[:, 0] = -1.0                 # every emotion logit below the neutral 0 -> neutral
    logits[:, 1:4] = -1.0
    logits[80:100, 2] = 3.0             # the bump at 90 votes surprise
    out = decode_videos([_video(s, logits)], DecodePriors(drop_neutral=drop_neutral), 3)
    assert out.emotion.tolist() == ["neutral", "surprise"]
    assert out.vetoed.tolist() == [drop_neutral, False]


# ---------------------------------------------------------------- training settings
@pytest.fixture
def batches(monkeypatch):
    """Spy on run_fold's training batches: the input windows of each forward pass."""
    seen = []
    forward = SlowFastMamba.forward

    def spy(self, x):
        if self.training:
            seen.append(x.detach().clone())
        return forward(self, x)

    monkeypatch.setattr(SlowFastMamba, "forward", spy)
    return seen


def _fold(tmp_path, batches, **kw):
    sets, labels = synthetic_fold(subjects=("s1", "s2"), videos_per_subject=1, n_sampled=80)
    for fs in sets:                                     # a constant channel shows the scale
        fs.features[:, 35, :] = 1.0
    config = TrainConfig(**{"epochs": 1, "batch_size": 4, "model": TINY_MODEL, "device": "cpu",
                            **kw})
    batches.clear()
    run_fold(None, labels, "s2", tmp_path / str(len(list(tmp_path.iterdir()))), config,
             videos=sets)
    return [b.clone() for b in batches]


def test_batch_size_and_background_ratio_reach_the_training_loop(tmp_path, batches):
    few = _fold(tmp_path, batches, background_ratio=0.0)
    more = _fold(tmp_path, batches, background_ratio=4.0)
    n_few, n_more = sum(len(b) for b in few), sum(len(b) for b in more)
    assert 0 < n_few < n_more                  # background windows join with the ratio
    assert max(len(b) for b in more) == 4
    big = _fold(tmp_path, batches, background_ratio=4.0, batch_size=1000)
    assert [len(b) for b in big] == [n_more]   # one batch holds every window


def test_scale_augment_reaches_the_batches(tmp_path, batches):
    plain = torch.cat(_fold(tmp_path, batches, scale_augment=(1.0, 1.0)))[:, 35, 0]
    assert torch.all(plain == 1.0)
    wide = torch.cat(_fold(tmp_path, batches, scale_augment=(2.0, 3.0)))[:, 35, 0]
    assert wide.min() >= 2.0 and wide.max() <= 3.0 and wide.std() > 0


def test_loss_weights_and_neutral_factor_change_the_trained_model(tmp_path, batches):
    from mepkg.model import load_model

    def head(**kw):
        _fold(tmp_path, batches, **kw)
        out = sorted(tmp_path.iterdir())[-1]
        return load_model(out / "model.pt")[0].class_head.weight.detach()

    # same seed, same batches: only the setting differs
    base = head()
    assert torch.equal(base, head())
    for change in ({"neutral_factor": 1.0}, {"class_loss_weight": 0.5},
                   {"spot_loss_weight": 0.1}, {"lr": 1e-2, "max_lr": 1e-2}):
        assert not torch.equal(base, head(**change)), change
