"""Image-quality metrics with the conventions of the common SR toolkits (BasicSR/MATLAB).

Inputs are float arrays (H, W, 3) in [0, 1]; they are quantised to 8 bits first, as the saved images would be.
"""

from __future__ import annotations

import numpy as np


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of 8-bit-range RGB, in [16, 235] as MATLAB's rgb2ycbcr."""
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966]) / 255.0


def psnr_y(a: np.ndarray, b: np.ndarray, crop: int = 4) -> float:
    """PSNR in dB on the Y channel after an 8-bit round trip, ignoring ``crop`` border pixels."""
    if a.shape != b.shape:
        raise ValueError(f"PSNR needs images of one shape, got {a.shape} and {b.shape}")
    ya, yb = (rgb_to_y(np.rint(np.clip(x, 0, 1) * 255.0).astype(np.float64)) for x in (a, b))
    if crop:
        ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
    mse = float(np.mean((ya - yb) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim_y(a: np.ndarray, b: np.ndarray, crop: int = 4) -> float:
    """SSIM on the Y channel (Gaussian window, sigma 1.5, as MATLAB/BasicSR), after an 8-bit round trip."""
    from skimage.metrics import structural_similarity

    ya, yb = (rgb_to_y(np.rint(np.clip(x, 0, 1) * 255.0).astype(np.float64)) for x in (a, b))
    if crop:
        ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
    return float(structural_similarity(ya, yb, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))
