"""Separable resampling with the kernels image software uses (nearest, triangle, Keys cubic, Lanczos-3).

``torch.nn.functional.interpolate`` has no Lanczos and its "nearest" picks the top-left source pixel of each cell
rather than the nearest one (a half-pixel shift), so resize chains that mimic editors, browsers and camera
firmware need their own resampler. Each axis is resampled by a dense (out, in) weight matrix built from the kernel:
exact, vectorised, and cheap at the crop sizes degradation synthesis works on. When shrinking, the kernel is
stretched by the scale factor (antialiasing, as Pillow and OpenCV's INTER_AREA-like filters do); weights that would
fall outside the image are dropped and each row renormalised (edge handling of Pillow's ``resize``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

MODES = ("nearest", "triangle", "cubic", "lanczos")


def _triangle(x: torch.Tensor) -> torch.Tensor:
    return (1 - x.abs()).clamp_min(0)


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (the 'bicubic' of Pillow and most editors)."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _lanczos(x: torch.Tensor, lobes: int = 3) -> torch.Tensor:
    return torch.where(x.abs() < lobes, torch.sinc(x) * torch.sinc(x / lobes), torch.zeros_like(x))


_KERNELS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "triangle": (_triangle, 1.0), "cubic": (_cubic, 2.0), "lanczos": (_lanczos, 3.0),
}


def weights(in_size: int, out_size: int, mode: str) -> torch.Tensor:
    """The (out_size, in_size) float64 matrix that resamples one axis (rows sum to 1)."""
    if mode not in MODES:
        raise ValueError(f"unknown resampling mode {mode!r}; known: {', '.join(MODES)}")
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    scale = in_size / out_size
    centres = (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale - 0.5  # output centres in input pixels
    if mode == "nearest":  # the source pixel under each output centre, in exact integer arithmetic (ties go right)
        index = ((2 * torch.arange(out_size) + 1) * in_size // (2 * out_size)).clamp(0, in_size - 1)
        return torch.nn.functional.one_hot(index, in_size).to(torch.float64)
    kernel, _ = _KERNELS[mode]
    stretch = max(scale, 1.0)
    taps = torch.arange(in_size, dtype=torch.float64)
    w = kernel((taps[None, :] - centres[:, None]) / stretch)
    total = w.sum(dim=1, keepdim=True)
    if bool((total.abs() < 1e-12).any()):  # cannot happen for these kernels, kept as a guard against edits
        raise ValueError(f"{mode} resampling {in_size} -> {out_size} left an output pixel without input")
    return w / total


def resize(img: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resample (…, H, W) to ``size`` = (h, w) separably with ``mode`` (see ``MODES``)."""
    height, width = img.shape[-2:]
    rows = weights(height, int(size[0]), mode).to(img.dtype)
    cols = weights(width, int(size[1]), mode).to(img.dtype)
    return torch.einsum("oh,...hw,pw->...op", rows, img, cols)

