"""The ``broad`` pretraining pipeline: camera, optics, scan and resize degradations in one seeded space.

Why: the reconstructor R can only judge adaptation on degradations it can reproduce, and the BSRGAN / Real-ESRGAN
models cover blur, white noise and JPEG only (``bench/objective_check.py``: R could not reproduce Bayer
demosaicking nor faded colours). This space adds what real photos, scans and web images carry. ``STAGES`` below is
the one table of every stage's probability and parameter ranges: the planner reads its numbers from it and
:func:`stages_markdown` renders it for the model card, so the documented ranges are the trained ones.

Order (the physical one): optics on the HR scene (blur, lateral chromatic aberration, vignetting) -> a resize
chain to the LR grid -> one of three capture paths at LR (camera ISP, film scan, web re-encode) -> optional global
tone and colour edits. Blur extents are in HR pixels for x4 and scale with the factor, like the evaluation
families'. The evaluation families' *types* (disc defocus, motion, sensor noise, Bayer, film fading and grain) lie
inside this space; their images (Kodak24 and the other evaluation sets) and exact parameter draws never do. The
two unseen families (``halftone_scan``, ``gif_palette``) have no counterpart here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lway_engine.degradations import kernels
from lway_engine.degradations.camera import BAYER_PATTERNS
from lway_engine.degradations.steps import Step, seed_from


@dataclass(frozen=True)
class Range:
    """A continuous parameter drawn uniformly (or log-uniformly) from ``[low, high]``."""

    low: float
    high: float
    unit: str = ""
    log: bool = False

    def draw(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def __str__(self) -> str:
        text = f"{self.low:g} to {self.high:g}{' ' + self.unit if self.unit else ''}"
        return f"{text} (log-uniform)" if self.log else text


@dataclass(frozen=True)
class Choice:
    """A discrete parameter drawn with the given probabilities."""

    options: tuple[Any, ...]
    probabilities: tuple[float, ...]

    def draw(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.choice(len(self.options), p=self.probabilities))]

    def __str__(self) -> str:
        return ", ".join(f"{o} {p:.0%}" for o, p in zip(self.options, self.probabilities))


@dataclass(frozen=True)
class Stage:
    """A stage: applied with ``probability`` (given its path is taken), with these parameters."""

    group: str
    probability: float
    params: Mapping[str, Range | Choice] = field(default_factory=dict)
    note: str = ""

    def draw(self, rng: np.random.Generator, name: str) -> float | Any:
        return self.params[name].draw(rng)


RESIZE_MODES = Choice(("area", "bilinear", "bicubic", "lanczos", "nearest"), (0.25, 0.2, 0.25, 0.2, 0.1))
CHROMA = Choice(("4:2:0", "4:4:4"), (0.7, 0.3))

STAGES: dict[str, Stage] = {
    "blur": Stage("optics (HR)", 0.85, {"kind": Choice(("disc", "gaussian", "motion", "motion_curve"),
                                                       (0.3, 0.3, 0.2, 0.2))}, "one of the four kernels below"),
    "disc": Stage("optics (HR)", 1.0, {"radius": Range(0.5, 6.0, "HR px")}, "defocus"),
    "gaussian": Stage("optics (HR)", 1.0, {"sigma_x": Range(0.3, 3.5, "HR px"), "sigma_y": Range(0.3, 3.5, "HR px"),
                                           "theta": Range(0.0, math.pi, "rad")}, "anisotropic Gaussian"),
    "motion": Stage("optics (HR)", 1.0, {"length": Range(2.0, 17.0, "HR px"), "angle": Range(0.0, math.pi, "rad")},
                    "linear motion"),
    "motion_curve": Stage("optics (HR)", 1.0, {"length": Range(3.0, 15.0, "HR px"),
                                               "angle": Range(0.0, 2 * math.pi, "rad"),
                                               "bend": Range(-2.5, 2.5, "rad")}, "motion along a circular arc"),
    "chromatic_aberration": Stage("optics (HR)", 0.3, {"red": Range(-0.006, 0.006, "magnification"),
                                                       "blue": Range(-0.006, 0.006, "magnification"),
                                                       "centre": Range(-0.5, 1.5, "image size")}, "lateral"),
    "vignetting": Stage("optics (HR)", 0.25, {"strength": Range(0.1, 0.5), "radius": Range(0.5, 1.0, "diagonal"),
                                              "centre": Range(-0.5, 1.5, "image size")}, "in linear light"),
    "resize_chain": Stage("resize", 1.0, {"intermediates": Choice((0, 1, 2), (0.5, 0.35, 0.15)),
                                          "size": Range(0.6, 3.0, "x LR size", log=True), "mode": RESIZE_MODES},
                          "intermediate sizes, then the LR size; each resize draws its own mode"),
    "path": Stage("capture (LR)", 1.0, {"path": Choice(("camera", "scan", "web"), (0.55, 0.2, 0.25))},
                  "which of the capture paths below"),
    "camera_curve": Stage("camera", 1.0, {"curve": Choice(("srgb", "gamma"), (0.5, 0.5)),
                                          "gamma": Range(1.8, 2.6)}, "inverse tone curve to linear, and back"),
    "white_balance": Stage("camera", 0.5, {"red": Range(0.8, 1.25, "gain", log=True),
                                           "blue": Range(0.8, 1.25, "gain", log=True)}, "error, linear light"),
    "colour_matrix": Stage("camera", 0.4, {"off_diagonal": Range(-0.08, 0.08)},
                           "error; rows renormalised to keep grey grey"),
    "mosaic": Stage("camera", 0.6, {"pattern": Choice(BAYER_PATTERNS, (0.25, 0.25, 0.25, 0.25)),
                                    "demosaic": Choice(("bilinear", "malvar", "binning"), (0.4, 0.4, 0.2))},
                    "Bayer sampling and demosaicking"),
    "sensor_noise": Stage("camera", 0.8, {"peak": Range(30.0, 3000.0, "photons at white", log=True),
                                          "read": Range(0.0, 0.004, "linear units")},
                          "Poisson shot + Gaussian read noise on the raw samples (ISO-like levels)"),
    "contrast_curve": Stage("camera", 0.5, {"contrast": Range(0.0, 0.6)}, "S-curve after the tone curve"),
    "sharpen": Stage("camera / web", 0.4, {"sigma": Range(0.5, 2.0, "LR px"), "amount": Range(0.2, 1.5),
                                           "threshold": Range(0.0, 0.02)}, "unsharp mask, halos at edges"),
    "fade": Stage("scan", 0.7, {"contrast": Range(0.5, 1.0), "cast": Range(-0.12, 0.12, "per-channel gain"),
                                "lift": Range(0.0, 0.12)}, "aged print: faded contrast, colour cast, lifted blacks"),
    "grain": Stage("scan", 0.7, {"strength": Range(0.01, 0.08), "size": Range(0.5, 2.0, "LR px")}, "film grain"),
    "scan_blur": Stage("scan", 0.6, {"sigma": Range(0.3, 1.2, "LR px")}, "scanner optics, Gaussian; dust-free"),
    "jpeg": Stage("compression", 0.8, {"quality": Range(30.0, 95.0), "chroma": CHROMA}, "every path"),
    "double_jpeg": Stage("compression", 0.25, {"quality": Range(30.0, 95.0), "chroma": CHROMA},
                         "a second JPEG after the first (re-shared images)"),
    "tone": Stage("global tone and colour", 0.5, {"exposure": Range(0.7, 1.4, "gain", log=True),
                                                  "gamma": Range(0.8, 1.25, log=True), "contrast": Range(0.8, 1.2),
                                                  "saturation": Range(0.6, 1.4)}, "an editor's global adjustments"),
}


def _on(rng: np.random.Generator, stage: str) -> bool:
    return bool(rng.random() < STAGES[stage].probability)


def _draw(rng: np.random.Generator, stage: str, param: str) -> Any:
    return STAGES[stage].draw(rng, param)


def _extent(value: float, scale: int, high: float) -> float:
    """An HR extent specified for x4, at ``scale``, capped to what the largest kernel holds."""
    return float(min(value * scale / 4, high))


def _blur_step(rng: np.random.Generator, scale: int) -> Step:
    kind = _draw(rng, "blur", "kind")
    if kind == "disc":
        radius = max(0.5, _extent(_draw(rng, "disc", "radius"), scale, 10.0))
        return Step("blur", {"kernel": {"kind": "disc", "size": kernels.fitting_size(radius), "radius": radius}})
    if kind == "gaussian":
        sx, sy = (_extent(_draw(rng, "gaussian", s), scale, 3.5) for s in ("sigma_x", "sigma_y"))
        return Step("blur", {"kernel": {"kind": "gaussian", "size": kernels.fitting_size(3 * max(sx, sy)),
                                        "sigma_x": sx, "sigma_y": sy, "theta": _draw(rng, "gaussian", "theta")}})
    name = str(kind)
    length = _extent(_draw(rng, name, "length"), scale, 19.0 if name == "motion" else 15.0)
    spec = {"kind": name, "length": length, "angle": _draw(rng, name, "angle")}
    if name == "motion_curve":
        spec["bend"] = _draw(rng, name, "bend")
    return Step("blur", {"kernel": {**spec, "size": kernels.fitting_size(length / 2 + 1)}})


def optics_kernels(count: int, size: int = 21, seed: int = 0, scale: int = 4) -> np.ndarray:
    """(count, size, size) HR blur kernels as the optics stage draws them (disc, Gaussian, motion, curved motion;
    the stage taken as always on), each centred in a ``size`` frame: the shapes R's blur head spans
    (``reconstruction.reconstructor.blur_basis``)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((count, size, size), np.float64)
    for i in range(count):
        spec = dict(_blur_step(rng, scale).params["kernel"])
        out[i] = kernels.centred(kernels.build(spec.pop("kind"), **spec), size)
    return out


def _centre(rng: np.random.Generator, stage: str) -> list[float]:
    return [_draw(rng, stage, "centre"), _draw(rng, stage, "centre")]


def _optics(rng: np.random.Generator, scale: int) -> list[Step]:
    steps = [_blur_step(rng, scale)] if _on(rng, "blur") else []
    if _on(rng, "chromatic_aberration"):
        steps.append(Step("chromatic_aberration", {"red": _draw(rng, "chromatic_aberration", "red"),
                                                   "blue": _draw(rng, "chromatic_aberration", "blue"),
                                                   "centre": _centre(rng, "chromatic_aberration")}))
    if _on(rng, "vignetting"):
        steps.append(Step("vignetting", {"strength": _draw(rng, "vignetting", "strength"),
                                         "radius": _draw(rng, "vignetting", "radius"),
                                         "centre": _centre(rng, "vignetting")}))
    return steps


def _resize_chain(rng: np.random.Generator, final: tuple[int, int]) -> list[Step]:
    steps = []
    for _ in range(int(_draw(rng, "resize_chain", "intermediates"))):
        factor = _draw(rng, "resize_chain", "size")
        size = (max(1, round(final[0] * factor)), max(1, round(final[1] * factor)))
        steps.append(Step("resize", {"size": size, "mode": _draw(rng, "resize_chain", "mode")}))
    steps.append(Step("resize", {"size": final, "mode": _draw(rng, "resize_chain", "mode")}))
    return steps


def _colour_matrix(rng: np.random.Generator) -> list[list[float]]:
    off = np.array([[0.0 if i == j else _draw(rng, "colour_matrix", "off_diagonal") for j in range(3)]
                    for i in range(3)])
    matrix = np.eye(3) + off
    return (matrix / matrix.sum(axis=1, keepdims=True)).tolist()


def _camera(rng: np.random.Generator) -> list[Step]:
    curve = {"curve": _draw(rng, "camera_curve", "curve"), "gamma": _draw(rng, "camera_curve", "gamma")}
    steps = [Step("to_linear", curve)]
    gains = [_draw(rng, "white_balance", "red"), 1.0, _draw(rng, "white_balance", "blue")] \
        if _on(rng, "white_balance") else [1.0, 1.0, 1.0]
    matrix = _colour_matrix(rng) if _on(rng, "colour_matrix") else np.eye(3).tolist()
    if gains != [1.0, 1.0, 1.0] or matrix != np.eye(3).tolist():
        steps.append(Step("colour_errors", {"gains": gains, "matrix": matrix}))
    mosaic = _on(rng, "mosaic")
    pattern, demosaic = _draw(rng, "mosaic", "pattern"), _draw(rng, "mosaic", "demosaic")
    noisy = _on(rng, "sensor_noise")
    if mosaic or noisy:
        steps.append(Step("raw_capture", {
            "mosaic": mosaic, "pattern": pattern, "demosaic": demosaic,
            "peak": _draw(rng, "sensor_noise", "peak") if noisy else 0.0,
            "read": _draw(rng, "sensor_noise", "read") if noisy else 0.0, "seed": seed_from(rng)}))
    contrast = _draw(rng, "contrast_curve", "contrast") if _on(rng, "contrast_curve") else 0.0
    steps.append(Step("from_linear", {**curve, "contrast": contrast}))
    return steps + _sharpen(rng)


def _sharpen(rng: np.random.Generator) -> list[Step]:
    if not _on(rng, "sharpen"):
        return []
    return [Step("sharpen", {p: _draw(rng, "sharpen", p) for p in ("sigma", "amount", "threshold")})]


def _scan(rng: np.random.Generator) -> list[Step]:
    steps = []
    if _on(rng, "fade"):
        gains = [1 + _draw(rng, "fade", "cast") for _ in range(3)]
        steps.append(Step("fade", {"contrast": _draw(rng, "fade", "contrast"), "gains": gains,
                                   "lift": _draw(rng, "fade", "lift")}))
    if _on(rng, "grain"):
        steps.append(Step("film_grain", {"strength": _draw(rng, "grain", "strength"),
                                         "grain_size": _draw(rng, "grain", "size"), "seed": seed_from(rng)}))
    if _on(rng, "scan_blur"):
        sigma = _draw(rng, "scan_blur", "sigma")
        steps.append(Step("blur", {"kernel": {"kind": "gaussian", "size": kernels.fitting_size(3 * sigma),
                                              "sigma_x": sigma}}))
    return steps


def _jpeg(rng: np.random.Generator, stage: str) -> Step:
    return Step("jpeg", {"quality": int(round(_draw(rng, stage, "quality"))), "chroma": _draw(rng, stage, "chroma")})


def plan_broad(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    """The steps of one draw from the broad space for an HR image of ``height`` x ``width`` (see the module doc)."""
    steps = _optics(rng, scale)
    steps += _resize_chain(rng, (height // scale, width // scale))
    path = _draw(rng, "path", "path")
    steps += _camera(rng) if path == "camera" else _scan(rng) if path == "scan" else _sharpen(rng)
    if _on(rng, "jpeg"):
        steps.append(_jpeg(rng, "jpeg"))
        if _on(rng, "double_jpeg"):
            steps.append(_jpeg(rng, "double_jpeg"))
    if _on(rng, "tone"):
        steps.append(Step("tone_adjust", {p: _draw(rng, "tone", p)
                                          for p in ("exposure", "gamma", "contrast", "saturation")}))
    return steps


def plan_resize(rng: np.random.Generator, height: int, width: int, scale: int) -> list[Step]:
    """The broad space's resize chain alone (its ``resize_chain`` row), nothing before or after: a downscaled web
    image or thumbnail. Why a pipeline of its own: inside the broad space almost every draw adds optics, a capture
    path and JPEG, so E+R rarely saw a plain resize, and today's R reproduced Kodak24's bicubic LR 4.6 dB worse than
    a plain area downsample with its colour fitted (35.4 against 40.0 dB)."""
    return _resize_chain(rng, (height // scale, width // scale))


def stages_markdown() -> str:
    """``STAGES`` as a Markdown table (group, stage, probability, parameter ranges, note) for the model card."""
    lines = ["| group | stage | probability | parameters | note |", "|---|---|---|---|---|"]
    for name, stage in STAGES.items():
        params = "; ".join(f"{p}: {r}" for p, r in stage.params.items())
        lines.append(f"| {stage.group} | {name} | {stage.probability:.0%} | {params} | {stage.note} |")
    return "\n".join(lines)
