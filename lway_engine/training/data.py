"""Training pairs for step 1 (LR reconstruction pretraining): synthetic ones made on the fly from HR photos, and
real registered pairs from disk.

Real-pair layouts: City100 (``NNNH.png`` / ``NNNL.png``) and RealSR V3 (``*_HR.png`` / ``*_LR{scale}.png``). In
both the LR is registered to the HR grid at HR size, so it is area-downsampled by the scale (an LR already at
HR/scale size is used as it is).

Every step's batch is a pure function of (seed, step) (:meth:`PairSource.batch_for_step`): a resumed run needs no
sampler state, and a worker process can prepare the next batches while the model trains on this one.
Files that cannot serve (unreadable, smaller than a crop) are skipped and counted, greyscale and 16-bit ones
converted and counted (:class:`LoadReport`), so one bad file never stops a long run.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from lway_engine.degradations import TRAINING_MIX, degrade_with_plan, optics_kernel
from lway_engine.media.images import READ_SUFFIXES, ImageReadError, read_image


@dataclass
class LoadReport:
    """What loading training files did besides reading them: conversions and skips, by reason."""

    converted: Counter = field(default_factory=Counter)  # "greyscale", "16-bit", "alpha dropped"
    skipped: dict[str, str] = field(default_factory=dict)  # file name -> reason

    def summary(self) -> str:
        parts = [f"{n} {kind} converted to 8-bit RGB" for kind, n in sorted(self.converted.items())]
        reasons = Counter(reason.split(":")[0] for reason in self.skipped.values())
        parts += [f"{n} skipped ({reason})" for reason, n in sorted(reasons.items())]
        return "; ".join(parts) or "all files used as they are"


def _load(path: Path, report: LoadReport) -> torch.Tensor | None:
    """(3, H, W) uint8 tensor, decoded once and kept compactly in memory; None (and a note) if unreadable."""
    try:
        image = read_image(path)
    except (ImageReadError, OSError) as exc:
        report.skipped[path.name] = f"unreadable: {exc}"
        return None
    for flag, kind in ((image.grey, "greyscale"), (image.bit_depth == 16, "16-bit"),
                       (image.alpha is not None, "alpha dropped")):
        if flag:
            report.converted[kind] += 1
    return torch.from_numpy(np.rint(image.rgb() * 255).astype(np.uint8).transpose(2, 0, 1).copy())


def image_files(inputs: list[Path]) -> list[Path]:
    """Image files: folders searched recursively, files taken as given; sorted (a stable order makes index-based
    splits reproducible)."""
    found = set()
    for path in inputs:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        found.update(p for p in path.rglob("*") if p.suffix.lower() in READ_SUFFIXES) if path.is_dir() \
            else found.add(path)
    return sorted(found)


def find_pairs(folders: list[Path], scale: int) -> list[tuple[Path, Path]]:
    """(HR, LR) file pairs in City100 or RealSR V3 layout, sorted by HR name; the LR may be in another image
    format than its HR (the same suffix is tried first)."""
    pairs = []
    for path in image_files(folders):
        name = path.name
        if m := re.fullmatch(r"(\d+)H(\.\w+)", name):
            stem = f"{m[1]}L"
        elif m := re.fullmatch(r"(.+)_HR(\.\w+)", name):
            stem = f"{m[1]}_LR{scale}"
        else:
            continue
        suffixes = dict.fromkeys([m[2], *READ_SUFFIXES])
        lr = next((c for c in (path.with_name(stem + s) for s in suffixes) if c.exists()), None)
        if lr is not None:
            pairs.append((path, lr))
    return pairs


class Sample(NamedTuple):
    """Training samples (one, or a batch with a leading dimension): HR, LR and, where the LR is synthetic, the HR
    optics kernel its plan applied (:func:`~lway_engine.degradations.optics_kernel`; NaN for real pairs, whose
    kernel is unknown; (0, 0) when the source does not draw kernels)."""

    hr: torch.Tensor
    lr: torch.Tensor
    kernel: torch.Tensor

    @staticmethod
    def stack(samples: list[Sample]) -> Sample:
        """Single samples as one batch."""
        return Sample(*(torch.stack(parts) for parts in zip(*samples)))


def draw_pipeline(rng: np.random.Generator, mix: dict[str, float] = TRAINING_MIX) -> str:
    """One synthetic pipeline's name, drawn from ``mix`` ({name: odds}, normalised here): the pretraining's draw,
    shared by the bench experiments that synthesise pairs as pretraining does."""
    names = list(mix)
    return names[int(rng.choice(len(names), p=np.array(list(mix.values())) / sum(mix.values())))]


@dataclass
class PairSource:
    """HR images (for synthetic LR) and real (HR, LR) pairs, held in memory as uint8."""

    scale: int
    hr_images: list[torch.Tensor]
    real_pairs: list[tuple[torch.Tensor, torch.Tensor]]
    report: LoadReport = field(default_factory=LoadReport)
    pipelines: dict[str, float] = field(default_factory=lambda: dict(TRAINING_MIX))  # synthetic mix, by odds
    kernel_size: int = 0  # > 0: samples carry their optics kernel in a kernel_size square frame
    real_camera: list[int] = field(default_factory=list)  # per real pair, the index of its folder (one camera each)
    camera_names: list[str] = field(default_factory=list)  # per folder index, the folder's name (its camera)

    @classmethod
    def load(cls, hr_files: list[Path], pair_files: list[tuple[Path, Path]], scale: int,
             min_hr_side: int = 0, pipelines: dict[str, float] | None = None) -> PairSource:
        """Read the files, skipping (and reporting) unreadable ones and those whose HR cannot hold a
        ``min_hr_side`` square crop; ``pipelines``: the synthetic mix (default ``TRAINING_MIX``)."""
        report = LoadReport()

        def big_enough(path: Path, hr: torch.Tensor) -> bool:
            if min(hr.shape[-2:]) >= min_hr_side:
                return True
            report.skipped[path.name] = f"smaller than the crop: {tuple(hr.shape[-2:])} < {min_hr_side} px"
            return False

        real, camera = [], []
        folders = sorted({hr_path.parent for hr_path, _ in pair_files})
        for hr_path, lr_path in pair_files:
            hr, lr = _load(hr_path, report), _load(lr_path, report)
            if hr is None or lr is None or not big_enough(hr_path, hr):
                continue
            if lr.shape[-2:] == hr.shape[-2:]:
                lr = F.avg_pool2d(lr[None].float(), scale)[0].round().to(torch.uint8)
            h, w = lr.shape[-2:]
            real.append((hr[:, : h * scale, : w * scale], lr))
            camera.append(folders.index(hr_path.parent))
        images = [(p, _load(p, report)) for p in hr_files]
        return cls(scale, [img for p, img in images if img is not None and big_enough(p, img)], real, report,
                   dict(pipelines or TRAINING_MIX), real_camera=camera, camera_names=[f.name for f in folders])

    @cached_property
    def cameras(self) -> list[list[int]]:
        """The real pairs' indices grouped by folder (one camera each), in folder order; worked out once, not on
        every draw."""
        groups: dict[int, list[int]] = {}
        for index, camera in enumerate(self.real_camera):
            groups.setdefault(camera, []).append(index)
        return [groups[camera] for camera in sorted(groups)]

    def _draw_real(self, rng: np.random.Generator) -> int:
        """A real pair's index: a folder (one camera) first, then a pair in it, so that a camera with many pairs
        does not crowd out another's (45 phone pairs beside City100's 27 took the Nikon's share, and R lost 0.43 dB
        on it). With one folder this is the plain uniform draw, so single-camera runs' batches are unchanged."""
        if len(self.cameras) <= 1:
            return int(rng.integers(len(self.real_pairs)))
        members = self.cameras[rng.integers(len(self.cameras))]
        return members[rng.integers(len(members))]

    def sample(self, rng: np.random.Generator, crop: int, real_fraction: float) -> Sample:
        """One HR (3, crop*s, crop*s), LR (3, crop, crop) float pair in [0, 1], with its kernel."""
        return self.labelled_sample(rng, crop, real_fraction)[0]

    def labelled_sample(self, rng: np.random.Generator, crop: int, real_fraction: float) -> tuple[Sample, str]:
        """:meth:`sample` (the same draws) with where it came from: the synthetic pipeline's name, or
        ``camera:<folder>`` for a real pair. Kept out of :class:`Sample`, whose fields are all tensors that batches
        stack and move to the device; the error model's fit reports its bias per origin with it."""
        s, k = self.scale, self.kernel_size
        if self.real_pairs and (not self.hr_images or rng.random() < real_fraction):
            index = self._draw_real(rng)
            hr, lr = self.real_pairs[index]
            top, left = rng.integers(0, lr.shape[1] - crop + 1), rng.integers(0, lr.shape[2] - crop + 1)
            camera = self.camera_names[self.real_camera[index]] if self.camera_names else "real"
            return Sample(hr[:, top * s : (top + crop) * s, left * s : (left + crop) * s].float() / 255,
                          lr[:, top : top + crop, left : left + crop].float() / 255,
                          torch.full((k, k), math.nan)), f"camera:{camera}"
        hr = self.hr_images[rng.integers(len(self.hr_images))]
        size = crop * s
        top, left = rng.integers(0, hr.shape[1] - size + 1), rng.integers(0, hr.shape[2] - size + 1)
        patch = hr[:, top : top + size, left : left + size].float() / 255
        pipeline = draw_pipeline(rng, self.pipelines)
        lr, steps = degrade_with_plan(patch, pipeline, rng, scale=s)
        kernel = torch.from_numpy(optics_kernel(steps, k).astype(np.float32)) if k else torch.zeros(0, 0)
        return Sample(patch, lr, kernel), pipeline

    def batch(self, rng: np.random.Generator, size: int, crop: int, real_fraction: float) -> Sample:
        return Sample.stack([self.sample(rng, crop, real_fraction) for _ in range(size)])

    def batch_for_step(self, seed: int, step: int, size: int, crop: int, real_fraction: float) -> Sample:
        """The batch of training step ``step``: a pure function of (seed, step), whatever ran before."""
        return self.batch(np.random.default_rng([seed, step]), size, crop, real_fraction)
