"""Candidate no-HR readings beyond the signal's parts, which ``bench/signal_check.py --probes`` records at every
evaluation point so that each can be ranked against the true LPIPS change before any of them enters ``adapt``.

- ``pseudo_r`` / ``pseudo_area``: a pseudo-pair from the LR itself (as ZSSR trains on): the LR degraded once more
  by R with its own embedding (or area-downsampled), upscaled by S, and scored by LPIPS against the LR. It is the
  only reading with real pixels as the target; the question it answers is whether S, as adapted, restores this
  image's own content better across one more step of its degradation.
- ``gap``: how far the SR output's power above the LR's Nyquist frequency sits from the power law of its band
  below (log units, radially averaged luma spectrum): natural images continue the law, an over-smoothed output falls
  below it, painted-in noise rises above it. A naturalness prior that needs no reconstructor at all.

On a 30-run design sample (``bench/results/signal_check_probes_design_x86_64_CPU.json``) the gap's fall ranked runs
by their true LPIPS change at Spearman +0.70, the shipped signal at +0.15; on the pre-registered fresh sample
(``bench/results/signal_check_probes_preregistration.md``, ``..._confirm_x86_64_CPU.json``) it scored +0.05
against the signal's +0.30, so none of these enters ``adapt``.

Each is recorded raw (``raw_<name>``, the mean over a run's images); its change against step 0 is the part that is
ranked (``gap_abs``: the change of ``|gap|``, how much closer to the law the output moved).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lway_engine.media.images import Image
from lway_engine.metrics import lpips_arrays
from lway_engine.upscale import UpscaleOptions, upscale_image


def pseudo_pairs(model, reconstruction, metric, lr_np: np.ndarray, scale: int = 4) -> dict[str, float]:
    """LPIPS of S(LR degraded once more) against the LR, with R's degradation and with an area downsample."""
    height, width = (s - s % scale for s in lr_np.shape[:2])
    lr_np = np.ascontiguousarray(lr_np[:height, :width])
    x = torch.from_numpy(lr_np.transpose(2, 0, 1).copy())[None].float()
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


PROBES = ("pseudo_r", "pseudo_area", "gap", "gap_abs")


def probe(model, reconstruction, metric, lr_np: np.ndarray, sr: np.ndarray) -> dict[str, float]:
    """Every raw reading for one image (``sr``: the model's output for ``lr_np``, already computed)."""
    gap = spectral_gap(sr)
    return {**pseudo_pairs(model, reconstruction, metric, lr_np), "gap": gap, "gap_abs": abs(gap)}


def probe_changes(point: dict, base: dict) -> dict[str, float]:
    """The recorded readings' changes against step 0 (none where the point has no readings)."""
    return {name: point[f"raw_{name}"] - base[f"raw_{name}"] for name in PROBES if f"raw_{name}" in point}
