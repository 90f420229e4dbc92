"""Colour conventions shared by the metrics: 8-bit quantisation, BT.601 Y (YCbCr) and BT.601 luma."""

from __future__ import annotations

import numpy as np
import torch

from lway_engine.media.images import LUMA_WEIGHTS

# MATLAB rgb2ycbcr's Y row for 8-bit RGB: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, in [16, 235].
_YCBCR_Y = (65.481, 128.553, 24.966)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of 8-bit-range RGB, in [16, 235] as MATLAB's rgb2ycbcr."""
    return 16.0 + rgb @ np.array(_YCBCR_Y) / 255.0


def quantise(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images as the 8-bit values a saved PNG would hold, in float64 [0, 255].

    Rounded in the input's own dtype, as BasicSR's ``tensor2img`` does, so float32 inputs give the same integers.
    """
    return torch.round(x.clamp(0, 1) * 255.0).double()


def ycbcr_y(x255: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 255] -> (N, 1, H, W) Y of BT.601 YCbCr in [16, 235] (MATLAB ``rgb2ycbcr``)."""
    weights = torch.tensor(_YCBCR_Y, dtype=x255.dtype, device=x255.device) / 255.0
    return 16.0 + torch.einsum("nchw,c->nhw", x255, weights).unsqueeze(1)


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) BT.601 luma in the input's range, in float64."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64, device=x.device)  # the grey NLPD and MAD use
    return torch.einsum("nchw,c->nhw", x.double(), weights).unsqueeze(1)


def check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    """Every metric compares two (N, 3, H, W) batches of one shape."""
    if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"metrics need two (N, 3, H, W) tensors of one shape, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
