"""The explainability gate: can R be trusted to move S away from its own output on these images? Decided without HR.

The texture-keeping candidate (flat loss + anchor, ``select.py``) gave City100 -0.020 LPIPS but made motion,
bayer_jpeg, film and the demo photos worse, and the held-out signal could not tell those apart (it reads the
texture the candidate removes as detail lost, everywhere). What differs is R: adaptation helps where R explains
the LR much better from the true HR than from S's output, the *signal margin* (per image, Spearman -0.57 with the
candidate's LPIPS change over 32 images). Its unknown half, R's error from the HR, is predicted by
``reconstruction/error_model.py``; the ratio of R's actual error from S's output to that prediction is

    explainability = L1(R(S0(LR), E(LR)), LR) / predicted L1(R(HR, E(LR)), LR)

per 64-px LR tile (each with its own embedding: the error model's fitting size), the median over an image's tiles,
then over the images. About 1 where R cannot tell S's output from the truth, well above 1 where S's output is what R
cannot explain. With the HR (``bench/gate_truth.py``, 2026-12-01) its true value was 1.66 and 1.88 on two City100
samples (set medians) and 0.79-1.10 on every family, at 64- and 128-px LRs alike; the threshold 1.5 (``select.py``)
sits between them. The estimate read 1.75 and 1.95 on City100 and at most 1.38 on a family set (the unseen
gif_palette; every other family at most 1.13). With the E+R bundled since 2026-12-02's 23rd session the truth is
1.76 / 1.98 on City100 and 0.80-1.12 on every family, the estimate 1.89 / 1.96 there and at most 1.44 on an
evaluation family (its error model saw outlier defects: ``degradations/outliers.py``); on the unseen types it reads
1.38-1.49, except 1.59 on halftone_scan's design sample (truth 1.03), where the gate is wrong and only the held-out
signal stands between the user and a worse result (it kept a run that helped: README). Before 2026-12-01 the
gate used the flat LWay loss (L1 + LPIPS) over the whole LR, threshold 2: its LPIPS half grew with the LR's size
where the prediction did not, and on 128-px family LRs it opened on four families, and ``adapt`` kept seven runs
that made LPIPS worse. The gate says R is right to move S away from its texture; it does not vouch for detail S
adds, so a gated run's signal still counts that (``signal.combine(added_only=True)``): real noisy photos (RNI15)
open the gate too.

The gate decides on a lower confidence bound of its reading, not the reading itself (``Reading.lower``): a tile's
ratio scatters about its image's with a log spread of about TILE_SPREAD, so a reading over n tiles is trusted only
down to value x exp(-CONFIDENCE x TILE_SPREAD / sqrt(n)). Without it, one-tile CBSD68 crops of the two unseen types
read 1.67-2.24 (their Kodak24 sets 1.38-1.59) and ``adapt --per-image`` kept two of them that got worse (+0.008,
+0.034; ``bench/results/signal_check_resize2_preregistration.md``). The signal's cap (``signal.fidelity_room``)
keeps the point value.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch

from lway_engine.adaptation.loss import LWayLoss
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import LoadedModel
from lway_engine.reconstruction import MIN_LR_SIZE
from lway_engine.reconstruction.error_model import TILE, features, reconstruct

GATE_IMAGES = 8  # images scored (evenly spaced through the set): the median settles; S0 on each costs seconds
GATE_CROP = 192  # LR px: centre crops of at most this side (3 x 3 tiles), as large as City100's LR
# the log spread of tile ratios within an image: 0.14-0.16 on City100, 0.17-0.24 on 128-px family LRs (session 24,
# bench/gate_uncertainty.py's tiles); the smaller end, since a family LR's spread is partly its real variation
TILE_SPREAD = 0.16
CONFIDENCE = 1.0  # standard errors below the reading the gate decides at (chosen on gate_redecide's 222 runs)


def _centre(image: torch.Tensor, side: int, multiple: int) -> torch.Tensor:
    h, w = (min(s, side) // multiple * multiple for s in image.shape[-2:])
    top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
    return image[..., top : top + h, left : left + w]


def gate_sample(images: list) -> list:
    """The up to GATE_IMAGES of ``images`` (any items: tensors, paths) the gate scores, evenly spaced; callers
    that read files pick them first, so only these are read."""
    return images[:: max(1, len(images) // GATE_IMAGES)][:GATE_IMAGES]


def _starts(length: int) -> list[int]:
    """Where TILE-px tiles start along a side of ``length`` px: as few as cover it, spread evenly (overlapping)."""
    count = math.ceil(length / TILE)
    return sorted({round(i * (length - TILE) / max(1, count - 1)) for i in range(count)}) if length > TILE else [0]


@dataclass(frozen=True)
class TileError:
    """R's L1 on one LR tile: from S0's output (``actual``), the error model's prediction of it from the HR
    (``predicted``, from the tile's ``features`` row), and from the true HR where it was given (``true``)."""

    actual: float
    predicted: float
    features: torch.Tensor
    true: float | None = None


def tile_errors(model: LoadedModel, reconstruction: torch.nn.Module, lr: torch.Tensor, lpips: LPIPS,
                amp: str | None = None, hr: torch.Tensor | None = None) -> list[TileError]:
    """The explainability's terms on each 64-px tile of a (1, 3, H, W) LR (a side under 64 px is one tile); S0
    runs once on the whole LR, under bf16 autocast when ``amp`` is "bf16", so tiles have no border of their own.
    ``hr``: the true (1, 3, 4H, 4W) HR, for ``bench/gate_truth.py``."""
    scale = model.scale
    out = []
    with torch.no_grad():
        with torch.autocast(lr.device.type, torch.bfloat16, enabled=amp == "bf16"):
            sr = model.module(lr).float().clamp(0, 1)
        for top in _starts(lr.shape[-2]):
            for left in _starts(lr.shape[-1]):
                h, w = min(TILE, lr.shape[-2]), min(TILE, lr.shape[-1])
                x = lr[..., top : top + h, left : left + w]
                window = (..., slice(top * scale, (top + h) * scale), slice(left * scale, (left + w) * scale))
                embedding, (lr_hat, *from_hr) = reconstruct(reconstruction, x, sr[window],
                                                             *([] if hr is None else [hr[window]]))
                row = features(embedding, x, lr_hat, lpips(lr_hat, x))
                true = float((from_hr[0] - x).abs().mean()) if from_hr else None
                out.append(TileError(float((lr_hat - x).abs().mean()),
                                     float(reconstruction.error_model.predict(row)[0]), row[0], true))
    return out


@dataclass(frozen=True)
class Reading:
    """The gate's value over some images (the median of their tiles' ratios, via each image's median) and how many
    64-px tiles are behind it."""

    value: float
    tiles: int

    def lower(self, confidence: float = CONFIDENCE) -> float:
        """The value the gate decides on: ``confidence`` standard errors of a median over ``tiles`` below it."""
        return self.value * math.exp(-confidence * TILE_SPREAD / math.sqrt(self.tiles))

    @staticmethod
    def pooled(readings: list[Reading]) -> Reading:
        """One reading over several images' readings, as ``explainability`` makes it: the median of their values,
        over all their tiles."""
        return Reading(statistics.median(r.value for r in readings), sum(r.tiles for r in readings))


def explainability(model: LoadedModel, reconstruction: torch.nn.Module, images: list[torch.Tensor],
                   loss: LWayLoss, amp: str | None = None) -> Reading | None:
    """The gate's reading over up to GATE_IMAGES of ``images`` ((3, H, W) LR on the model's device): the median of
    their explainabilities, with the tiles behind it (``Reading.lower`` is what the threshold is held to); or
    None when ``reconstruction`` has no error model (or one fitted under R's other colour mode, which would misjudge
    R's error) or no image reaches E's minimum side; ``loss`` lends its LPIPS network; S0 runs under bf16 autocast
    when ``amp`` is "bf16"."""
    error_model = getattr(reconstruction, "error_model", None)
    images = [image for image in images if min(image.shape[-2:]) >= MIN_LR_SIZE]
    if error_model is None or not error_model.fits(reconstruction.reconstructor.colour_fit) or not images:
        return None
    readings = []
    for image in gate_sample(images):
        crop = _centre(image, GATE_CROP, model.size.multiple_of)[None]
        tiles = tile_errors(model, reconstruction, crop, loss.lpips, amp)
        readings.append(Reading(statistics.median(t.actual / t.predicted for t in tiles), len(tiles)))
    return Reading.pooled(readings)
