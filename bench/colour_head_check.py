"""Why R's colour map is fitted to the LR (``lway_engine/reconstruction/colour_fit.py``), measured:

    .venv/bin/python bench/colour_head_check.py      # ~3 min on one CPU thread

1. How much the colour head of a checkpoint (default: the broad L1 one, the default before the fit) changes an LR's
   pixels when applied to it, per set: the colour shift it would ask adaptation to undo in the SR output. Sets:
   City100 031-038 (LR), Kodak24 crops of two families, and up to 8 images of four real-world LR sets.
2. What a global colour map fitted to the *HR* alone gains on x4plus's output for City100 031-038 (PSNR-Y, LPIPS):
   the share of City100's adaptation gain that is its capture pair's colours.

Writes bench/results/colour_head_check_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch
from quality import DATA, city100, colour_matched, family_set
from results_dir import results_dir

from lway_engine.inference.upscale import UpscaleOptions, upscale_image
from lway_engine.media.images import Image, read_image, to_tensor
from lway_engine.metrics import lpips_arrays, psnr_y
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import load_model
from lway_engine.reconstruction import load_checkpoint
from lway_engine.reconstruction.reconstructor import apply_colour

REAL_SETS = ("RealSR_LR4", "OldPhotos_BOPB", "RNI15", "realsrset")


def head_shift(recon: torch.nn.Module, lr: np.ndarray) -> tuple[float, list[float]]:
    """Mean |change| and mean signed RGB change (levels of 255) of the head's map on ``lr`` (at most 384 px)."""
    x = to_tensor(lr).float()[..., :384, :384]
    with torch.no_grad():
        change = apply_colour(x, recon.reconstructor.colour(recon.encoder(x))) - x
    return float(change.abs().mean() * 255), [float(v) for v in change.mean((0, 2, 3)) * 255]


def real_images(name: str, count: int = 8) -> list[np.ndarray]:
    files = sorted(p for p in (DATA / name).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    images = [read_image(p).rgb() for p in files[:count]]
    return [image for image in images if min(image.shape[:2]) >= 64]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path,
                        default=Path(__file__).resolve().parent / "training" / "lway-er-x4-broad-l1.safetensors")
    args = parser.parse_args()
    recon = load_checkpoint(args.checkpoint, expect_scale=4)
    pairs = city100(8)
    sets = {"city100": [lr for _, lr, _ in pairs]}
    for family in ("motion", "defocus_noise"):
        sets[family] = [lr for _, lr, _ in family_set("Kodak24", family, 6, 256)]
    sets.update({name: real_images(name) for name in REAL_SETS})
    shifts = {}
    for name, images in sets.items():
        rows = [head_shift(recon, lr) for lr in images]
        shifts[name] = {"images": len(rows), "mean_abs_levels": float(np.mean([a for a, _ in rows])),
                        "mean_rgb_levels": np.mean([b for _, b in rows], axis=0).tolist()}
        print(f"{name:<16} {len(rows)} images: the head changes pixels by {shifts[name]['mean_abs_levels']:.1f} "
              f"levels, RGB {np.round(shifts[name]['mean_rgb_levels'], 1)}")
    model, metric = load_model("realesrgan-x4plus"), LPIPS("alex")
    oracle = []
    for stem, lr, hr in pairs:
        sr = upscale_image(model, Image(lr, None, 8), UpscaleOptions(tile=512)).pixels
        hr = hr[: sr.shape[0], : sr.shape[1]]
        fixed = colour_matched(sr, hr)
        oracle.append({"image": stem, "psnr_y_gain": psnr_y(fixed, hr) - psnr_y(sr, hr),
                       "lpips_change": lpips_arrays(metric, fixed, hr) - lpips_arrays(metric, sr, hr)})
    mean = {k: float(np.mean([o[k] for o in oracle])) for k in ("psnr_y_gain", "lpips_change")}
    print(f"City100 031-038, a global colour map fitted to the HR on x4plus's output: PSNR-Y "
          f"{mean['psnr_y_gain']:+.2f} dB, LPIPS {mean['lpips_change']:+.4f}")
    device = f"{platform.machine()} CPU"
    out = results_dir() / f"colour_head_check_{device.replace(' ', '_')}.json"
    out.write_text(json.dumps({"device": device, "checkpoint": str(args.checkpoint), "head_shift": shifts,
                               "city100_hr_colour_oracle": {"mean": mean, "images": oracle}}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
