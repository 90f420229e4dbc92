"""``lway-engine demo``: the main job on the embedded default, on a fresh machine with no data of its own.

Public-domain photos bundled with scikit-image are degraded with an *evaluation* family (a degradation neither
Real-ESRGAN nor our reconstructor was trained on), then Real-ESRGAN x4plus is adapted to those LR images with the
bundled E+R checkpoint - the real ``adapt`` pipeline - and scored against the originals before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lway_engine.adaptation.loop import AdaptConfig
from lway_engine.adaptation.run import run_adaptation
from lway_engine.degradations import degrade
from lway_engine.media.images import Image, read_image, to_array, to_tensor, write_image
from lway_engine.metrics import lpips_arrays, psnr_y
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import LoadedModel
from lway_engine.reconstruction import LWayReconstruction

PHOTOS = ("astronaut", "chelsea", "coffee")
CROP = 256  # HR crop side: 64 px LR keeps a CPU step of x4plus at a few seconds
FAMILY = "defocus_noise"
# Sized for a 2-core CPU: a few minutes in all. On a GPU use `adapt` with the paper's settings (batch 6, 128 px
# crops, 150-500 iterations).
DEMO_CONFIG = AdaptConfig(iterations=40, lr=1e-5, batch=2, crop=48, seed=0)


@dataclass(frozen=True)
class DemoRow:
    """Scores of one photo before and after adaptation."""

    name: str
    psnr_before: float
    psnr_after: float
    lpips_before: float
    lpips_after: float


def demo_photos() -> dict[str, np.ndarray]:
    """Centre crops of scikit-image's bundled photos, float (H, W, 3) in [0, 1]."""
    from skimage import data

    photos = {}
    for name in PHOTOS:
        img = getattr(data, name)().astype(np.float32) / 255.0
        top, left = (img.shape[0] - CROP) // 2, (img.shape[1] - CROP) // 2
        photos[name] = np.ascontiguousarray(img[top : top + CROP, left : left + CROP])
    return photos


def resize(img: np.ndarray, factor: float) -> np.ndarray:
    """Bicubic resize (antialiased when shrinking), float (H, W, C)."""
    out = F.interpolate(to_tensor(img), scale_factor=factor, mode="bicubic", align_corners=False, antialias=factor < 1)
    return to_array(out.clamp(0, 1))


def demo_lr(photos: dict[str, np.ndarray], scale: int) -> list[np.ndarray]:
    """The demo's LR images, float (h, w, 3): each photo through FAMILY with its own seeded draw (its index)."""
    return [degrade(torch.from_numpy(img.transpose(2, 0, 1).copy()), FAMILY, i, scale=scale).numpy().transpose(1, 2, 0)
            for i, img in enumerate(photos.values())]


def run_demo(model: LoadedModel, reconstruction: LWayReconstruction, outdir: Path,
             config: AdaptConfig = DEMO_CONFIG) -> tuple[list[DemoRow], str]:
    """Degrade, adapt, and score; images land in ``outdir`` (``adapt/compare/`` holds the side-by-sides).
    Returns the scores and what ``adapt`` decided (and why), as it tells a user."""
    hr = demo_photos()
    lr_files = []
    for (name, img), lr in zip(hr.items(), demo_lr(hr, model.scale)):
        write_image(outdir / "hr" / f"{name}.png", Image(img, None, 8))
        lr_files.append(outdir / "lr" / f"{name}.png")
        write_image(lr_files[-1], Image(lr, None, 8))
    runs = run_adaptation(model, lr_files, outdir / "adapt", reconstruction, config, per_image=False)
    metric = LPIPS("alex")
    rows = []
    for name, img in hr.items():
        before = read_image(outdir / "adapt" / "sr_before" / f"{name}.png").pixels
        after = read_image(outdir / "adapt" / "sr_after" / f"{name}.png").pixels
        rows.append(DemoRow(name, psnr_y(before, img), psnr_y(after, img), lpips_arrays(metric, before, img),
                            lpips_arrays(metric, after, img)))
    return rows, runs["all"].message
