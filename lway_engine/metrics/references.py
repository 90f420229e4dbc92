"""The reference implementations our metrics are validated against, with our call convention ((N, 3, H, W) in
[0, 1] -> (N,) float64): scikit-image's PSNR/SSIM, the ``lpips`` package, and ``dists-pytorch`` (a test-only
dependency). Used by tests/test_metrics.py and bench/metric_references.py; the metrics themselves never call them.

The reference packages build their backbones with torchvision's ``pretrained=True``, which downloads; here they get
the same ImageNet weights from our registry through torchvision's own constructors (``registry_weights``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from lway_engine.metrics.backbones import imagenet_model
from lway_engine.metrics.colour import rgb_to_y
from lway_engine.metrics.registry import MetricFn

DISTS_PYTORCH_WEIGHTS = Path(sys.prefix) / "weights.pt"  # where dists-pytorch installs its alpha/beta


@contextmanager
def registry_weights(arch: str) -> Iterator[None]:
    """Within the block, ``torchvision.models.<arch>(...)`` returns the network with our registry's weights."""
    import torchvision

    with mock.patch.object(torchvision.models, arch, lambda *args, **kwargs: imagenet_model(arch)):
        yield


def _skimage_planes(x: torch.Tensor, y_channel: bool, crop: int) -> list[np.ndarray]:
    """Each image as the float64 8-bit array scikit-image gets: quantised, optionally Y, border cropped."""
    planes = []
    for image in x:
        a = np.rint(np.clip(image.double().cpu().numpy().transpose(1, 2, 0), 0, 1) * 255.0)
        a = rgb_to_y(a) if y_channel else a
        planes.append(a[crop:-crop, crop:-crop] if crop else a)
    return planes


def skimage_psnr(x: torch.Tensor, y: torch.Tensor, y_channel: bool = False, crop: int = 0) -> torch.Tensor:
    from skimage.metrics import peak_signal_noise_ratio

    pairs = zip(_skimage_planes(x, y_channel, crop), _skimage_planes(y, y_channel, crop))
    return torch.tensor([peak_signal_noise_ratio(b, a, data_range=255) for a, b in pairs], dtype=torch.float64)


def skimage_ssim(x: torch.Tensor, y: torch.Tensor, y_channel: bool = False, crop: int = 0) -> torch.Tensor:
    """MATLAB/BasicSR settings: Gaussian window sigma 1.5, population covariance, 8-bit data range."""
    from skimage.metrics import structural_similarity

    pairs = zip(_skimage_planes(x, y_channel, crop), _skimage_planes(y, y_channel, crop))
    return torch.tensor([structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False, channel_axis=None if y_channel else 2)
                         for a, b in pairs], dtype=torch.float64)


def lpips_package(net: str) -> MetricFn:
    """``lpips.LPIPS(net)`` as shipped (its v0.1 heads), on the registry's backbone."""
    import lpips

    with registry_weights({"alex": "alexnet", "vgg": "vgg16"}[net]):
        model = lpips.LPIPS(net=net, verbose=False).eval()

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x.float(), y.float(), normalize=True).flatten().double()

    return run


def dists_pytorch() -> MetricFn:
    """``DISTS_pytorch.DISTS()`` (the authors' package), on the registry's VGG16; needs ``dists-pytorch``."""
    from DISTS_pytorch.DISTS_pt import DISTS

    if not DISTS_PYTORCH_WEIGHTS.is_file():
        raise FileNotFoundError(f"dists-pytorch's weights are not at {DISTS_PYTORCH_WEIGHTS}")
    with registry_weights("vgg16"):
        model = DISTS()
    return lambda x, y: model(x.float(), y.float()).detach().double().reshape(-1)
