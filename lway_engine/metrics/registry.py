"""The metrics ``lway-engine evaluate`` knows by name: direction, convention, and how to build each on a device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (sr, hr) (N, 3, H, W) in [0, 1] -> (N,) f64


@dataclass(frozen=True)
class MetricSpec:
    """A named metric: whether higher is better, its input convention, and a builder for a given device."""

    name: str
    higher_is_better: bool
    convention: str
    build: Callable[[torch.device, bool], MetricFn]  # (device, y_channel) -> metric


def _psnr(device: torch.device, y_channel: bool) -> MetricFn:
    from lway_engine.metrics.fidelity import psnr

    return lambda x, y: psnr(x, y, y_channel=y_channel)


def _ssim(device: torch.device, y_channel: bool) -> MetricFn:
    from lway_engine.metrics.fidelity import ssim

    return lambda x, y: ssim(x, y, y_channel=y_channel)


def _lpips(net: str) -> Callable[[torch.device, bool], MetricFn]:
    def build(device: torch.device, y_channel: bool) -> MetricFn:
        from lway_engine.metrics.lpips_net import LPIPS
        from lway_engine.metrics.perceptual import lpips_batch

        model = LPIPS(net).to(device)
        return lambda x, y: lpips_batch(model, x, y)

    return build


def _dists(device: torch.device, y_channel: bool) -> MetricFn:
    from lway_engine.metrics.dists import DISTS

    model = DISTS().to(device)

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x, y)

    return run


def _nlpd(device: torch.device, y_channel: bool) -> MetricFn:
    from lway_engine.metrics.nlpd import nlpd

    return nlpd


def _mad(device: torch.device, y_channel: bool) -> MetricFn:
    from lway_engine.metrics.mad import mad

    return mad


METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("psnr", True, "dB, 8-bit quantised RGB (or Y with --y), peak 255", _psnr),
    MetricSpec("ssim", True, "8-bit quantised RGB mean over channels (or Y with --y), 11x11 Gaussian", _ssim),
    MetricSpec("lpips-alex", False, "LPIPS v0.1, AlexNet, RGB", _lpips("alex")),
    MetricSpec("lpips-vgg", False, "LPIPS v0.1, VGG16, RGB", _lpips("vgg")),
    MetricSpec("dists", False, "DISTS, VGG16 + published alpha/beta, RGB", _dists),
    MetricSpec("nlpd", False, "normalised Laplacian pyramid distance, BT.601 luma", _nlpd),
    MetricSpec("mad", False, "most apparent distortion, BT.601 luma", _mad),
)}
PAPER_METRICS = ("psnr", "ssim", "lpips-alex", "dists", "nlpd", "mad")  # the LWay paper's table


def build_metric(name: str, device: torch.device | str = "cpu", y_channel: bool = False) -> MetricFn:
    """A callable ``(sr, hr) -> (N,) float64`` for the metric ``name`` on ``device``."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name].build(torch.device(device), y_channel)
