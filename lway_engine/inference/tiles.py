"""Run an SR network on a whole image, in overlapping tiles when asked, with no visible seams.

Each tile is cut with ``tile_pad`` pixels of real context on every side (fewer at the image border), super-resolved,
and only its centre is kept, so every output pixel comes from a tile where it had at least ``tile_pad`` input pixels
of context. With enough context the result equals the untiled one to within quantisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lway_engine.models import SizeRequirements


def _padding(height: int, width: int, size: SizeRequirements) -> tuple[int, int]:
    """Bottom/right padding that satisfies ``multiple_of`` and ``square``."""
    h = -(-height // size.multiple_of) * size.multiple_of
    w = -(-width // size.multiple_of) * size.multiple_of
    if size.square:
        h = w = max(h, w)
    return h - height, w - width


def run_network(module: nn.Module, x: torch.Tensor, scale: int, size: SizeRequirements) -> torch.Tensor:
    """``module(x)`` on a (N, C, H, W) batch, padded (reflect) to the model's shape constraints and cropped back."""
    height, width = x.shape[-2:]
    pad_h, pad_w = _padding(height, width, size)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return module(x)[..., : height * scale, : width * scale]


@torch.inference_mode()
def upscale_tensor(
    module: nn.Module,
    x: torch.Tensor,
    scale: int,
    size: SizeRequirements,
    tile: int = 0,
    tile_pad: int = 64,
    progress: bool = False,
) -> torch.Tensor:
    """Super-resolve a (1, C, H, W) tensor in [0, 1]; ``tile`` = 0 runs it whole."""
    height, width = x.shape[-2:]
    if tile <= 0 or (height <= tile and width <= tile):
        return run_network(module, x, scale, size).clamp_(0, 1)
    out: torch.Tensor | None = None
    boxes = [(top, left) for top in range(0, height, tile) for left in range(0, width, tile)]
    for top, left in tqdm(boxes, desc="tiles", leave=False, disable=not progress):
        bottom, right = min(top + tile, height), min(left + tile, width)
        y0, x0 = max(top - tile_pad, 0), max(left - tile_pad, 0)
        y1, x1 = min(bottom + tile_pad, height), min(right + tile_pad, width)
        result = run_network(module, x[..., y0:y1, x0:x1], scale, size)
        if out is None:  # the network decides the output channel count
            out = result.new_empty(x.shape[0], result.shape[1], height * scale, width * scale)
        out[..., top * scale : bottom * scale, left * scale : right * scale] = result[
            ..., (top - y0) * scale : (bottom - y0) * scale, (left - x0) * scale : (right - x0) * scale
        ]
    assert out is not None
    return out.clamp_(0, 1)
