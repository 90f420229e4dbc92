"""Candidate no-HR readings beyond the signal's parts, which ``bench/signal_check.py --probes`` records at every
evaluation point so that each can be ranked against the true LPIPS change before any of them enters ``adapt``.

- ``pseudo_r`` / ``pseudo_area``: a pseudo-pair from the LR itself (as ZSSR trains on): the LR degraded once more
  by R with its own embedding (or area-downsampled), upscaled by S, and scored by LPIPS against the LR. It is the
  only reading with real pixels as the target; the question it answers is whether S, as adapted, restores this
  image's own content better across one more step of its degradation.
- ``gap``: how far the SR output's power above the LR's Nyquist frequency sits from the power law of its band
  below (log units, radially averaged luma spectrum): natural images continue the law, an over-smoothed output falls
  below it, painted-in noise rises above it. A naturalness prior that needs no reconstructor at all.
- ``copy_q`` / ``texture_q``: the signal's copying and texture parts with the flat and textured areas taken
  relative to the image (its HF map's quartiles) instead of at fixed levels (:func:`quantile_detail`);
  ``copy_whole`` / ``texture_whole``: the same parts at the fixed levels over the whole image, not the held-out
  tiles alone;
- ``copy_lr`` / ``copy_lr_frac``: how much of the LR's own fine residual in flat areas S's output reproduces at LR
  scale (:func:`lr_copying`): copied noise, told apart from texture restored above the LR's Nyquist frequency.

On a 30-run design sample (``bench/results/signal_check_probes_design_x86_64_CPU.json``) the gap's fall ranked runs
by their true LPIPS change at Spearman +0.70, the shipped signal at +0.15; on the pre-registered fresh sample
(``bench/results/signal_check_probes_preregistration.md``, ``..._confirm_x86_64_CPU.json``) it scored +0.05
against the signal's +0.30. With today's default candidate it scored +0.57, +0.60 and, pre-registered, +0.62 on
three samples (``copy_lr_frac`` +0.63 on the last), but inside City100 runs both move the wrong way as LPIPS improves
(``bench/results/signal_check_cross0.3_preregistration.md``): they tell which runs adaptation harms, not when to
stop, so none of these enters ``adapt`` as the signal.

- ``niqe`` / ``niqe_strip`` (the ``niqe`` group; the others are the ``detail`` group): the NIQE-style distance of
  the SR output from the statistics of sharp training photos (``bench/naturalness.py``), over the whole image and
  over the held-out strip alone. Pre-registered in ``bench/results/signal_check_niqe_preregistration.md``, where
  they scored +0.41 and +0.39 (the signal +0.25): the distance rises on City100 as its LPIPS improves.

Each is recorded raw (``raw_<name>``, the mean over a run's images); its change against step 0 is the part that is
ranked (``gap_abs``: the change of ``|gap|``, how much closer to the law the output moved).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from naturalness import load_pristine, naturalness_distance

from lway_engine.adaptation.hf_weight import hf_weight_map
from lway_engine.adaptation.signal import FLAT, area_detail
from lway_engine.inference.upscale import UpscaleOptions, upscale_image
from lway_engine.media.images import Image, to_tensor
from lway_engine.metrics import lpips_arrays


def pseudo_pairs(model, reconstruction, metric, lr_np: np.ndarray, scale: int = 4) -> dict[str, float]:
    """LPIPS of S(LR degraded once more) against the LR, with R's degradation and with an area downsample."""
    height, width = (s - s % scale for s in lr_np.shape[:2])
    lr_np = np.ascontiguousarray(lr_np[:height, :width])
    x = to_tensor(lr_np).float()
    with torch.no_grad():
        smaller = {"pseudo_r": reconstruction.reconstructor(x, reconstruction.encoder(x)).clamp(0, 1),
                   "pseudo_area": F.avg_pool2d(x, scale)}
    readings = {}
    for name, small in smaller.items():
        pixels = small[0].numpy().transpose(1, 2, 0).copy()
        sr = upscale_image(model, Image(pixels, None, 8), UpscaleOptions(tile=512)).pixels
        readings[name] = lpips_arrays(metric, sr, lr_np)
    return readings


def spectral_gap(sr: np.ndarray, scale: int = 4) -> float:
    """Mean log power of ``sr``'s luma above the LR Nyquist frequency minus the power law fitted below it."""
    luma = sr[..., :3] @ np.array([0.299, 0.587, 0.114])
    luma = luma - luma.mean()
    window = np.outer(np.hanning(luma.shape[0]), np.hanning(luma.shape[1]))
    power = np.abs(np.fft.fft2(luma * window)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(luma.shape[0]), np.fft.fftfreq(luma.shape[1]), indexing="ij")
    radius = np.hypot(fy, fx)
    nyquist = 0.5 / scale  # the LR's, in cycles per SR pixel
    low = (radius >= 0.25 * nyquist) & (radius <= 0.8 * nyquist)
    high = (radius >= 1.2 * nyquist) & (radius <= 0.45)
    slope, offset = np.polyfit(np.log(radius[low]), np.log(power[low] + 1e-12), 1)
    return float(np.mean(np.log(power[high] + 1e-12) - (offset + slope * np.log(radius[high]))))


PROBE_GROUPS = {"detail": ("pseudo_r", "pseudo_area", "gap", "gap_abs", "copy_q", "texture_q", "copy_whole",
                            "texture_whole", "copy_lr", "copy_lr_frac"),
                "niqe": ("niqe", "niqe_strip")}
PROBES = tuple(name for names in PROBE_GROUPS.values() for name in names)


def probe(model, reconstruction, metric, lr_np: np.ndarray, sr: np.ndarray, groups: tuple[str, ...] = ("detail",),
          strip: np.ndarray | None = None) -> dict[str, float]:
    """The raw readings of ``groups`` for one image (``sr``: the model's output for ``lr_np``, already computed;
    ``strip``: its held-out strip at SR size, None without one)."""
    readings: dict[str, float] = {}
    if "detail" in groups:
        gap = spectral_gap(sr)
        readings |= {**pseudo_pairs(model, reconstruction, metric, lr_np), "gap": gap, "gap_abs": abs(gap),
                     **quantile_detail(sr, lr_np), **lr_copying(sr, lr_np)}
    if "niqe" in groups:
        pristine = _pristine()
        readings["niqe"] = naturalness_distance(sr, pristine)
        readings["niqe_strip"] = math.nan if strip is None else naturalness_distance(strip, pristine)
    return readings


@cache
def _pristine() -> dict[str, np.ndarray]:
    return load_pristine()


def quantile_detail(sr: np.ndarray, lr_np: np.ndarray, scale: int = 4) -> dict[str, float]:
    """Log detail energy above the LR's Nyquist frequency in the image's own flattest and most textured quarter
    (quartiles of its HF map), where the signal's parts use fixed HF-map levels; and at those fixed levels over the
    whole image (``copy_whole`` / ``texture_whole``), where the signal sees only its held-out tiles (one 16 x 48
    tile on a 64-px LR): the detail parts are not what the loss fits, so the trained area can count too.
    Why the quartiles: a defocused LR has a low HF map everywhere, so the fixed levels call its real texture flat
    and count restored sharpness as copied noise (defocus_noise kodim02: copying +2.2 while LPIPS fell 0.064)."""
    x, y = to_tensor(lr_np).float(), to_tensor(sr).float()
    levels = torch.quantile(hf_weight_map(x).flatten(), torch.tensor([0.25, 0.75])).tolist()
    flat, textured = area_detail(y, x, scale, flat=levels[0], textured=levels[1])
    whole_flat, whole_textured = area_detail(y, x, scale)
    return {"copy_q": math.log(flat + 1e-12), "texture_q": math.log(textured + 1e-12),
            "copy_whole": math.log(whole_flat + 1e-12), "texture_whole": math.log(whole_textured + 1e-12)}


def lr_copying(sr: np.ndarray, lr_np: np.ndarray, scale: int = 4) -> dict[str, float]:
    """How much of the LR's own fine residual (LR minus its 3x3 box blur) S's output reproduces at LR scale, in the
    areas the HF map calls flat: ``copy_lr`` its mean product with S's residual there, ``copy_lr_frac`` that over
    the LR residual's own energy (1: copied whole). Why: the signal's copying part counts any detail added in flat
    areas, also the fine texture the cross-scale term restores above the LR's Nyquist frequency (City100 043: +0.42
    while LPIPS fell); copied noise is the LR's own residual reappearing, and a clean LR has little of it."""
    x, y = to_tensor(lr_np).float(), to_tensor(sr).float()
    smooth = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    residual, reproduced = x - smooth, F.avg_pool2d(y, scale) - smooth
    flat = (hf_weight_map(x) < FLAT).float()
    product = float((residual * reproduced * flat).sum() / (3 * flat.sum() + 1e-12))
    energy = float((residual.square() * flat).sum() / (3 * flat.sum() + 1e-12))
    return {"copy_lr": product, "copy_lr_frac": product / (energy + 1e-12)}


def probe_changes(point: dict, base: dict) -> dict[str, float]:
    """The recorded readings' changes against step 0 (none where the point has no readings)."""
    return {name: point[f"raw_{name}"] - base[f"raw_{name}"] for name in PROBES if f"raw_{name}" in point}
