"""A no-HR quality signal for adaptation, from the user's LR images only.

The training loss falls in every run, also in runs that make the images worse (``bench/quality.py``): the SR model
learns to paint into its output what the reconstructor cannot explain (noise, demosaicking fringes, grain) or
trades its texture for fidelity. So the signal watches the model on LR regions that adaptation never trains on
(:func:`hold_out`: a strip along one side of each image), each part relative to the unadapted model S0:

- ``fidelity``: the HF-weighted L1 of ``R(S(x), e)`` against ``x`` on the held-out tiles, as a ratio to S0's minus
  1 (negative: the LR is explained better where the model was not fitted, so not by memorising the crops);
- ``copying``: the change (log ratio) of S's detail energy above the LR's Nyquist frequency in areas the HF map
  calls flat: noise or grain painted in raises it, hallucinated texture removed lowers it;
- ``texture``: the same in textured areas: GAN texture smoothed away lowers it, fringes copied raise it;
- ``coarse`` (recorded, not in the signal): the plain L1 of ``R(S(x), e)`` against ``x`` after a 2x2 average, a
  scale the loss does not weight, as a ratio to S0's minus 1;
- ``departure`` (recorded, not in the signal): the mean LPIPS between S's and S0's held-out outputs at SR size, how
  far the change went perceptually. It ranked runs by their true LPIPS change at Spearman +0.47 (a 14-run pilot)
  and +0.31 (30 fresh runs) alone; counted where textured detail fell, in place of the detail terms, it ranked the
  fresh runs at +0.36 against this signal's +0.64 and let a film image through at +0.107 LPIPS, so it stays a
  reading in the report, not a term (``bench/signal_check.py``).
- ``movement`` (recorded, not in the signal): the same LPIPS between S's and S0's outputs, on tiles of the area
  training crops come from. Adaptation changes that area most: over 66 forced family runs of
  ``bench/signal_check.py`` the true LPIPS change on the held-out strip was +0.007 to +0.024 on average against
  +0.034 to +0.058 on the rest, and the rest's change ranks the whole image's at +0.90 to +0.98. Counted as harm
  below the gate it ranked a fresh pre-registered sample at +0.39 (the signal: +0.40; the movement alone +0.11):
  among the families' small changes of both signs, how far the fitted area moved does not say which way it went
  (``bench/results/signal_check_movement_preregistration.md``), so it stays a reading in the report.
- ``texture_all`` (recorded, not in the signal): the ``texture`` part over the held-out tiles and the training-area
  tiles together, most of a small image. On three recorded samples (90 forced runs, the whole image's texture) the
  more textured detail a family run lost, the worse its LPIPS (mean per-family Spearman -0.50 to -0.63), so texture
  lost where R is distrusted (explainability below the gate's threshold) was pre-registered as harm in the signal.
  On the fresh sample it failed (``bench/results/signal_check_texture_loss_preregistration.md``): alone it ranked
  the 30 runs the wrong way round (-0.21), and with it the signal scored +0.27 against +0.45 without, so it stays a
  reading in the report.

The signal is ``fidelity + COPY_WEIGHT * |copying| + TEXTURE_WEIGHT * |texture|``: 0 at S0, lower is better. Why
the absolute values, measured (``bench/signal_check.py``, 42 runs with the first checkpoint): a better-explained LR
went with a *worse* LPIPS against the HR more often than not (the perception-distortion trade-off), and a large
change of the detail energy in either direction was the best single warning: smoothing lost the texture, a rise was
copied noise or fringes far more often than real sharpening. So fidelity gains count only net of how far the added
detail moved. A NaN anywhere makes the point NaN, which selection treats as failed, never as best.

Where the images' explainability is known (``gate.py``), a fidelity gain is credited only up to the room it leaves
(:func:`fidelity_room`), and the part beyond counts against the run: R's mismatch with the unadapted output is
partly R's own error, and a model that removes more than the rest is fitting R, copying degradation in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lway_engine.adaptation.hf_weight import hf_weight_map, weighted_l1
from lway_engine.reconstruction import Reconstructor, Styles

FLAT, TEXTURED = 0.25, 0.5  # HF-map levels below which an LR pixel counts as flat, above which as textured
COPY_WEIGHT, TEXTURE_WEIGHT = 4.0, 4.0  # chosen on bench/signal_check.py's 42 runs (see the module docstring)
_EPS = 1e-12


@dataclass(frozen=True)
class Holdout:
    """Per image, the LR rows (or columns) training crops may use, and the held-out tiles the signal scores.

    ``limits[i]`` = (rows, cols) of image i available for training crops (its top-left part); ``tiles`` = (image,
    top, left, height, width) boxes inside the held-out strips, disjoint from every training crop.
    """

    limits: list[tuple[int, int]]
    tiles: list[tuple[int, int, int, int, int]]
    seen: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # tiles inside the training areas


def hold_out(shapes: list[tuple[int, int]], crop: int, multiple_of: int, fraction: float = 0.25,
             max_tiles: int = 8) -> Holdout | None:
    """Hold out a strip of ``fraction`` of each image along its longer side (the bottom or the right), leaving at
    least one ``crop``-sized training crop; None where no image can spare one (too small: no signal).

    Up to ``max_tiles`` tiles in all, each at most ``crop`` square and a multiple of ``multiple_of``, spread over
    the images' strips: a fixed, cheap sample scored at every evaluation. ``seen`` holds one tile of the same
    bound at the centre of each image's training area (up to ``max_tiles``), where the ``movement`` reading looks.
    """
    limits, strips = [], []
    for index, (height, width) in enumerate(shapes):
        along_rows = height >= width
        side = height if along_rows else width
        strip = _round_up(max(int(round(side * fraction)), multiple_of), multiple_of)
        if side - strip < crop or strip < multiple_of:
            limits.append((height, width))
            continue
        limits.append((height - strip, width) if along_rows else (height, width - strip))
        strips.append((index, height - strip, 0, strip, width) if along_rows else (index, 0, width - strip,
                                                                                     height, strip))
    if not strips:
        return None
    seen = []
    for index, (height, width) in enumerate(limits[:max_tiles]):
        th, tw = _fit(height, crop, multiple_of), _fit(width, crop, multiple_of)
        seen.append((index, (height - th) // 2, (width - tw) // 2, th, tw))
    tiles = []
    per_strip = max(1, max_tiles // len(strips))
    for index, top, left, height, width in strips:
        th, tw = _fit(height, crop, multiple_of), _fit(width, crop, multiple_of)
        rows, cols = max(1, height // th), max(1, width // tw)
        boxes = [(index, top + r * th, left + c * tw, th, tw) for r in range(rows) for c in range(cols)]
        step = max(1, len(boxes) // per_strip)
        tiles += boxes[::step][:per_strip]
    return Holdout(limits, tiles[:max_tiles] if len(tiles) > max_tiles else tiles, seen)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _fit(length: int, crop: int, multiple: int) -> int:
    side = min(length, crop)
    return max(multiple, side - side % multiple)


@dataclass(frozen=True)
class SignalPoint:
    """The signal at one step and its parts (see the module docstring)."""

    step: int
    value: float
    fidelity: float
    copying: float
    texture: float
    coarse: float = 0.0
    departure: float = 0.0
    movement: float = 0.0
    texture_all: float = 0.0


@dataclass
class QualityMonitor:
    """Scores an SR model on the held-out tiles against the unadapted model's outputs there."""

    images: list[torch.Tensor]
    holdout: Holdout
    reconstructor: Reconstructor
    styles: Styles
    scale: int
    copy_weight: float = COPY_WEIGHT
    texture_weight: float = TEXTURE_WEIGHT
    added_only: bool = False  # count only detail *added* (noise, fringes painted in), not detail removed
    explainability: float | None = None  # the images' gate value (gate.py): caps the fidelity gain credited
    perceptual: nn.Module | None = None  # LPIPS, for the departure of S's held-out outputs from S0's
    # the unadapted model's held-out totals (LR loss, coarse-scale L1) and SR outputs, recorded by start()
    _reference_loss: float = field(default=0.0, repr=False)
    _reference_coarse: float = field(default=0.0, repr=False)
    _reference_sr: list[torch.Tensor] = field(default_factory=list, repr=False)
    _reference_detail: tuple[float, float] = field(default=(0.0, 0.0), repr=False)  # (flat, textured) areas
    _reference_seen: list[torch.Tensor] = field(default_factory=list, repr=False)  # S0 on the training-area tiles
    _reference_textured: float = field(default=0.0, repr=False)  # S0's textured detail, held-out + training tiles

    def _tiles(self, boxes: list[tuple[int, int, int, int, int]] | None = None) -> list[tuple[int, torch.Tensor]]:
        return [(i, self.images[i][:, top : top + h, left : left + w])
                for i, top, left, h, w in (self.holdout.tiles if boxes is None else boxes)]

    def _measure(self, module: nn.Module) -> tuple[list[float], list[float], list[torch.Tensor]]:
        losses, coarse, outputs = [], [], []
        with torch.no_grad():
            for index, tile in self._tiles():
                sr = module(tile[None]).float().clamp(0, 1)
                lr_hat = self.reconstructor(sr, styles=self.styles.select(torch.tensor([index], device=sr.device)),
                                            reference=tile[None])
                losses.append(float(weighted_l1(lr_hat, tile[None], hf_weight_map(tile[None]))))
                coarse.append(float((F.avg_pool2d(lr_hat, 2) - F.avg_pool2d(tile[None], 2)).abs().mean()))
                outputs.append(sr)
        return losses, coarse, outputs

    def start(self, module: nn.Module) -> SignalPoint:
        """Record the unadapted model's held-out loss and outputs; the point of step 0 (all zeros)."""
        losses, coarse, self._reference_sr = self._measure(module)
        self._reference_loss, self._reference_coarse = sum(losses), sum(coarse)
        self._reference_detail = self._detail(self._reference_sr)
        self._reference_seen = self._seen_outputs(module)
        seen_textured = self._detail(self._reference_seen, self.holdout.seen)[1]
        self._reference_textured = self._reference_detail[1] + seen_textured
        return SignalPoint(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def evaluate(self, module: nn.Module, step: int) -> SignalPoint:
        losses, coarse, outputs = self._measure(module)
        fidelity = sum(losses) / max(self._reference_loss, _EPS) - 1
        coarse_change = sum(coarse) / max(self._reference_coarse, _EPS) - 1
        (flat_now, tex_now), (flat_then, tex_then) = self._detail(outputs), self._reference_detail
        copying, texture = _log_change(flat_now, flat_then), _log_change(tex_now, tex_then)
        seen = self._seen_outputs(module)
        texture_all = _log_change(tex_now + self._detail(seen, self.holdout.seen)[1], self._reference_textured)
        value = combine(fidelity, copying, texture, self.copy_weight, self.texture_weight, self.added_only,
                        self.explainability)
        return SignalPoint(step, value, fidelity, copying, texture, coarse_change,
                           self._departure(outputs, self._reference_sr), self._departure(seen, self._reference_seen),
                           texture_all)

    def _detail(self, outputs: list[torch.Tensor],
                boxes: list[tuple[int, int, int, int, int]] | None = None) -> tuple[float, float]:
        """The outputs' detail energy on the held-out tiles (or ``boxes``) summed over flat and over textured areas
        (:func:`area_detail`)."""
        flat = textured = 0.0
        for (_, tile), sr in zip(self._tiles(boxes), outputs, strict=True):
            tile_flat, tile_textured = area_detail(sr, tile[None], self.scale)
            flat, textured = flat + tile_flat, textured + tile_textured
        return flat, textured

    def _seen_outputs(self, module: nn.Module) -> list[torch.Tensor]:
        """S's outputs on the training-area tiles."""
        with torch.no_grad():
            return [module(tile[None]).float().clamp(0, 1) for _, tile in self._tiles(self.holdout.seen)]

    def _departure(self, outputs: list[torch.Tensor], references: list[torch.Tensor]) -> float:
        """Mean LPIPS between S's and S0's outputs on the same tiles (0 without a perceptual metric or tiles)."""
        if self.perceptual is None or not outputs:
            return 0.0
        with torch.no_grad():
            return sum(float(self.perceptual(now, then).mean())
                       for now, then in zip(outputs, references, strict=True)) / len(outputs)


def _log_change(now: float, then: float) -> float:
    """log(now / then) of a detail energy (0 where S0 had none: nothing to compare with)."""
    return math.log((now + _EPS) / (then + _EPS)) if then > 0 else 0.0


def combine(fidelity: float, copying: float, texture: float, copy_weight: float = COPY_WEIGHT,
            texture_weight: float = TEXTURE_WEIGHT, added_only: bool = False,
            explainability: float | None = None) -> float:
    """The signal from its parts (module docstring); NaN if any part is not finite. ``added_only`` counts the
    detail moves only where detail rose: for a candidate that the explainability gate (gate.py) has cleared to
    remove S0's texture, removing it is the point, painting noise in is still a warning. With ``explainability``
    the fidelity part is capped by :func:`fidelity_room`."""
    if not all(math.isfinite(v) for v in (fidelity, copying, texture)):
        return math.nan
    if added_only:
        copying, texture = max(copying, 0.0), max(texture, 0.0)
    if explainability is not None:
        room = fidelity_room(explainability)
        if fidelity < -room:  # the part of the gain beyond the room is R's own error being fitted: it counts against
            fidelity = -2 * room - fidelity
    return fidelity + copy_weight * abs(copying) + texture_weight * abs(texture)


def fidelity_room(explainability: float) -> float:
    """How far the LR loss can fall by making S's output more like the truth: R's error from the unadapted output
    is ``explainability`` times its expected error from the true HR (gate.py), so at most a fraction 1 - 1/x of it
    is S's to remove; the rest is R's own error, and fitting it copies degradation into the output. 0 for x <= 1
    (R cannot tell S0's output from the truth: every fidelity gain is fitting R), 1/3 at the gate's threshold 1.5."""
    if not math.isfinite(explainability) or explainability <= 1:
        return 0.0
    return 1 - 1 / explainability


def area_detail(sr: torch.Tensor, lr: torch.Tensor, scale: int, flat: float = FLAT,
                textured: float = TEXTURED) -> tuple[float, float]:
    """``sr``'s detail energy (:func:`_detail_energy`) summed over the areas ``lr``'s HF map calls flat (below
    ``flat``) and textured (above ``textured``): where copied noise shows, and where the model's texture lives."""
    w = F.interpolate(hf_weight_map(lr), scale_factor=scale, mode="nearest")
    energy = _detail_energy(sr, scale)
    return float((energy * (w < flat).float()).sum()), float((energy * (w > textured).float()).sum())


def _detail_energy(sr: torch.Tensor, scale: int) -> torch.Tensor:
    """Per-pixel energy (summed over channels) of what lies above the LR's Nyquist frequency: the SR image minus
    its area-downsampled-then-upsampled self, i.e. the detail the SR model adds beyond what the LR holds."""
    coarse = F.interpolate(F.avg_pool2d(sr, scale), scale_factor=scale, mode="nearest")
    return (sr - coarse).square().sum(dim=1, keepdim=True)
