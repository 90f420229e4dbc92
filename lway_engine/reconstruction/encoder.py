"""Degradation encoder E: a whole LR image -> one degradation embedding (paper Sec. 3.1, ``e = E(I_LR)``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lway_engine.ext import bias_leaky_relu
from lway_engine.reconstruction.layers import ConvAct

# Four stride-2 stages shrink the LR 16x: at 32 px the pooled map is still 2x2, i.e. the statistics come from
# more than one window. Smaller inputs would run but give an embedding dominated by zero padding.
MIN_LR_SIZE = 32


class DegradationEncoder(nn.Module):
    """Conv stack with strided downsampling, global average pooling and an MLP.

    Degradations (blur, noise, compression) are pixel-level statistics, so two convolutions run at full LR
    resolution before any downsampling. Global average pooling makes the embedding independent of the image size,
    and there is no normalisation layer, so each sample's embedding depends on that sample only (no BatchNorm).
    """

    def __init__(self, embed_dim: int = 512, width: int = 64) -> None:
        super().__init__()
        channels = [width, width, 2 * width, 2 * width, 2 * width]
        layers: list[nn.Module] = [ConvAct(3, width), ConvAct(width, width)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [ConvAct(c_in, c_out, stride=2), ConvAct(c_out, c_out)]
        self.features = nn.Sequential(*layers)
        self.hidden = nn.Linear(channels[-1], embed_dim, bias=False)
        self.hidden_bias = nn.Parameter(torch.zeros(embed_dim))
        self.out = nn.Linear(embed_dim, embed_dim)

    def forward(self, lr: Tensor) -> Tensor:
        """``lr`` (B, 3, h, w) with h, w >= ``MIN_LR_SIZE`` -> embedding (B, embed_dim)."""
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected an LR batch of shape (B, 3, h, w), got {tuple(lr.shape)}")
        if lr.shape[-2] < MIN_LR_SIZE or lr.shape[-1] < MIN_LR_SIZE:
            raise ValueError(
                f"the degradation encoder needs LR images of at least {MIN_LR_SIZE}x{MIN_LR_SIZE} pixels, "
                f"got {lr.shape[-2]}x{lr.shape[-1]}"
            )
        pooled = self.features(lr).mean(dim=(2, 3))
        return self.out(bias_leaky_relu(self.hidden(pooled), self.hidden_bias))
