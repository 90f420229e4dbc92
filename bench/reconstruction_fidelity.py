"""How well does a reconstructor R reproduce held-out LR images, and does its loss point towards the HR?

    .venv/bin/python bench/reconstruction_fidelity.py                          # the bundled checkpoint
    .venv/bin/python bench/reconstruction_fidelity.py --checkpoint old=OLD.safetensors --checkpoint new=NEW.safetensors

Per set (City100 pairs 031-060, and with ``--only city100_iphone`` the smartphone City100's 051-100,
``bench/fetched_data.py``; every evaluation family and the two unseen families on Kodak24 crops, the LR images of
``bench/quality.py``; and ``clean``, the same crops bicubic-downsampled and nothing else: a downscaled web image),
for each checkpoint:

- PSNR (RGB, 8-bit, 2-px border crop) and LPIPS-alex of ``R(HR, E(LR))`` against the LR: can R, told the LR's
  embedding, produce that LR from the true HR? The ``area`` column is the plain area downsample of the HR, R's
  starting point (an untrained R is exactly that). The ``noise-free`` column (synthetic sets only) is the family's
  own plan with its random draws left out (noise, grain), applied to the HR: what a deterministic R that knew
  the exact parameters would produce, so its PSNR is about the ceiling any R can reach on that set (``inf``
  where the family has no random draw: JPEG, mosaics, halftones and palettes are deterministic).
- the *signal margin*: LWay loss of ``R(S(LR), E(LR))`` minus that of ``R(HR, E(LR))``, with S = Real-ESRGAN x4plus
  and the loss as ``adapt`` computes it (HF-weighted L1 + LPIPS). Positive: the loss is lower at the HR than at
  S's output, so adapting S moves it towards the HR; negative: the loss prefers an output that keeps the
  degradation (what ``bench/objective_check.py`` found for the old checkpoint on bayer_jpeg and film). The JSON
  also holds ``margin_flat``, the same with W = 1 (``adapt --no-hf-weight``), the loss without the HF map, and
  ``margin_l1`` / ``margin_lpips``, the margin's two terms: which of them points away from the HR. On the synthetic
  sets, ``margin_noise_free`` is the margin against the family's noise-free LR (the ``noise-free`` column) in
  place of the LR: what a perfect noise-aware target (issue 15: compare against a denoised LR) would give. Where it
  is positive and ``margin`` is not, the loss points away from the HR only because S's output carries the noise
  realisation (grain, sensor noise) that no deterministic R can reproduce from the HR; where both are negative,
  R misses a deterministic part of the degradation (quantisation: palettes, JPEG, demosaicking).

Prints a table and writes bench/results/reconstruction_fidelity_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from quality import FAMILY_SEED, city100, city100_iphone, family_set
from results_dir import results_dir

from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES, apply_plan, noise_free, plan
from lway_engine.hardware import cpu_features
from lway_engine.inference.upscale import UpscaleOptions, upscale_image
from lway_engine.media.images import Image, to_tensor
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.metrics.perceptual import lpips_batch
from lway_engine.models import load_model
from lway_engine.reconstruction import Styles, load_checkpoint

BORDER = 2  # LR pixels left out of PSNR: R's and the degradations' padding differ at the edges


def psnr(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """PSNR of 8-bit-quantised images, border cropped (the SR toolkits' convention, on RGB)."""
    a, b = (torch.round(x.clamp(0, 1) * 255)[..., BORDER:-BORDER, BORDER:-BORDER].double() for x in (a, b))
    mse = float((a - b).square().mean())
    return float(10 * np.log10(255.0**2 / mse)) if mse else None  # identical: no finite PSNR (JSON has no inf)


def lpips(metric: LPIPS, a: torch.Tensor, b: torch.Tensor) -> float:
    return float(lpips_batch(metric, a.clamp(0, 1), b))


def finite_mean(values: list[float | None]) -> float | None:
    """Mean of the finite values (an exact reproduction has none); None when every value was exact."""
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def _db(value: float | None) -> str:
    return f"{value:6.2f} dB" if value is not None else " exact   "


def noise_free_lr(family: str, index: int, hr: torch.Tensor) -> torch.Tensor:
    """The ``index``-th LR of a family set (``quality.family_set``) without its noise: see the module docstring."""
    return apply_plan(hr[0], noise_free(plan(tuple(hr.shape[-2:]), family, FAMILY_SEED + index)))[None]


def degrade_both(recon: torch.nn.Module, styles: Styles, hr: torch.Tensor, sr: torch.Tensor, target: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``R(HR, e)`` and ``R(S(LR), e)``, the two sides of a margin, with R's colour map fitted to the ``target``
    they are compared with (the LR, or the noise-free LR), as adapt fits it."""
    return (recon.reconstructor(hr, styles=styles, reference=target),
            recon.reconstructor(sr, styles=styles, reference=target))


def sets(per_family: int, only: str | None = None, city100_pairs: int = 30, clean: bool = False
         ) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """The sets R is scored on: City100 pairs from 031 and ``per_family`` Kodak24 crops of every family; ``clean``
    adds Kodak24 bicubic-downsampled (an LR without noise or blur), and ``only`` (comma-separated names) loads just
    those sets, in this order."""
    names = ["city100", *EVALUATION_FAMILIES, *UNSEEN_FAMILIES, *(["clean"] if clean else [])]
    if only:  # city100_iphone (fetched, outside ../shared/data) only when named: its pairs 051-100
        names = [name for name in [*names, "city100_iphone"] if name in only.split(",")]
    return {name: city100(city100_pairs) if name == "city100" else city100_iphone(50) if name == "city100_iphone"
            else family_set("Kodak24", "bicubic" if name == "clean" else name, per_family, 256) for name in names}


def _reconstruction(spec: str) -> torch.nn.Module:
    """``PATH`` or ``PATH@predicted`` -> the checkpoint, its R in the colour mode named."""
    path, _, mode = spec.partition("@")
    if mode not in ("", "fitted", "predicted"):
        raise SystemExit(f"unknown colour mode {mode!r} in {spec!r}: fitted (the default) or predicted")
    recon = load_checkpoint(path, expect_scale=4)
    recon.reconstructor.colour_fit = mode != "predicted"
    return recon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", metavar="NAME=PATH[@predicted]",
                        help="a reconstructor to score (repeatable); @predicted: its colour map from E's colour head "
                             "rather than fitted to the LR, as adapt runs it (reconstruction/colour_fit.py); "
                             f"default: bundled={DEFAULT_RECONSTRUCTOR}")
    parser.add_argument("--per-family", type=int, default=24, help="Kodak24 crops per family (default: all 24)")
    parser.add_argument("--only", help="comma-separated subset of sets")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    checkpoints = dict(c.split("=", 1) for c in args.checkpoint or [f"bundled={DEFAULT_RECONSTRUCTOR}"])
    torch.manual_seed(0)
    model = load_model("realesrgan-x4plus")
    metric = LPIPS("alex")
    loss_fn, flat_loss = LWayLoss(metric), LWayLoss(metric, hf_weight=False)
    recons = {name: _reconstruction(spec) for name, spec in checkpoints.items()}
    data = sets(args.per_family, args.only, clean=True)
    results: dict[str, dict] = {}
    started = time.perf_counter()
    for set_name, items in data.items():
        rows = []
        for index, (stem, lr_np, hr_np) in enumerate(items):
            lr, hr = to_tensor(lr_np), to_tensor(hr_np)
            sr = to_tensor(upscale_image(model, Image(lr_np, None, 8), UpscaleOptions(tile=512)).pixels)
            area = F.avg_pool2d(hr, 4)
            row = {"image": stem, "area": {"psnr": psnr(area, lr), "lpips": lpips(metric, area, lr)}}
            synthetic = set_name in (*EVALUATION_FAMILIES, *UNSEEN_FAMILIES)  # real pairs and clean have no plan
            ceiling = noise_free_lr(set_name, index, hr) if synthetic else None
            if ceiling is not None:
                row["noise-free"] = {"psnr": psnr(ceiling, lr), "lpips": lpips(metric, ceiling, lr)}
            with torch.no_grad():
                for name, recon in recons.items():
                    styles = recon.reconstructor.prepare(recon.encoder(lr))
                    from_hr, from_sr = degrade_both(recon, styles, hr, sr, lr)
                    at_sr, at_hr = loss_fn(from_sr, lr), loss_fn(from_hr, lr)
                    row[name] = {"psnr": psnr(from_hr, lr), "lpips": lpips(metric, from_hr, lr),
                                 "margin": float(at_sr.total - at_hr.total),
                                 "margin_l1": float(at_sr.l1 - at_hr.l1),
                                 "margin_lpips": float(at_sr.lpips - at_hr.lpips),
                                 "margin_flat": float(flat_loss(from_sr, lr).total - flat_loss(from_hr, lr).total)}
                    if ceiling is not None:
                        to_hr, to_sr = degrade_both(recon, styles, hr, sr, ceiling)
                        row[name]["margin_noise_free"] = float(loss_fn(to_sr, ceiling).total
                                                               - loss_fn(to_hr, ceiling).total)
            rows.append(row)
        columns = ["area", *(["noise-free"] if "noise-free" in rows[0] else []), *recons]
        mean = {c: {k: finite_mean([r[c][k] for r in rows]) for k in rows[0][c]} for c in columns}
        results[set_name] = {"mean": mean, "images": rows}
        cells = "  ".join(f"{c}: {_db(mean[c]['psnr'])} / {mean[c]['lpips']:.4f}"
                          + (f" / {mean[c]['margin']:+.4f} ({mean[c]['margin_flat']:+.4f})" if "margin" in mean[c]
                             else "") for c in columns)
        print(f"{set_name:<14} {len(rows):>3}  {cells}", flush=True)
    print("(per column: PSNR of R(HR, E(LR)) vs LR / LPIPS / signal margin (with W = 1); area = plain area downsample; "
          "noise-free = the family's plan without its noise, the ceiling)")
    write_results("reconstruction_fidelity", args.out, checkpoints, args.per_family, started, results)


def write_results(name: str, out: Path | None, checkpoints: dict[str, str], per_family: int, started: float,
                  results: dict) -> None:
    """The JSON of a per-checkpoint, per-set bench (this one, ``reconstructor_parts.py``): ``out``, or
    bench/results/<name>_<device>.json, with the machine it ran on."""
    device = f"{platform.machine()} CPU"
    out = out or results_dir() / f"{name}_{device.replace(' ', '_')}.json"
    out.write_text(json.dumps({"device": device, "cpu": cpu_features().as_dict(), "checkpoints": checkpoints,
                               "per_family": per_family, "seconds": time.perf_counter() - started,
                               "results": results}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
