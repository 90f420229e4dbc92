"""Plan steps: one named operation with plain-number parameters, and the table of operations they name.

A pipeline's planner (``pipelines.py``, ``broad.py``) draws every random choice up front and records it in steps;
applying a step is a pure function of the image, so plans reproduce bit for bit and can be logged or edited.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lway_engine.degradations import camera, kernels, ops, optics, printing


@dataclass(frozen=True)
class Step:
    """One operation of a plan: ``op`` names an entry of ``OPS``, ``params`` are its keyword arguments."""

    op: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return ops.clip(OPS[self.op](img, **self.params))


def _blur(img: torch.Tensor, kernel: Mapping[str, Any]) -> torch.Tensor:
    return ops.filter2d(img, kernels.build(**kernel))


OPS: dict[str, Callable[..., torch.Tensor]] = {
    "blur": _blur,
    "resize": ops.resize,
    "subsample": ops.subsample,
    "gaussian_noise": ops.gaussian_noise,
    "poisson_noise": ops.poisson_noise,
    "sensor_noise": ops.sensor_noise,
    "jpeg": ops.jpeg,
    "bayer": ops.bayer_round_trip,
    "film_grain": ops.film_grain,
    "fade": ops.colour_fade,
    "tone_adjust": ops.tone_adjust,
    "to_linear": camera.to_linear,
    "from_linear": camera.from_linear,
    "colour_errors": camera.colour_errors,
    "raw_capture": camera.raw_capture,
    "sharpen": camera.sharpen,
    "chromatic_aberration": optics.chromatic_aberration,
    "vignetting": optics.vignetting,
    "halftone": printing.halftone,
    "palette": printing.palette,
}


def seed_from(rng: np.random.Generator) -> int:
    """An integer seed for a noise op, drawn from the planner's generator."""
    return int(rng.integers(0, 2**63 - 1))


def loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))
