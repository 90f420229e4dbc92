"""Our PSNR, SSIM, LPIPS and DISTS against their reference implementations on Kodak24 photos under the blur and
noise ladders: the largest absolute difference per metric and convention (acceptance: PSNR/SSIM 1e-4 of
scikit-image, LPIPS 1e-6 of the lpips package, DISTS 1e-5 of dists-pytorch).

Run: .venv/bin/python bench/metric_references.py   -> prints a table, writes bench/results/metric_references.json
(needs ../shared/data/Kodak24 and the test extra's dists-pytorch).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lway_engine.evaluation.ladders import LADDERS, ladder
from lway_engine.hardware import cpu_features
from lway_engine.media.images import read_image, to_tensor
from lway_engine.metrics import build_metric, psnr, references, ssim

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "Kodak24"


def _pairs(count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ladder level of the first ``count`` photos (centre ``size`` crops): (distorted, reference)."""
    distorted, refs = [], []
    for file in sorted(KODAK.glob("*.png"))[:count]:
        image = to_tensor(read_image(file).rgb())
        top, left = (image.shape[2] - size) // 2, (image.shape[3] - size) // 2
        ref = image[..., top : top + size, left : left + size]
        for kind in LADDERS:
            levels = ladder(ref, kind)
            distorted += levels
            refs += [ref] * len(levels)
    return torch.cat(distorted), torch.cat(refs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--size", type=int, default=256, help="centre crop side")
    args = parser.parse_args()
    distorted, refs = _pairs(args.photos, args.size)
    if not len(refs):
        raise SystemExit(f"no photos in {KODAK}")
    cases = {f"{name} {'Y' if y else 'RGB'} crop {crop}": (lambda x, r, f=ours, y=y, c=crop: f(x, r, y, c),
                                                           lambda x, r, f=theirs, y=y, c=crop: f(x, r, y, c), 1e-4)
             for name, ours, theirs in (("psnr", psnr, references.skimage_psnr),
                                        ("ssim", ssim, references.skimage_ssim))
             for y in (False, True) for crop in (0, 4)}
    cases |= {f"lpips-{net}": (build_metric(f"lpips-{net}"), references.lpips_package(net), 1e-6)
              for net in ("alex", "vgg")}
    cases["dists"] = (build_metric("dists"), references.dists_pytorch(), 1e-5)
    rows = {}
    print(f"{len(refs)} pairs: {args.photos} Kodak24 photos ({args.size} px centre crops) x 5 blur + 5 noise levels")
    print(f"{'metric':<22} {'reference':<16} {'max |ours - ref|':>17} {'bound':>7}  ok")
    for label, (ours, theirs, bound) in cases.items():
        start = time.perf_counter()
        got, expected = [], []
        for i in range(0, len(refs), 10):  # batches of 10: one photo's ladder
            got.append(ours(distorted[i : i + 10], refs[i : i + 10]))
            expected.append(theirs(distorted[i : i + 10], refs[i : i + 10]))
        diff = float((torch.cat(got) - torch.cat(expected)).abs().max())
        source = {"psnr": "scikit-image", "ssim": "scikit-image", "lpip": "lpips 0.1.4", "dist": "dists-pytorch 0.1"}
        rows[label] = {"max_abs_diff": diff, "bound": bound, "ok": diff < bound,
                       "seconds": round(time.perf_counter() - start, 1)}
        print(f"{label:<22} {source[label[:4]]:<16} {diff:>17.3e} {bound:>7.0e}  {'yes' if diff < bound else 'NO'}",
              flush=True)
    out = Path(__file__).resolve().parent / "results" / "metric_references.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": f"{platform.processor() or platform.machine()} CPU",
                               "cpu": cpu_features().as_dict(), "pairs": len(refs), "photos": args.photos,
                               "crop_size": args.size, "results": rows}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
