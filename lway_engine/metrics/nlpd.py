"""NLPD, the normalised Laplacian pyramid distance (Laparra, Ballé, Berardino & Simoncelli 2016, "Perceptual image
quality assessment using a normalized Laplacian pyramid", IS&T Electronic Imaging, HVEI-103).

Convention: the BT.601 luma of RGB in [0, 1] (the metric is defined on grey images), no quantisation, float64;
lower is better, 0 for identical images.

The model, as published with the paper's reference code (``NLP_dist.m``):
1. Laplacian pyramid of 6 levels (5 band-pass + the low-pass residual) with the 5-tap filter
   [0.05, 0.25, 0.4, 0.25, 0.05] (separable), symmetric boundary handling to blur-and-decimate, and
   zero-insertion upsampling (gain 4) with replicated borders to interpolate.
2. Local luminance subtraction is the Laplacian itself; local gain control divides every coefficient by a
   constant plus a weighted sum of its neighbours' absolute values, z / (sigma_k + P_k * |z|), with the
   per-level 3x3 filters P_k and constants sigma_k fitted by the authors (``_DN_FILTERS``, ``_DN_SIGMAS``).
3. Distance: root-mean-square difference of the normalised coefficients within each level, averaged over the
   6 levels (alpha = 2 within, beta = 1 across, as the reference code computes it).

Sanity check (not a test): on 40 blur/noise ladder images of four Kodak24 crops it agrees with pyiqa 0.1.16's
NLPD (a port of the same reference code, float32) to a relative 1e-6.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lway_engine.metrics.colour import check_pair, luma

LEVELS = 6
_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)
_DN_SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
_DN_FILTERS = (  # rows of 3x3 neighbour weights, finest level first (MATLAB conv2 orientation)
    ((0, 0.1011, 0), (0.1493, 0, 0.1460), (0, 0.1015, 0)),
    ((0, 0.0757, 0), (0.1986, 0, 0.1846), (0, 0.0837, 0)),
    ((0, 0.0477, 0), (0.2138, 0, 0.2243), (0, 0.0467, 0)),
    ((0, 0, 0), (0.2503, 0, 0.2616), (0, 0, 0)),
    ((0, 0, 0), (0.2598, 0, 0.2552), (0, 0, 0)),
    ((0, 0, 0), (0.2215, 0, 0.0717), (0, 0, 0)),
)


def _symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """MATLAB 'symmetric' padding (the edge pixel repeated in the mirror), which torch's F.pad lacks."""
    rows = torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)
    return torch.cat([rows[..., :pad].flip(-1), rows, rows[..., -pad:].flip(-1)], dim=-1)


def laplacian_pyramid(x: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """(N, 1, H, W) -> ``levels - 1`` band-pass images (finest first) and the low-pass residual."""
    taps = torch.tensor(_TAPS, dtype=x.dtype, device=x.device)
    kernel = (taps[:, None] * taps[None, :])[None, None]
    bands = []
    for _ in range(levels - 1):
        low = F.conv2d(_symmetric_pad(x, 2), kernel, stride=2)
        # interpolate back: zero-insertion (x4 keeps the mean), replicated border, then the same filter
        padded = F.pad(low, (1, 1, 1, 1), mode="replicate")
        up = torch.zeros(*padded.shape[:2], 2 * padded.shape[2], 2 * padded.shape[3], dtype=x.dtype,
                         device=x.device)
        up[..., ::2, ::2] = 4.0 * padded
        up = F.conv2d(up, kernel)[..., : x.shape[2], : x.shape[3]]
        bands.append(x - up)
        x = low
    return [*bands, x]


def normalised_pyramid(x: torch.Tensor) -> list[torch.Tensor]:
    """The pyramid after per-level divisive normalisation z / (sigma_k + P_k * |z|)."""
    out = []
    for z, sigma, weights in zip(laplacian_pyramid(x), _DN_SIGMAS, _DN_FILTERS):
        # F.conv2d correlates; flip to convolve as MATLAB's conv2 does (zero boundary, 'same' size)
        kernel = torch.tensor(weights, dtype=x.dtype, device=x.device).flip(0, 1)[None, None]
        out.append(z / (sigma + F.conv2d(z.abs(), kernel, padding=1)))
    return out


def nlpd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """NLPD of each pair of (N, 3, H, W) images in [0, 1], float64. Lower is better."""
    check_pair(x, y)
    if min(x.shape[-2:]) < 2 ** (LEVELS - 1):
        raise ValueError(f"NLPD needs images of at least {2 ** (LEVELS - 1)} px, got {tuple(x.shape[-2:])}")
    per_level = [(a - b).pow(2).mean(dim=(1, 2, 3)).sqrt()
                 for a, b in zip(normalised_pyramid(luma(x)), normalised_pyramid(luma(y)))]
    return torch.stack(per_level, dim=1).mean(dim=1)
