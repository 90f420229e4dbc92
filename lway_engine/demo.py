"""``lway-engine demo``: the main job on the embedded default, runnable on a fresh machine with no data of its own.

Public-domain photos bundled with scikit-image are downscaled 4x, super-resolved with the default model, and
compared with the originals (PSNR-Y and LPIPS-alex) against plain bicubic upscaling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lway_engine.imageio import Image, write_image
from lway_engine.losses import LPIPS
from lway_engine.metrics import psnr_y
from lway_engine.models import LoadedModel
from lway_engine.upscale import UpscaleOptions, upscale_image

PHOTOS = ("astronaut", "chelsea", "coffee")
CROP = 320  # HR crop side; the LR is 80 px, which keeps x4plus at a few seconds per photo on a 2-core CPU


@dataclass(frozen=True)
class DemoRow:
    """Scores of one photo."""

    name: str
    psnr_bicubic: float
    psnr_model: float
    lpips_bicubic: float
    lpips_model: float


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
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    out = F.interpolate(t, scale_factor=factor, mode="bicubic", align_corners=False, antialias=factor < 1)
    return out[0].clamp(0, 1).numpy().transpose(1, 2, 0)


def _lpips(metric: LPIPS, a: np.ndarray, b: np.ndarray) -> float:
    to = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]  # noqa: E731
    with torch.no_grad():
        return float(metric(to(a), to(b)))


def run_demo(model: LoadedModel, outdir: Path) -> list[DemoRow]:
    """Write LR, bicubic, SR and side-by-side images for each photo into ``outdir`` and score them."""
    metric = LPIPS("alex")
    rows = []
    for name, hr in demo_photos().items():
        lr = resize(hr, 1 / model.scale)
        bicubic = resize(lr, model.scale)
        started = time.perf_counter()
        sr = upscale_image(model, Image(lr, None, 8), UpscaleOptions(tile=0)).pixels
        print(f"  {name}: {lr.shape[1]}x{lr.shape[0]} -> {sr.shape[1]}x{sr.shape[0]} "
              f"in {time.perf_counter() - started:.1f} s")
        for tag, img in (("lr", lr), ("bicubic", bicubic), ("sr", sr), ("hr", hr)):
            write_image(outdir / f"{name}_{tag}.png", Image(img, None, 8))
        write_image(outdir / f"{name}_compare.png", Image(np.concatenate([bicubic, sr, hr], axis=1), None, 8))
        rows.append(DemoRow(name, psnr_y(bicubic, hr), psnr_y(sr, hr), _lpips(metric, bicubic, hr),
                            _lpips(metric, sr, hr)))
    return rows
