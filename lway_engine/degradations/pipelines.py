"""Named HR -> LR degradation pipelines, each split into *planning* and *applying*.

A pipeline's planner draws every random choice from a ``numpy.random.Generator`` and returns a list of
``Step`` records (operation name + plain-number parameters; noise ops carry their own integer seed). Applying
a plan is then a pure function of the image. This makes ``degrade(hr, name, seed)`` bit-reproducible, lets the
parameters be logged as labels, and lets tests switch single steps off.

HR images whose sides are not multiples of ``scale`` are cropped (keeping the top-left corner) to the largest
multiples first, so every pipeline ends at exactly (3, H // scale, W // scale).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.signal import convolve2d

from lway_engine.degradations import kernels, ops
from lway_engine.degradations.broad import plan_broad, plan_resize
from lway_engine.degradations.catalog import (
    CONTROLS,
    DESCRIPTIONS,
    EVALUATION_FAMILIES,
    TRAINING_PIPELINES,
    UNSEEN_FAMILIES,
)
from lway_engine.degradations.steps import OPS, Step, loguniform, seed_from

__all__ = ["EVALUATION_FAMILIES", "OPS", "PIPELINES", "UNSEEN_FAMILIES", "TRAINING_PIPELINES", "Pipeline", "Step",
           "apply_plan", "crop_to_scale", "degrade", "degrade_with_plan", "optics_kernel", "plan"]


Planner = Callable[[np.random.Generator, int, int, int], list[Step]]


@dataclass(frozen=True)
class Pipeline:
    """A named degradation model: ``plan(rng, height, width, scale)`` -> steps, ``random`` False for controls."""

    name: str
    description: str
    plan: Planner
    random: bool = True


# --------------------------------------------------------------------------------------------- sampling helpers


def _mode(rng: np.random.Generator) -> str:
    return str(rng.choice(ops.RESIZE_MODES))


def _size(height: float, width: float) -> tuple[int, int]:
    return max(1, int(height)), max(1, int(width))


def _final(height: int, width: int, scale: int) -> tuple[int, int]:
    return height // scale, width // scale


# ------------------------------------------------------------------------------------------------------ bicubic


def _plan_bicubic(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    return [Step("resize", {"size": _final(height, width, scale), "mode": "bicubic"})]


# ------------------------------------------------------------------------------------------------------- BSRGAN
# Zhang et al., "Designing a Practical Degradation Model for Deep Blind Image Super-Resolution" (ICCV 2021).


def _bsrgan_kernel(rng: np.random.Generator, sf: int) -> dict[str, Any]:
    """Half isotropic, half anisotropic Gaussian; widths grow with the remaining scale factor ``sf``."""
    size = int(2 * rng.integers(2, 10) + 3)  # 7..21
    if rng.random() < 0.5:
        variances = rng.uniform(0.1, 4.0 + sf, size=2)  # eigenvalues of the covariance
        return {"kind": "gaussian", "size": size, "sigma_x": float(math.sqrt(variances[0])),
                "sigma_y": float(math.sqrt(variances[1])), "theta": float(rng.uniform(0, math.pi))}
    return {"kind": "gaussian", "size": size, "sigma_x": float(rng.uniform(0.1, 2.0 + 0.2 * sf))}


def _plan_bsrgan(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    steps: list[Step] = []
    current = (height, width)
    sf = scale
    if scale == 4 and rng.random() < 0.25:  # sometimes take half of the x4 up front
        current = (height // 2, width // 2)
        steps.append(Step("resize", {"size": current, "mode": _mode(rng)}))
        sf = 2
    order = [int(i) for i in rng.permutation(6)]  # 0,1 blur; 2 free downsample; 3 final downsample; 4 noise; 5 jpeg
    a, b = order.index(2), order.index(3)
    if a > b:
        order[a], order[b] = order[b], order[a]
    for op in order:
        if op in (0, 1):
            steps.append(Step("blur", {"kernel": _bsrgan_kernel(rng, sf)}))
        elif op == 2:
            if rng.random() < 0.75:  # resize by a random factor, possibly below the final size
                factor = rng.uniform(1.0, 2.0 * sf)
                current = _size(current[0] / factor, current[1] / factor)
                steps.append(Step("resize", {"size": current, "mode": _mode(rng)}))
            else:  # Gaussian prefilter, then plain decimation by sf
                sigma = float(rng.uniform(0.1, 0.6 * sf))
                steps.append(Step("blur", {"kernel": {"kind": "gaussian", "size": 21, "sigma_x": sigma}}))
                steps.append(Step("subsample", {"factor": sf}))
                current = (-(-current[0] // sf), -(-current[1] // sf))
        elif op == 3:
            current = _final(height, width, scale)
            steps.append(Step("resize", {"size": current, "mode": _mode(rng)}))
        elif op == 4:
            steps.append(Step("gaussian_noise", {"sigma": float(rng.uniform(2, 25)) / 255,
                                                 "grey": bool(rng.random() < 0.4), "seed": seed_from(rng)}))
        elif op == 5 and rng.random() < 0.9:
            steps.append(Step("jpeg", {"quality": int(rng.integers(30, 96))}))
    steps.append(Step("jpeg", {"quality": int(rng.integers(30, 96))}))
    return steps


# -------------------------------------------------------------------------------------------------- Real-ESRGAN
# Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data" (ICCVW 2021).


@dataclass(frozen=True)
class _Stage:
    sigma: tuple[float, float]
    resize_probs: tuple[float, float, float]  # up, down, keep
    resize_range: tuple[float, float]
    noise_sigma: tuple[float, float]  # in 8-bit levels
    poisson_scale: tuple[float, float]
    sinc_prob: float = 0.1
    blur_prob: float = 1.0
    gaussian_noise_prob: float = 0.5
    grey_noise_prob: float = 0.4


_FIRST = _Stage(sigma=(0.2, 3.0), resize_probs=(0.2, 0.7, 0.1), resize_range=(0.15, 1.5), noise_sigma=(1, 30),
                poisson_scale=(0.05, 3.0))
_SECOND = _Stage(sigma=(0.2, 1.5), resize_probs=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2), noise_sigma=(1, 25),
                 poisson_scale=(0.05, 2.5), blur_prob=0.8)
_KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_KERNEL_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


def _realesrgan_kernel(rng: np.random.Generator, stage: _Stage) -> dict[str, Any]:
    size = int(rng.choice(kernels.KERNEL_SIZES))
    if rng.random() < stage.sinc_prob:
        low = math.pi / 3 if size < 13 else math.pi / 5
        return {"kind": "sinc", "size": size, "cutoff": float(rng.uniform(low, math.pi))}
    kind = str(rng.choice(_KERNEL_KINDS, p=_KERNEL_PROBS))
    sigma_x = float(rng.uniform(*stage.sigma))
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma_y, theta = sigma_x, 0.0
    else:
        sigma_y, theta = float(rng.uniform(*stage.sigma)), float(rng.uniform(-math.pi, math.pi))
    spec: dict[str, Any] = {"size": size, "sigma_x": sigma_x, "sigma_y": sigma_y, "theta": theta}
    if kind.startswith("generalized"):
        beta = rng.uniform(0.5, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, 4.0)
        return {"kind": "generalized_gaussian", **spec, "beta": float(beta)}
    if kind.startswith("plateau"):
        return {"kind": "plateau", **spec, "beta": float(rng.uniform(1.0, 2.0))}
    return {"kind": "gaussian", **spec}


def _realesrgan_noise(rng: np.random.Generator, stage: _Stage) -> Step:
    if rng.random() < stage.gaussian_noise_prob:
        return Step("gaussian_noise", {"sigma": float(rng.uniform(*stage.noise_sigma)) / 255,
                                       "grey": bool(rng.random() < stage.grey_noise_prob), "seed": seed_from(rng)})
    return Step("poisson_noise", {"scale": float(rng.uniform(*stage.poisson_scale)),
                                  "grey": bool(rng.random() < stage.grey_noise_prob), "seed": seed_from(rng)})


def _realesrgan_resize(rng: np.random.Generator, stage: _Stage, base: tuple[int, int]) -> Step:
    direction = int(rng.choice(3, p=stage.resize_probs))
    if direction == 0:
        factor = rng.uniform(1.0, stage.resize_range[1])
    elif direction == 1:
        factor = rng.uniform(stage.resize_range[0], 1.0)
    else:
        factor = 1.0
    return Step("resize", {"size": _size(base[0] * factor, base[1] * factor), "mode": _mode(rng)})


def _plan_realesrgan(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    steps = [Step("blur", {"kernel": _realesrgan_kernel(rng, _FIRST)})]
    steps.append(_realesrgan_resize(rng, _FIRST, (height, width)))
    steps.append(_realesrgan_noise(rng, _FIRST))
    steps.append(Step("jpeg", {"quality": int(rng.integers(30, 96))}))
    # Second order: blur, resize relative to the final size, noise; its JPEG is the final one below.
    if rng.random() < _SECOND.blur_prob:
        steps.append(Step("blur", {"kernel": _realesrgan_kernel(rng, _SECOND)}))
    final = _final(height, width, scale)
    steps.append(_realesrgan_resize(rng, _SECOND, final))
    steps.append(_realesrgan_noise(rng, _SECOND))
    to_final = [Step("resize", {"size": final, "mode": _mode(rng)})]
    if rng.random() < 0.8:
        to_final.append(Step("blur", {"kernel": {"kind": "sinc", "size": int(rng.choice(kernels.KERNEL_SIZES)),
                                                 "cutoff": float(rng.uniform(math.pi / 3, math.pi))}}))
    compress = [Step("jpeg", {"quality": int(rng.integers(30, 96))})]
    steps += to_final + compress if rng.random() < 0.5 else compress + to_final
    return steps


# ---------------------------------------------------------------------------------------- evaluation families
# Held-out degradations: no Gaussian/generalized/plateau kernels and no signal-independent Gaussian or sRGB
# Poisson noise. Blur extents are in HR pixels for x4 and scale with the factor (clamped to kernel limits).


def _hr_extent(value: float, scale: int, low: float, high: float) -> float:
    return float(min(max(value * scale / 4, low), high))


def _disc_step(radius: float) -> Step:
    return Step("blur", {"kernel": {"kind": "disc", "size": kernels.fitting_size(radius), "radius": radius}})


def _plan_defocus_noise(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    radius = _hr_extent(rng.uniform(1.5, 6.0), scale, 0.5, 10.0)
    return [
        _disc_step(radius),
        Step("resize", {"size": _final(height, width, scale), "mode": _mode(rng)}),
        Step("sensor_noise", {"peak": loguniform(rng, 60, 600), "read": float(rng.uniform(0.0005, 0.003)),
                              "seed": seed_from(rng)}),
    ]


def _plan_motion(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    length = _hr_extent(rng.uniform(5.0, 17.0), scale, 1.0, 19.0)
    kernel = {"kind": "motion", "size": kernels.fitting_size(length / 2 + 1), "length": length,
              "angle": float(rng.uniform(0, math.pi))}
    return [
        Step("blur", {"kernel": kernel}),
        Step("resize", {"size": _final(height, width, scale), "mode": _mode(rng)}),
        Step("sensor_noise", {"peak": loguniform(rng, 600, 3000), "read": float(rng.uniform(0.0002, 0.001)),
                              "seed": seed_from(rng)}),
    ]


def _plan_bayer_jpeg(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    return [
        Step("resize", {"size": _final(height, width, scale), "mode": _mode(rng)}),
        Step("bayer"),
        Step("jpeg", {"quality": int(rng.integers(40, 71))}),
    ]


def _plan_film(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    return [
        _disc_step(_hr_extent(rng.uniform(0.8, 2.0), scale, 0.5, 10.0)),
        Step("resize", {"size": _final(height, width, scale), "mode": _mode(rng)}),
        Step("fade", {"contrast": float(rng.uniform(0.6, 0.9)),
                      "gains": [float(g) for g in 1 + rng.uniform(-0.08, 0.08, size=3)],
                      "lift": float(rng.uniform(0.02, 0.1))}),
        Step("film_grain", {"strength": float(rng.uniform(0.02, 0.06)), "grain_size": float(rng.uniform(0.5, 1.5)),
                            "seed": seed_from(rng)}),
    ]


# ------------------------------------------------------------------------------------------------ unseen families
# Degradation types that no training pipeline contains (printing.py): they measure generalisation honestly now
# that the broad space covers the four families above.


def _plan_halftone_scan(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    """A scanned magazine print: CMY halftone screens at the classic 15/75/0 degree angles (plus a random rotation
    of the sheet), period 3-6 HR px, scanner blur, downsampled."""
    turn = float(rng.uniform(0, 90))
    sigma = _hr_extent(rng.uniform(0.8, 1.6), scale, 0.3, 3.0)
    return [
        Step("halftone", {"period": _hr_extent(rng.uniform(3.0, 6.0), scale, 2.0, 12.0),
                          "angles": [15 + turn, 75 + turn, turn]}),
        Step("blur", {"kernel": {"kind": "gaussian", "size": kernels.fitting_size(3 * sigma), "sigma_x": sigma}}),
        Step("resize", {"size": _final(height, width, scale), "mode": _mode(rng)}),
    ]


def _plan_gif_palette(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    """An old web image: downsampled, then saved with an adaptive palette of 16-96 colours and dithering."""
    return [
        Step("resize", {"size": _final(height, width, scale), "mode": _mode(rng)}),
        Step("palette", {"colours": int(round(loguniform(rng, 16, 96))), "dither": True}),
    ]


_PLANNERS: dict[str, Planner] = {
    "bicubic": _plan_bicubic,
    "bsrgan": _plan_bsrgan,
    "realesrgan": _plan_realesrgan,
    "broad": plan_broad,
    "resize": plan_resize,
    "defocus_noise": _plan_defocus_noise,
    "motion": _plan_motion,
    "bayer_jpeg": _plan_bayer_jpeg,
    "film": _plan_film,
    "halftone_scan": _plan_halftone_scan,
    "gif_palette": _plan_gif_palette,
}
PIPELINES: dict[str, Pipeline] = {
    name: Pipeline(name, description, _PLANNERS[name], random=name not in CONTROLS)
    for name, description in DESCRIPTIONS.items()
}


def as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    """An int seed becomes a fresh PCG64 generator; a Generator is used (and advanced) as given."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator or an int seed, not {type(rng).__name__}")


def _pipeline(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise ValueError(f"unknown pipeline {name!r}; valid: {', '.join(PIPELINES)}") from None


def crop_to_scale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Keep the top-left (H - H % scale, W - W % scale) so the LR grid aligns exactly with the HR."""
    height, width = hr.shape[-2:]
    return hr[..., : height - height % scale, : width - width % scale]


def _check(hr: torch.Tensor, scale: int) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, not {scale!r}")
    if hr.ndim != 3 or hr.shape[0] != 3:
        raise ValueError(f"expected an RGB image tensor (3, H, W), got {tuple(hr.shape)}")
    if min(hr.shape[-2:]) < scale:
        raise ValueError(f"image {tuple(hr.shape[-2:])} is smaller than the scale factor {scale}")


def plan(hr_size: tuple[int, int], pipeline: str, rng: np.random.Generator | int, scale: int = 4) -> list[Step]:
    """The steps ``pipeline`` would apply to an HR image of ``hr_size`` = (H, W) (already cropped to the scale)."""
    height, width = hr_size
    return _pipeline(pipeline).plan(as_generator(rng), int(height), int(width), scale)


def apply_plan(hr: torch.Tensor, steps: list[Step]) -> torch.Tensor:
    """Run recorded steps on an image; pure and deterministic."""
    img = ops.clip(hr)
    for step in steps:
        img = step(img)
    return img


# Operations that only add random noise, and the one that captures with noise (its ``peak`` 0 means none).
NOISE_OPS = frozenset({"gaussian_noise", "poisson_noise", "sensor_noise", "film_grain"})


def noise_free(steps: list[Step]) -> list[Step]:
    """A plan without its random noise (noise and grain steps dropped, raw capture with ``peak`` 0): applied to
    the HR it approximates the LR's conditional mean given the HR and the exact parameters, so its PSNR against
    the LR bounds what any deterministic reconstructor can reach on that LR."""
    return [Step(s.op, {**s.params, "peak": 0.0}) if s.op == "raw_capture" else s
            for s in steps if s.op not in NOISE_OPS]


def degrade(hr: torch.Tensor, pipeline: str, rng: np.random.Generator | int, scale: int = 4) -> torch.Tensor:
    """HR (3, H, W) float in [0, 1] -> LR (3, H // scale, W // scale) float32 in [0, 1].

    ``rng`` is the only source of randomness (an int seeds a fresh generator), so the same seed gives a
    bit-identical result. HR sides that are not multiples of ``scale`` are cropped first (top-left kept).
    """
    return degrade_with_plan(hr, pipeline, rng, scale)[0]


def degrade_with_plan(hr: torch.Tensor, pipeline: str, rng: np.random.Generator | int, scale: int = 4
                      ) -> tuple[torch.Tensor, list[Step]]:
    """:func:`degrade`, also returning the plan it applied (the draw of ``rng`` is the same)."""
    _pipeline(pipeline)
    _check(hr, scale)
    hr = crop_to_scale(hr.detach().to("cpu", torch.float32), scale)
    steps = plan(tuple(hr.shape[-2:]), pipeline, rng, scale)
    lr = apply_plan(hr, steps)
    expected = (3, hr.shape[-2] // scale, hr.shape[-1] // scale)
    assert tuple(lr.shape) == expected, f"{pipeline} produced {tuple(lr.shape)}, expected {expected}"
    return lr.contiguous(), steps


def optics_kernel(steps: list[Step], size: int) -> np.ndarray:
    """The HR blur a plan applies before its first ``resize`` or ``subsample``, its ``blur`` steps composed into one
    ``size`` x ``size`` kernel (tails beyond the frame dropped; a delta when there are none), flipped into the
    correlation form R's blur head applies (``reconstructor.blur_downsample``).

    Why: it is the part of a synthetic degradation that R's blur head models exactly, so it can supervise that
    head directly (``pretrain --kernel-weight``); blurs after a resize act on another grid and are left to the
    modulated blocks."""
    kernel = np.ones((1, 1))
    for step in steps:
        if step.op in ("resize", "subsample"):
            break
        if step.op == "blur":
            kernel = convolve2d(kernel, kernels.build(**step.params["kernel"]))
    return kernels.centred(kernel[::-1, ::-1], size)
