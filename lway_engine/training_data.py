"""Training pairs for step 1 (LR reconstruction pretraining): synthetic ones made on the fly from HR photos, and
real registered pairs from disk.

Real-pair layouts: City100 (``NNNH.png`` / ``NNNL.png``) and RealSR V3 (``*_HR.png`` / ``*_LR{scale}.png``). In
both the LR is registered to the HR grid at HR size, so it is area-downsampled by the scale (an LR already at
HR/scale size is used as it is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lway_engine.degradations import TRAINING_PIPELINES, degrade
from lway_engine.imageio import READ_SUFFIXES, read_image


def _load(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 tensor: decoded once and kept compactly in memory for the whole run."""
    rgb = read_image(path).rgb()
    return torch.from_numpy(np.rint(rgb * 255).astype(np.uint8).transpose(2, 0, 1).copy())


def image_files(folders: list[Path]) -> list[Path]:
    """Image files under the folders, sorted (a stable order makes index-based splits reproducible)."""
    return sorted(p for f in folders for p in f.rglob("*") if p.suffix.lower() in READ_SUFFIXES)


def find_pairs(folders: list[Path], scale: int) -> list[tuple[Path, Path]]:
    """(HR, LR) file pairs in City100 or RealSR V3 layout, sorted by HR name."""
    pairs = []
    for path in image_files(folders):
        name = path.name
        if m := re.fullmatch(r"(\d+)H(\.\w+)", name):
            lr = path.with_name(f"{m[1]}L{m[2]}")
        elif m := re.fullmatch(r"(.+)_HR(\.\w+)", name):
            lr = path.with_name(f"{m[1]}_LR{scale}{m[2]}")
        else:
            continue
        if lr.exists():
            pairs.append((path, lr))
    return pairs


@dataclass
class PairSource:
    """HR images (for synthetic LR) and real (HR, LR) pairs, held in memory as uint8."""

    scale: int
    hr_images: list[torch.Tensor]
    real_pairs: list[tuple[torch.Tensor, torch.Tensor]]

    @classmethod
    def load(cls, hr_files: list[Path], pair_files: list[tuple[Path, Path]], scale: int) -> PairSource:
        real = []
        for hr_path, lr_path in pair_files:
            hr, lr = _load(hr_path), _load(lr_path)
            if lr.shape[-2:] == hr.shape[-2:]:
                lr = F.avg_pool2d(lr[None].float(), scale)[0].round().to(torch.uint8)
            h, w = lr.shape[-2:]
            real.append((hr[:, : h * scale, : w * scale], lr))
        return cls(scale, [_load(p) for p in hr_files], real)

    def drop_smaller_than(self, hr_side: int) -> PairSource:
        """Keep only images (and pairs) whose HR can hold an ``hr_side`` square crop."""
        big = lambda t: min(t.shape[-2:]) >= hr_side  # noqa: E731
        return PairSource(self.scale, [h for h in self.hr_images if big(h)],
                          [(h, lr) for h, lr in self.real_pairs if big(h)])

    def sample(self, rng: np.random.Generator, crop: int, real_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One (HR (3, crop*s, crop*s), LR (3, crop, crop)) float pair in [0, 1]."""
        s = self.scale
        if self.real_pairs and (not self.hr_images or rng.random() < real_fraction):
            hr, lr = self.real_pairs[rng.integers(len(self.real_pairs))]
            top, left = rng.integers(0, lr.shape[1] - crop + 1), rng.integers(0, lr.shape[2] - crop + 1)
            return (hr[:, top * s : (top + crop) * s, left * s : (left + crop) * s].float() / 255,
                    lr[:, top : top + crop, left : left + crop].float() / 255)
        hr = self.hr_images[rng.integers(len(self.hr_images))]
        size = crop * s
        top, left = rng.integers(0, hr.shape[1] - size + 1), rng.integers(0, hr.shape[2] - size + 1)
        patch = hr[:, top : top + size, left : left + size].float() / 255
        pipeline = TRAINING_PIPELINES[rng.integers(len(TRAINING_PIPELINES))]
        return patch, degrade(patch, pipeline, rng, scale=s)

    def batch(self, rng: np.random.Generator, size: int, crop: int, real_fraction: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
        samples = [self.sample(rng, crop, real_fraction) for _ in range(size)]
        return torch.stack([hr for hr, _ in samples]), torch.stack([lr for _, lr in samples])
