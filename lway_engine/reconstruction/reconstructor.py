"""LR reconstructor R: (HR, degradation embedding) -> LR (paper Sec. 3.1, ``I_LR_hat = R(I_HR, e)``).

R runs forward and backward in every adaptation step, so it works entirely at LR resolution: a lossless
pixel-unshuffle moves the HR there as ``3 * scale**2`` channels, and a few modulated convolutions predict a
correction to the area-downsampled HR.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from lway_engine.reconstruction.layers import ConvAct
from lway_engine.reconstruction.modulated import ModulatedConv2d

# Per-block demodulated weights (B, width, width, 3, 3), from :meth:`Reconstructor.prepare`.
Styles = tuple[Tensor, ...]

_RESIDUAL_GAIN = math.sqrt(0.5)  # keeps x + f(x) at the scale of x (as StyleGAN2's residual blocks do)


class Reconstructor(nn.Module):
    """pixel-unshuffle -> conv -> ``num_blocks`` residual modulated convs -> conv to RGB, + area-downsampled HR.

    Each residual block is a single modulated 3x3 convolution: two per block would push the cost past the
    adaptation budget (< 0.3M MACs per LR pixel), and depth mainly buys receptive field, which the unshuffle
    already multiplies by ``scale``. ``e`` conditions R only through the blocks' modulation. The output conv starts
    at zero, so an untrained R is exactly an area downsample and training only learns the departure from it.
    """

    def __init__(self, scale: int = 4, embed_dim: int = 512, width: int = 64, num_blocks: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.conv_in = ConvAct(3 * scale**2, width)
        self.blocks = nn.ModuleList(ModulatedConv2d(width, width, embed_dim) for _ in range(num_blocks))
        self.conv_out = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def prepare(self, e: Tensor) -> Styles:
        """What depends on ``e`` (B, embed_dim) only: compute once per image during adaptation, pass as ``styles``."""
        return tuple(block.modulated_weight(e) for block in self.blocks)

    def forward(self, hr: Tensor, e: Tensor | None = None, styles: Styles | None = None) -> Tensor:
        """``hr`` (B, 3, H, W), H and W multiples of ``scale``, and ``e`` or ``styles`` -> LR (B, 3, H/s, W/s).

        ``e`` (or the styles prepared from it) may have batch 1, shared by every image, or batch B.
        """
        if (e is None) == (styles is None):
            raise ValueError("pass exactly one of e (an embedding) or styles (from prepare(e))")
        if hr.shape[-2] % self.scale or hr.shape[-1] % self.scale:
            raise ValueError(f"HR size {hr.shape[-2]}x{hr.shape[-1]} is not a multiple of the scale {self.scale}")
        if styles is None:
            styles = self.prepare(e)
        x = self.conv_in(F.pixel_unshuffle(hr, self.scale))
        for block, weight in zip(self.blocks, styles, strict=True):
            x = (x + block(x, weight)) * _RESIDUAL_GAIN
        return F.avg_pool2d(hr, self.scale) + self.conv_out(x)
