"""What a camera's image pipeline (ISP) does to the light that reaches its sensor, as seeded tensor operations.

The broad pretraining pipeline (``broad.py``) runs them in the order a camera does: the sRGB-encoded scene is
taken back to linear light, white balance and the colour matrix are applied with small errors, the sensor samples
one colour per pixel (Bayer mosaic) and adds photon shot noise and read noise, the ISP demosaics, applies its
tone curve and sharpening, and the encoder compresses. Images are float (…, 3, H, W) in [0, 1], as in ``ops``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lway_engine.degradations import kernels, ops

BAYER_PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")  # colour at the top-left 2x2 block, row by row
DEMOSAICS = ("bilinear", "malvar", "binning")
TONE_CURVES = ("srgb", "gamma")

# Malvar, He & Cutler, "High-quality linear interpolation for demosaicing of Bayer-patterned color images"
# (ICASSP 2004), Fig. 2: gradient-corrected 5x5 filters, in eighths.
_M_G_AT_RB = [[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]
_M_ROW = [[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]]
_M_DIAGONAL = [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]]


def to_linear(img: torch.Tensor, curve: str, gamma: float = 2.2) -> torch.Tensor:
    """Undo a display encoding: the sRGB curve, or a pure power ``gamma`` (cameras' curves differ from sRGB)."""
    if curve == "srgb":
        return ops.srgb_to_linear(img)
    if curve == "gamma":
        return img.clamp(0, 1) ** gamma
    raise ValueError(f"unknown tone curve {curve!r}; known: {', '.join(TONE_CURVES)}")


def from_linear(img: torch.Tensor, curve: str, gamma: float = 2.2, contrast: float = 0.0) -> torch.Tensor:
    """Encode linear light with ``curve``, then an S-shaped contrast curve ``y = x - contrast * x(1-x)(1-2x)``
    (monotone for ``contrast`` in [0, 1]; darker shadows and brighter highlights, as camera 'picture styles')."""
    if curve == "srgb":
        out = ops.linear_to_srgb(img)
    elif curve == "gamma":
        out = img.clamp(0, 1) ** (1 / gamma)
    else:
        raise ValueError(f"unknown tone curve {curve!r}; known: {', '.join(TONE_CURVES)}")
    return out - contrast * out * (1 - out) * (1 - 2 * out)


def colour_errors(img: torch.Tensor, gains: Sequence[float], matrix: Sequence[Sequence[float]]) -> torch.Tensor:
    """Linear-light white-balance error (per-channel ``gains``) followed by a 3x3 colour ``matrix`` error."""
    gain = torch.tensor([float(g) for g in gains], dtype=img.dtype).view(3, 1, 1)
    m = torch.tensor(matrix, dtype=img.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, img * gain)


def _phase(pattern: str) -> tuple[int, int]:
    """Offset (rows, cols) that moves ``pattern``'s red pixel to the top-left of an RGGB grid."""
    if pattern not in BAYER_PATTERNS:
        raise ValueError(f"unknown Bayer pattern {pattern!r}; known: {', '.join(BAYER_PATTERNS)}")
    return {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}[pattern]


def _demosaic_malvar(raw: torch.Tensor) -> torch.Tensor:
    """RGGB raw (N, 1, H, W) -> (N, 3, H, W) with Malvar-He-Cutler's gradient-corrected filters."""
    filters = torch.tensor([_M_G_AT_RB, _M_ROW, np.transpose(_M_ROW).tolist(), _M_DIAGONAL], dtype=raw.dtype) / 8
    f_g, f_row, f_col, f_diag = F.conv2d(ops.reflect_pad(raw, (2, 2, 2, 2)), filters[:, None]).unbind(1)
    x = raw[:, 0]
    height, width = x.shape[-2:]
    even_row = (torch.arange(height) % 2 == 0).view(-1, 1)
    even_col = (torch.arange(width) % 2 == 0).view(1, -1)
    at_r, at_b = even_row & even_col, ~even_row & ~even_col
    g_in_r_row, g_in_b_row = even_row & ~even_col, ~even_row & even_col
    red = torch.where(at_r, x, torch.where(at_b, f_diag, torch.where(g_in_r_row, f_row, f_col)))
    blue = torch.where(at_b, x, torch.where(at_r, f_diag, torch.where(g_in_b_row, f_row, f_col)))
    green = torch.where(at_r | at_b, f_g, x)
    return torch.stack([red, green, blue], dim=1)


def _demosaic_binning(raw: torch.Tensor) -> torch.Tensor:
    """Each 2x2 RGGB cell becomes one colour (its R, mean G, B) repeated over the cell: blocky colour, as cheap
    sensors and some video modes do."""
    height, width = raw.shape[-2:]
    padded = ops.reflect_pad(raw, (0, width % 2, 0, height % 2))  # reflection keeps the colour parity
    r, g1 = padded[..., 0::2, 0::2], padded[..., 0::2, 1::2]
    g2, b = padded[..., 1::2, 0::2], padded[..., 1::2, 1::2]
    cells = torch.cat([r, (g1 + g2) / 2, b], dim=1)
    return cells.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :height, :width]


def raw_capture(img: torch.Tensor, mosaic: bool, pattern: str, demosaic: str, peak: float, read: float,
                seed: int) -> torch.Tensor:
    """Sensor capture of a linear-light image: optional Bayer mosaic (``pattern``), Poisson shot noise with
    ``peak`` photons at white plus Gaussian read noise of std ``read`` (``peak`` 0: no noise), then ``demosaic``.

    Noise is drawn on the raw samples, so after demosaicking it is correlated across pixels and colours as in a
    real camera, unlike the white per-channel noise of the BSRGAN / Real-ESRGAN models.
    """
    x, squeeze = ops.batched(img)
    rows, cols = _phase(pattern)
    if mosaic:
        x = ops.reflect_pad(x, (cols, 0, rows, 0))  # bring the pattern's red pixel to the RGGB position
        x = ops.bayer_mosaic(x)
    if peak > 0:
        rng = np.random.default_rng(seed)
        linear = x.clamp(0, 1).double().numpy()
        noisy = rng.poisson(linear * peak) / peak + read * rng.standard_normal(linear.shape)
        x = torch.from_numpy(noisy).to(img.dtype)
    if mosaic:
        if demosaic == "bilinear":
            x = ops.demosaic_bilinear(x)
        elif demosaic == "malvar":
            x = _demosaic_malvar(x)
        elif demosaic == "binning":
            x = _demosaic_binning(x)
        else:
            raise ValueError(f"unknown demosaic {demosaic!r}; known: {', '.join(DEMOSAICS)}")
        x = x[..., rows:, cols:]
    return ops.unbatched(x.clamp(0, 1), squeeze)


def sharpen(img: torch.Tensor, sigma: float, amount: float, threshold: float = 0.0) -> torch.Tensor:
    """In-camera unsharp masking: ``img + amount * (img - gaussian(img, sigma))`` where the detail exceeds
    ``threshold``; the overshoot at edges is the halo real JPEGs show."""
    detail = img - ops.filter2d(img, kernels.gaussian(kernels.fitting_size(3 * sigma), sigma))
    if threshold > 0:
        detail = torch.where(detail.abs() > threshold, detail, torch.zeros_like(detail))
    return img + amount * detail
