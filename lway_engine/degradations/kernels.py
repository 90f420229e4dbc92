"""Blur kernels as plain data: each builder takes explicit parameters (no randomness) and returns a float64
(size, size) array with odd ``size`` in 7..21 that sums to 1.

Keeping kernels parameter-driven lets a degradation plan be recorded as numbers (useful as labels for the
degradation encoder) and rebuilt exactly; the random sampling of those numbers lives in ``pipelines``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import j1

KERNEL_SIZES = tuple(range(7, 22, 2))  # odd sizes, so the kernel has a centre pixel and does not shift the image


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) pixel offsets from the centre; x grows to the right, y downwards."""
    if size not in KERNEL_SIZES:
        raise ValueError(f"kernel size must be odd and in 7..21, not {size}")
    half = size // 2
    axis = np.arange(-half, half + 1, dtype=np.float64)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return x, y


def _normalise(kernel: np.ndarray) -> np.ndarray:
    total = kernel.sum()
    if not np.isfinite(total) or abs(total) < 1e-12:
        raise ValueError("kernel has no mass; check its parameters")
    return kernel / total


def _mahalanobis(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Squared distance under a covariance with std ``sigma_x`` along direction ``theta`` and ``sigma_y`` across."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError("sigmas must be positive")
    x, y = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * x + s * y
    v = -s * x + c * y
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def gaussian(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """Isotropic (``sigma_y`` None) or anisotropic Gaussian rotated by ``theta`` radians."""
    d2 = _mahalanobis(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalise(np.exp(-0.5 * d2))


def generalized_gaussian(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """exp(-(d^2/2)^beta): beta < 1 gives heavier tails than a Gaussian, beta > 1 a flatter top (Real-ESRGAN)."""
    d2 = _mahalanobis(size, sigma_x, sigma_y, theta)
    return _normalise(np.exp(-0.5 * d2**beta))


def plateau(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """1 / (1 + (d^2)^beta): a flat top with slowly decaying shoulders (Real-ESRGAN's plateau kernel)."""
    d2 = _mahalanobis(size, sigma_x, sigma_y, theta)
    return _normalise(1.0 / (1.0 + d2**beta))


def sinc(size: int, cutoff: float) -> np.ndarray:
    """Circular ideal low-pass (2-D jinc) with cutoff ``cutoff`` in radians/pixel (<= pi): ringing and overshoot."""
    if not 0 < cutoff <= math.pi:
        raise ValueError("cutoff must be in (0, pi]")
    x, y = _grid(size)
    r = np.hypot(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * j1(cutoff * r) / (2 * math.pi * r)
    kernel[r == 0] = cutoff**2 / (4 * math.pi)  # limit of the expression at r = 0
    return _normalise(kernel)


def disc(size: int, radius: float, supersample: int = 16) -> np.ndarray:
    """Defocus (pillbox) of ``radius`` pixels; edge pixels weighted by the fraction of their area inside the disc."""
    if radius <= 0:
        raise ValueError("radius must be positive")
    if radius > size // 2 + 0.5:
        raise ValueError(f"radius {radius} does not fit a {size}x{size} kernel")
    x, y = _grid(size)
    offsets = (np.arange(supersample, dtype=np.float64) + 0.5) / supersample - 0.5
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    inside = np.hypot(x[..., None, None] + ox, y[..., None, None] + oy) <= radius
    return _normalise(inside.mean(axis=(-2, -1)))


def motion(size: int, length: float, angle: float) -> np.ndarray:
    """Uniform linear motion of ``length`` pixels at ``angle`` radians (0 = horizontal, counter-clockwise),
    centred, rasterised by splatting densely sampled points bilinearly (anti-aliased)."""
    if length < 0:
        raise ValueError("length must be non-negative")
    if length > size - 1:
        raise ValueError(f"length {length} does not fit a {size}x{size} kernel")
    half = size // 2
    samples = max(2, int(math.ceil(length * 16)) + 1)
    t = np.linspace(-length / 2, length / 2, samples)
    px = half + t * math.cos(angle)
    py = half - t * math.sin(angle)  # image rows grow downwards
    return _normalise(_splat(size, px, py))


def _splat(size: int, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Accumulate points (px, py) into a (size, size) grid with bilinear weights (anti-aliased rasterising)."""
    kernel = np.zeros((size, size), dtype=np.float64)
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    for dy, dx, weight in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy),
                           (1, 1, fx * fy)):
        np.add.at(kernel, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), weight)
    return kernel


def motion_curve(size: int, length: float, angle: float, bend: float) -> np.ndarray:
    """Motion along a circular arc of ``length`` pixels whose chord starts at ``angle`` radians; ``bend`` is the
    arc's total turn in radians (0: a straight line), as a hand-held camera's shake often curves. Centred on the
    arc's midpoint and splatted bilinearly like :func:`motion`."""
    if abs(bend) < 1e-6:
        return motion(size, length, angle)
    half = size // 2
    samples = max(2, int(math.ceil(length * 16)) + 1)
    turn = np.linspace(-bend / 2, bend / 2, samples)  # heading along the arc, relative to ``angle``
    radius = length / abs(bend)
    # Arc points relative to the midpoint: integrate the heading (closed form for a circle).
    along = radius * np.sin(turn) * np.sign(bend)
    across = radius * (1 - np.cos(turn)) * np.sign(bend)
    px = half + along * math.cos(angle) - across * math.sin(angle)
    py = half - (along * math.sin(angle) + across * math.cos(angle))
    if np.abs(px - half).max() > half or np.abs(py - half).max() > half:
        raise ValueError(f"an arc of length {length} does not fit a {size}x{size} kernel")
    return _normalise(_splat(size, px, py))


KERNELS: dict[str, Callable[..., np.ndarray]] = {
    "gaussian": gaussian,
    "generalized_gaussian": generalized_gaussian,
    "plateau": plateau,
    "sinc": sinc,
    "disc": disc,
    "motion": motion,
    "motion_curve": motion_curve,
}


def build(kind: str, **params: float) -> np.ndarray:
    """Rebuild a kernel from its recorded description, e.g. ``build("disc", size=9, radius=3.2)``."""
    try:
        builder = KERNELS[kind]
    except KeyError:
        raise ValueError(f"unknown kernel {kind!r}; known: {', '.join(KERNELS)}") from None
    return builder(**params)


def centred(kernel: np.ndarray, size: int) -> np.ndarray:
    """``kernel`` (odd square) in the middle of a ``size`` x ``size`` frame: cropped if larger (its tails dropped),
    padded with zeros if smaller, then renormalised to sum 1."""
    out = np.zeros((size, size), np.float64)
    side = min(kernel.shape[0], size)
    crop, offset = (kernel.shape[0] - side) // 2, (size - side) // 2
    out[offset : offset + side, offset : offset + side] = kernel[crop : crop + side, crop : crop + side]
    return _normalise(out)


def fitting_size(extent: float) -> int:
    """Smallest allowed odd size whose half-width covers ``extent`` pixels (clamped to 7..21)."""
    size = 2 * int(math.ceil(extent)) + 1
    return min(max(size, KERNEL_SIZES[0]), KERNEL_SIZES[-1])
