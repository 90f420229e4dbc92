"""Graded distortions for checking a metric's direction: five Gaussian blurs and five Gaussian noise levels, each
worse than the last. Every metric must get monotonically worse along both ladders (``tests/test_metrics.py``,
``bench/metric_ladders.py``).
"""

from __future__ import annotations

import torch

from lway_engine.degradations import kernels, ops

BLUR_SIGMAS = (0.6, 1.0, 1.5, 2.2, 3.0)  # pixels
NOISE_SIGMAS = (2 / 255, 5 / 255, 10 / 255, 18 / 255, 30 / 255)  # of the [0, 1] range
LADDERS = {"blur": BLUR_SIGMAS, "noise": NOISE_SIGMAS}


def distort(image: torch.Tensor, ladder: str, level: int, seed: int = 0) -> torch.Tensor:
    """``image`` (N, 3, H, W) in [0, 1] at ``level`` (0 mildest) of ``ladder``, quantised to 8 bits as a saved
    file would be. Noise uses one seeded field for every level, so levels differ only in strength."""
    sigma = LADDERS[ladder][level]
    if ladder == "blur":
        out = ops.filter2d(image, kernels.gaussian(kernels.fitting_size(3 * sigma), sigma))
    else:
        out = ops.gaussian_noise(image, sigma, grey=False, seed=seed)
    return ops.to_8bit(out)


def ladder(image: torch.Tensor, name: str, seed: int = 0) -> list[torch.Tensor]:
    """All levels of one ladder, mildest first."""
    return [distort(image, name, level, seed) for level in range(len(LADDERS[name]))]
