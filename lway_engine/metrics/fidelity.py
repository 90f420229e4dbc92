"""PSNR and SSIM with the conventions of the common SR toolkits (BasicSR, MATLAB): both images are quantised to
8 bits, optionally reduced to the Y of BT.601 YCbCr ([16, 235]), and ``crop`` border pixels are ignored.

Inputs are (N, 3, H, W) tensors in [0, 1]; results are float64, one per image; higher is better for both.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lway_engine.media.images import to_tensor
from lway_engine.metrics.colour import check_pair, quantise, ycbcr_y

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # 11 x 11 window: MATLAB ssim.m, BasicSR, and scikit-image's truncate=3.5 at sigma 1.5
_C1, _C2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2


def prepare(x: torch.Tensor, y: torch.Tensor, y_channel: bool, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both batches as float64 8-bit values (RGB or Y), without ``crop`` border pixels: the shared convention."""
    check_pair(x, y)
    a, b = quantise(x), quantise(y)
    if y_channel:
        a, b = ycbcr_y(a), ycbcr_y(b)
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    return a, b


def psnr(x: torch.Tensor, y: torch.Tensor, y_channel: bool = False, crop: int = 0) -> torch.Tensor:
    """PSNR in dB (peak 255) over all channels and pixels; ``inf`` for identical images. Higher is better."""
    a, b = prepare(x, y, y_channel, crop)
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)


def _gaussian_blur_valid(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> the 11x11 Gaussian-weighted mean at every window position inside the image, as two 1-D
    passes (the window is separable; float64 conv2d has no fast path, so 22 taps beat 121)."""
    t = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-(t**2) / (2 * _SSIM_SIGMA**2))
    g = g / g.sum()
    return F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))


def ssim(x: torch.Tensor, y: torch.Tensor, y_channel: bool = False, crop: int = 0) -> torch.Tensor:
    """SSIM (Wang et al. 2004): 11x11 Gaussian window (sigma 1.5), population statistics, K1 0.01, K2 0.03,
    averaged over the window positions that lie wholly inside the image, then over channels. Higher is better."""
    a, b = prepare(x, y, y_channel, crop)
    n, c, h, w = a.shape
    if min(h, w) < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least {2 * _SSIM_RADIUS + 1} px after cropping, got {h}x{w}")
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1).reshape(n * 5 * c, 1, h, w)
    mu_a, mu_b, aa, bb, ab = _gaussian_blur_valid(stack).reshape(n, 5, c, h - 2 * _SSIM_RADIUS, -1).unbind(1)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / ((mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2))
    return s.mean(dim=(2, 3)).mean(dim=1)


def psnr_y(a: np.ndarray, b: np.ndarray, crop: int = 4) -> float:
    """PSNR in dB on the Y channel of two (H, W, 3) float images in [0, 1], ignoring ``crop`` border pixels."""
    return float(psnr(to_tensor(a), to_tensor(b), y_channel=True, crop=crop))


def ssim_y(a: np.ndarray, b: np.ndarray, crop: int = 4) -> float:
    """SSIM on the Y channel of two (H, W, 3) float images in [0, 1], ignoring ``crop`` border pixels."""
    return float(ssim(to_tensor(a), to_tensor(b), y_channel=True, crop=crop))
