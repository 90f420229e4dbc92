"""The high-frequency weight map W of the LWay loss, and the weighted L1 term (plain PyTorch reference).

The Triton kernel of ``lway_engine.kernels`` implements exactly this formula; this module is its ground truth.

For an LR image x of shape (B, C, H, W):

1. Pad H and W to even sizes by replicating the last row/column (odd sizes are allowed).
2. One level of the orthonormal 2-D Haar DWT on each 2x2 block [[a, b], [c, d]] gives three detail bands
   ``LH = (a - b + c - d) / 2``, ``HL = (a + b - c - d) / 2``, ``HH = (a - b - c + d) / 2``.
3. Detail magnitude per block, pooled over channels: ``m = sqrt(mean_c(LH^2 + HL^2 + HH^2))``.
4. Normalisation per image: ``W_block = min(1, m / (TAU * mean(m) + EPS))`` with TAU = 2 and EPS = 1e-6, so
   flat areas get ~0, edges and texture at or above twice the image's mean detail get 1, and a constant image
   gets W = 0 everywhere (no NaN: nothing to learn from it).
5. Brought to LR size by repeating each block's value over its 2x2 pixels and cropping the padding; W is shared
   by all channels, shape (B, 1, H, W).

The mean statistic (rather than the max) keeps one very strong edge from turning every other texture's weight
to ~0. W carries no gradient: it depends only on the LR input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TAU = 2.0
EPS = 1e-6


def haar_detail_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Per-2x2-block detail magnitude m, shape (B, 1, ceil(H/2), ceil(W/2)) (steps 1-3 above)."""
    height, width = x.shape[-2:]
    x = F.pad(x, (0, width % 2, 0, height % 2), mode="replicate")
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    lh, hl, hh = (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2
    return torch.sqrt((lh.square() + hl.square() + hh.square()).mean(dim=1, keepdim=True))


def hf_weight_map(x: torch.Tensor) -> torch.Tensor:
    """W in [0, 1], shape (B, 1, H, W), from the LR image x (no gradient)."""
    with torch.no_grad():
        magnitude = haar_detail_magnitude(x)
        scale = TAU * magnitude.mean(dim=(1, 2, 3), keepdim=True) + EPS
        w = (magnitude / scale).clamp(max=1.0)
        w = w.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        return w[..., : x.shape[-2], : x.shape[-1]]


def weighted_l1(x_hat: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """mean |W*x_hat - W*x| over all elements (W >= 0, broadcast over channels)."""
    return (w * (x_hat - x)).abs().mean()
