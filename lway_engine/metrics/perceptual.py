"""LPIPS as an evaluation metric: ``lway_engine.metrics.lpips_net.LPIPS`` (the ``lpips`` package's v0.1 heads on our
registry's ImageNet AlexNet/VGG16) applied to batches or arrays.

Convention: RGB in [0, 1] (the network sees [-1, 1]); no quantisation; lower is better, 0 for identical images.
"""

from __future__ import annotations

import numpy as np
import torch

from lway_engine.media.images import to_tensor
from lway_engine.metrics.colour import check_pair
from lway_engine.metrics.lpips_net import LPIPS


def lpips_batch(metric: LPIPS, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LPIPS of each image pair in two (N, 3, H, W) batches, as float64 on the batches' device."""
    check_pair(x, y)
    device = next(metric.parameters()).device
    with torch.no_grad():
        return metric(x.float().to(device), y.float().to(device)).double().to(x.device)


def lpips_arrays(metric: LPIPS, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS between two (H, W, 3) float images in [0, 1] with an already built ``metric``."""
    return float(lpips_batch(metric, to_tensor(a), to_tensor(b)))
