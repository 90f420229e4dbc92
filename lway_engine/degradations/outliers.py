"""Defects that no training pipeline makes, added to LR images for the error model's fit alone (outlier exposure).

Why: the error model (``reconstruction/error_model.py``) predicts R's error from the HR, and it was fitted on the
training mix, where R reproduces the LR well by construction. On a degradation type R never saw it then predicts an
error as small as R's usual one: on the unseen ``gif_palette`` it under-predicted R's error by 1.5-1.8x, so the
explainability gate read 1.6 where the truth is 0.9 and opened (``bench/results/
gate_truth_lway-er-x4-resize_x86_64_CPU.json``). Samples whose LR carries a defect R cannot make from any HR show
the regression what R failing looks like. The defects are chosen to be unlike the unseen evaluation families (no
palette, no dither, no periodic screen), so those still measure how the gate generalises: impulse noise (dead
pixels, dust specks on a scan), banding (row or column offsets of a sensor or scanner) and scratches (film).
They are applied after the sample's own degradation, as a scanner or a damaged print adds them, and the result is
quantised to 8 bits like a saved LR.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from lway_engine.degradations import ops


def impulse(lr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """0.5-3% of the pixels set to black or white in every channel."""
    shape = lr.shape[-2:]
    hit = torch.from_numpy(rng.random(shape) < rng.uniform(0.005, 0.03))
    value = torch.from_numpy((rng.random(shape) < 0.5).astype(np.float32))
    return torch.where(hit, value, lr)


def banding(lr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """An offset per row (or per column) with a standard deviation of 1-5% of the range."""
    sigma, axis = rng.uniform(0.01, 0.05), int(rng.integers(2))
    offsets = torch.from_numpy(rng.normal(0, sigma, lr.shape[-2 + axis]).astype(np.float32))
    return lr + (offsets[:, None] if axis == 0 else offsets[None, :])


def scratches(lr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """1-4 one-pixel-wide vertical scratches, each at least 8 px long (or to the bottom edge), 20-50% of the range
    brighter or darker."""
    out = lr.clone()
    height, width = lr.shape[-2:]
    for _ in range(int(rng.integers(1, 5))):
        column = int(rng.integers(width))
        top, bottom = sorted(int(v) for v in rng.integers(0, height, 2))
        bottom = max(bottom, top + 8)
        out[..., top:bottom, column] += float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.5))
    return out


OUTLIERS: dict[str, Callable[[torch.Tensor, np.random.Generator], torch.Tensor]] = {
    "impulse": impulse, "banding": banding, "scratches": scratches}


def add_outlier(lr: torch.Tensor, kind: str, rng: np.random.Generator) -> torch.Tensor:
    """``lr`` ((3, H, W) in [0, 1]) with the defect ``kind`` (a key of OUTLIERS), clipped and quantised to 8 bits."""
    if kind not in OUTLIERS:
        raise ValueError(f"unknown outlier defect {kind!r}; choose from {', '.join(OUTLIERS)}")
    return ops.to_8bit(OUTLIERS[kind](lr, rng))
