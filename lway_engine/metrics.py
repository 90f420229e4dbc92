"""Image-quality metrics with the conventions of the common SR toolkits (BasicSR/MATLAB).

Inputs are float arrays (H, W, 3) in [0, 1]; they are quantised to 8 bits first, as the saved images would be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lway_engine.losses import LPIPS


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of 8-bit-range RGB, in [16, 235] as MATLAB's rgb2ycbcr."""
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966]) / 255.0


def _y_pair(a: np.ndarray, b: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Both images as 8-bit-quantised Y planes without ``crop`` border pixels (the convention PSNR/SSIM share)."""
    if a.shape != b.shape:
        raise ValueError(f"metrics need images of one shape, got {a.shape} and {b.shape}")
    ya, yb = (rgb_to_y(np.rint(np.clip(x, 0, 1) * 255.0).astype(np.float64)) for x in (a, b))
    if crop:
        ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
    return ya, yb


def psnr_y(a: np.ndarray, b: np.ndarray, crop: int = 4) -> float:
    """PSNR in dB on the Y channel after an 8-bit round trip, ignoring ``crop`` border pixels."""
    ya, yb = _y_pair(a, b, crop)
    mse = float(np.mean((ya - yb) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim_y(a: np.ndarray, b: np.ndarray, crop: int = 4) -> float:
    """SSIM on the Y channel (Gaussian window, sigma 1.5, as MATLAB/BasicSR), after an 8-bit round trip."""
    from skimage.metrics import structural_similarity

    ya, yb = _y_pair(a, b, crop)
    return float(structural_similarity(ya, yb, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def lpips_arrays(metric: "LPIPS", a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS between two (H, W, 3) float images in [0, 1] with an already built ``metric``."""
    import torch

    from lway_engine.imageio import to_tensor

    device = next(metric.parameters()).device
    with torch.no_grad():
        return float(metric(to_tensor(a).to(device), to_tensor(b).to(device)))
