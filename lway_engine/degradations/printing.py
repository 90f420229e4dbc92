"""Degradations of printed and palette images: halftone screens and colour-palette quantisation with dithering.

They define the two *unseen* evaluation families (``halftone_scan``, ``gif_palette``): no stage of the training
pipelines (``broad``, BSRGAN, Real-ESRGAN) makes periodic screen patterns or quantises to a palette, so how the
reconstructor and adaptation fare on them measures generalisation to degradation types never trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from lway_engine.degradations import ops


def halftone(img: torch.Tensor, period: float, angles: Sequence[float], sharpness: float = 12.0) -> torch.Tensor:
    """Clustered-dot AM halftone of the CMY inks, one screen per ink rotated by ``angles`` (degrees), ``period``
    pixels per dot. Each ink covers the part of its cell where its density exceeds the screen's threshold
    ``0.5 + 0.25 (cos u + cos v)``; ``sharpness`` softens the dot edges slightly (ink spread on paper)."""
    x, squeeze = ops.batched(img)
    height, width = x.shape[-2:]
    ys = torch.arange(height, dtype=x.dtype).view(-1, 1)
    xs = torch.arange(width, dtype=x.dtype).view(1, -1)
    inks = []
    for channel, angle in zip(range(3), angles):
        a = math.radians(float(angle))
        u = (xs * math.cos(a) + ys * math.sin(a)) * (2 * math.pi / period)
        v = (-xs * math.sin(a) + ys * math.cos(a)) * (2 * math.pi / period)
        threshold = 0.5 + 0.25 * (torch.cos(u) + torch.cos(v))
        density = 1 - x[:, channel : channel + 1]
        inks.append(torch.sigmoid((density - threshold) * sharpness * 2))
    return ops.unbatched(1 - torch.cat(inks, dim=1), squeeze)


def palette(img: torch.Tensor, colours: int, dither: bool) -> torch.Tensor:
    """Median-cut palette of ``colours`` entries per image, with Floyd-Steinberg error diffusion (``dither``), as
    GIF and 8-bit PNG encoders do (Pillow's ``quantize``); 8-bit in and out."""
    from PIL import Image as PILImage

    if not 2 <= int(colours) <= 256:
        raise ValueError("a palette has 2..256 colours")
    x, squeeze = ops.batched(img)
    outs = []
    for one in x:
        array = np.rint(one.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
        quantised = PILImage.fromarray(array).quantize(
            colors=int(colours), method=PILImage.Quantize.MEDIANCUT,
            dither=PILImage.Dither.FLOYDSTEINBERG if dither else PILImage.Dither.NONE)
        back = np.asarray(quantised.convert("RGB"), dtype=np.float32) / 255.0
        outs.append(torch.from_numpy(back).permute(2, 0, 1))
    return ops.unbatched(torch.stack(outs).to(img.dtype), squeeze)
