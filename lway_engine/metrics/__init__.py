"""Full-reference image-quality metrics: the six of the LWay paper's tables (PSNR, SSIM, LPIPS, DISTS, NLPD, MAD).

Batched functions take (N, 3, H, W) tensors in [0, 1] on any device and return one float64 value per image;
``build_metric(name)`` gives any of them by name (the modules ``dists``, ``nlpd`` and ``mad`` hold the rest).
PSNR and SSIM follow the SR toolkits' 8-bit convention; each module's docstring states its own convention.
Higher is better for PSNR and SSIM only.
"""

from lway_engine.metrics.colour import rgb_to_y
from lway_engine.metrics.fidelity import psnr, psnr_y, ssim, ssim_y
from lway_engine.metrics.perceptual import lpips_arrays, lpips_batch
from lway_engine.metrics.registry import METRICS, PAPER_METRICS, MetricSpec, build_metric

__all__ = ["METRICS", "PAPER_METRICS", "MetricSpec", "build_metric", "lpips_arrays", "lpips_batch", "psnr",
           "psnr_y", "rgb_to_y", "ssim", "ssim_y"]
