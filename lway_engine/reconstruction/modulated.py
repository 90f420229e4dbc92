"""StyleGAN2-style modulated 3x3 convolution: how the degradation embedding conditions the reconstructor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lway_engine.ext import bias_leaky_relu

DEMOD_EPS = 1e-8


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per input channel by ``affine(e)``, then demodulated, then bias-lReLU.

    The work is split in two so adaptation can hoist what depends on ``e`` only out of its loop:
    :meth:`modulation` (per image, once) and :meth:`forward` (per step). Demodulation renormalises each output
    filter to unit norm, so the style changes the *shape* of the filters but not the activations' scale. Since
    ``conv(x, W * style[in] * demod[out]) == demod[out] * conv(style[in] * x, W)``, the pair (style, demod) is all
    a fused kernel needs to run the modulated convolution with the shared weight ``W``.
    """

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.padding = kernel_size // 2
        # Demodulation normalises the filters, so the weights' own scale is irrelevant: N(0, 1) as in StyleGAN2.
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = nn.Linear(embed_dim, in_channels)
        nn.init.normal_(self.affine.weight, std=1.0 / math.sqrt(embed_dim))
        nn.init.ones_(self.affine.bias)  # styles start around 1: an unconditioned convolution
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def modulation(self, e: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample input-channel styles (B, in) and output demodulation factors (B, out) for ``e`` (B, embed)."""
        style = self.affine(e)
        w = self.weight[None] * style[:, None, :, None, None]
        return style, torch.rsqrt(w.square().sum(dim=(2, 3, 4)) + DEMOD_EPS)

    def forward(self, x: Tensor, style: Tensor, demod: Tensor) -> Tensor:
        """Convolve ``x`` (B, in, h, w) with the weights modulated by ``style`` and ``demod`` (batch 1 or B).

        Computed as ``demod[out] * conv(style[in] * x, W)``: one convolution with the shared weight for the whole
        batch, whatever the number of embeddings. Per-sample filters would need a grouped convolution (groups = B),
        which oneDNN runs several times slower, in bfloat16 most of all.
        """
        if style.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"embedding batch {style.shape[0]} does not match image batch {x.shape[0]} (nor is it 1)")
        out = F.conv2d(x * style[:, :, None, None].to(x.dtype), self.weight, None, 1, self.padding)
        out = out * demod[:, :, None, None].to(out.dtype)
        return bias_leaky_relu(out, self.bias)
