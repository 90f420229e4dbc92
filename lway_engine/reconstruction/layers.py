"""Plain convolution + fused activation, the building block shared by the degradation encoder and the reconstructor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lway_engine.ext import bias_leaky_relu


class ConvAct(nn.Module):
    """``bias_leaky_relu(conv(x))``: the bias lives outside the convolution so bias, activation and gain are one pass.

    Weights start at N(0, 1/fan_in); together with the activation's sqrt(2) gain that keeps the activations' second
    moment roughly constant through depth (the StyleGAN2 convention), so no normalisation layer is needed.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size) / math.sqrt(in_channels * kernel_size**2)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return bias_leaky_relu(F.conv2d(x, self.weight, None, self.stride, self.padding), self.bias)
