"""Lens effects beyond blur: lateral chromatic aberration and vignetting, on float (…, 3, H, W) in [0, 1].

Both depend on the position relative to the optical axis, which for a crop of a larger photo can lie anywhere,
even outside the crop: ``centre`` is given in units of the image's height/width (0.5, 0.5 = the middle).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lway_engine.degradations import ops


def _radius_grid(height: int, width: int, centre: Sequence[float], dtype: torch.dtype
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel offsets (dy, dx) of each pixel centre from the optical centre, in pixels."""
    ys = torch.arange(height, dtype=dtype) + 0.5 - float(centre[0]) * height
    xs = torch.arange(width, dtype=dtype) + 0.5 - float(centre[1]) * width
    return ys.view(-1, 1).expand(height, width), xs.view(1, -1).expand(height, width)


def chromatic_aberration(img: torch.Tensor, red: float, blue: float, centre: Sequence[float]) -> torch.Tensor:
    """Lateral CA: the red and blue planes magnified by ``1 + red`` / ``1 + blue`` about ``centre`` (green is the
    reference), resampled bilinearly; colour fringes grow with the distance from the centre."""
    x, squeeze = ops.batched(img)
    height, width = x.shape[-2:]
    dy, dx = _radius_grid(height, width, centre, x.dtype)
    planes = []
    for channel, magnification in zip(range(3), (red, 0.0, blue)):
        plane = x[:, channel : channel + 1]
        if magnification:
            # Where does output pixel p come from? p = c + (1 + m)(q - c), so q = c + (p - c) / (1 + m).
            src_y = torch.arange(height, dtype=x.dtype).view(-1, 1) + 0.5 - dy * magnification / (1 + magnification)
            src_x = torch.arange(width, dtype=x.dtype).view(1, -1) + 0.5 - dx * magnification / (1 + magnification)
            grid = torch.stack([src_x / width * 2 - 1, src_y / height * 2 - 1], dim=-1)
            plane = F.grid_sample(plane, grid[None].expand(x.shape[0], -1, -1, -1), mode="bilinear",
                                  padding_mode="reflection", align_corners=False)
        planes.append(plane)
    return ops.unbatched(torch.cat(planes, dim=1), squeeze)


def vignetting(img: torch.Tensor, strength: float, centre: Sequence[float], radius: float) -> torch.Tensor:
    """Light fall-off ``1 - strength * min(1, (r / R)^2)`` with R = ``radius`` times the image diagonal, applied
    in linear light (where lenses act)."""
    height, width = img.shape[-2:]
    dy, dx = _radius_grid(height, width, centre, img.dtype)
    reach = radius * (height**2 + width**2) ** 0.5
    falloff = 1 - strength * ((dy**2 + dx**2) / reach**2).clamp(max=1)
    return ops.linear_to_srgb(ops.srgb_to_linear(img) * falloff)
