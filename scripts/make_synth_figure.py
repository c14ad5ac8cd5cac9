"""Figures of the synthetic benchmark (docs/figures/synth_*.png).

synth_identities.png   the neutral frames of several synthetic identities
synth_expressions.png  one ME of each class: the apex frame's feature crop
                       (docs/method.md §2: 320 px around the inner eye corners) with the
                       injected displacement (arrows, x8) and the Farneback
                       flow measured from the neutral frame (colour, crop px)

    python scripts/make_synth_figure.py [--out docs/figures] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mepkg.atomic import atomic_output  # noqa: E402
from mepkg.synth import plan_benchmark  # noqa: E402
from mepkg.synth.faces import FaceTemplate, render_identity  # noqa: E402
from mepkg.synth.motion import event_field  # noqa: E402

log = logging.getLogger("make_synth_figure")

FRAME_SIZE = 400          # the small/standard presets' frame size
N_IDENTITIES = 6
AMPLITUDE = 2.0           # crop px: the largest ME amplitude
ARROW_GAIN = 8            # arrows drawn 8x longer than the displacement
# one ME per class: (class, pattern, label)
EXAMPLES = [("positive", "lip_corner_pull", "AU6+12"), ("negative", "brow_lower", "AU4"),
            ("negative", "nose_wrinkle", "AU9+10"), ("surprise", "brow_raise_jaw_drop", "AU1+2+26"),
            ("others", "unilateral_lip_pull", "L12")]


def crop_box(lm: np.ndarray) -> tuple[int, int, int, int]:
    """Rows and columns of the feature crop (docs/method.md §2)."""
    g = (lm[42, 0] - lm[39, 0]) / 2
    cx, cy = (lm[39] + lm[42]) / 2
    return int(cy - 3.5 * g), int(cy + 5.5 * g), int(cx - 4.5 * g), int(cx + 4.5 * g)


def apex_frame(face: FaceTemplate, field: np.ndarray) -> np.ndarray:
    """The neutral frame warped by a full-strength field (no noise)."""
    h, w = field.shape[1:]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(face.image, gx - field[0], gy - field[1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def to_crop(img: np.ndarray, box) -> np.ndarray:
    r0, r1, c0, c1 = box
    return cv2.resize(img[r0:r1, c0:c1], (320, 320), interpolation=cv2.INTER_LINEAR)


def identities_figure(path: Path, seed: int) -> None:
    plan = plan_benchmark("standard", "sammlv", seed)
    fig, axes = plt.subplots(1, N_IDENTITIES, figsize=(2.2 * N_IDENTITIES, 2.5))
    for ax, subject in zip(axes, plan.subjects):
        face = render_identity(plan.identities[subject], FRAME_SIZE)
        ax.imshow(face.image[..., ::-1])
        ax.set_title(f"subject {subject}", fontsize=9)
        ax.axis("off")
    fig.suptitle("Synthetic identities (morphs of skimage's astronaut photo)", fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def expressions_figure(path: Path, seed: int) -> None:
    plan = plan_benchmark("standard", "sammlv", seed)
    face = render_identity(plan.identities[plan.subjects[0]], FRAME_SIZE)
    box = crop_box(face.landmarks)
    neutral = cv2.cvtColor(to_crop(face.image, box), cv2.COLOR_BGR2GRAY)
    fig, axes = plt.subplots(2, len(EXAMPLES), figsize=(3.3 * len(EXAMPLES), 7.2),
                             constrained_layout=True)
    step = 14
    ys, xs = np.mgrid[step // 2:320:step, step // 2:320:step]
    for col, (cls, pattern, aus) in enumerate(EXAMPLES):
        field = event_field(face, pattern, AMPLITUDE)
        apex = to_crop(apex_frame(face, field), box)
        crop_field = np.stack([to_crop(f, box) for f in field]) / face.crop_px   # crop px
        u, v = crop_field[0][ys, xs], crop_field[1][ys, xs]
        keep = np.hypot(u, v) > 0.1
        ax = axes[0, col]
        ax.imshow(apex[..., ::-1])
        ax.quiver(xs[keep], ys[keep], u[keep] * ARROW_GAIN, v[keep] * ARROW_GAIN, color="yellow",
                  angles="xy", scale_units="xy", scale=1, width=0.008)
        ax.set_title(f"{cls}: {aus}", fontsize=9)
        ax.axis("off")
        flow = cv2.calcOpticalFlowFarneback(neutral, cv2.cvtColor(apex, cv2.COLOR_BGR2GRAY), None,
                                            0.5, 3, 15, 5, 7, 1.5, 0)
        ax = axes[1, col]
        im = ax.imshow(np.hypot(flow[..., 0], flow[..., 1]), cmap="magma", vmin=0, vmax=AMPLITUDE)
        ax.set_title("measured flow |d| (crop px)", fontsize=8)
        ax.axis("off")
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.9, label="crop px")
    fig.suptitle(f"One ME per class at apex, amplitude {AMPLITUDE:g} crop px "
                 f"(arrows x{ARROW_GAIN})", fontsize=10)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    identities_figure(out / "synth_identities.png", args.seed)
    expressions_figure(out / "synth_expressions.png", args.seed)
    log.info("wrote %s/synth_identities.png and synth_expressions.png", out)


if __name__ == "__main__":
    main()
