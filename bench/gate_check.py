"""The explainability gate (``lway_engine/adaptation/gate.py``) on every evaluation set, without adapting.

    .venv/bin/python bench/gate_check.py [--reconstructor CKPT]        # ~10 min on one thread

For each set, the explainability of each image alone and the gate's value for the set (its median over up to
8 images, as ``adapt`` computes it). The gate's threshold (2) was read off the images ``bench/quality.py --quick``
uses (City100 031-038, each family's Kodak24 kodim01-06); the other rows are images it was not chosen on:
City100 039-060, kodim07-24 per family, the two unseen families, and ``make demo``'s three photos.
Writes bench/results/gate_check_<reconstructor>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from quality import city100, family_set
from results_dir import results_dir

from lway_engine.adaptation.gate import explainability
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES, degrade
from lway_engine.demo import FAMILY, demo_photos
from lway_engine.losses import LPIPS
from lway_engine.models import load_model
from lway_engine.reconstruction import load_checkpoint

THRESHOLD = 2.0


def demo_set() -> list[tuple[str, np.ndarray]]:
    """``make demo``'s LR images (the same degradation draws)."""
    items = []
    for i, (name, img) in enumerate(demo_photos().items()):
        lr = degrade(torch.from_numpy(img.transpose(2, 0, 1).copy()), FAMILY, i, scale=4)
        items.append((name, np.rint(lr.clamp(0, 1).numpy().transpose(1, 2, 0) * 255) / 255))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reconstructor", type=Path, default=Path(DEFAULT_RECONSTRUCTOR))
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model("realesrgan-x4plus")
    reconstruction = load_checkpoint(args.reconstructor, expect_scale=4)
    if reconstruction.error_model is None:
        raise SystemExit(f"{args.reconstructor} has no error model: run bench/fit_error_model.py on it first")
    loss = LWayLoss(LPIPS("alex"), hf_weight=False)
    city = city100(30)
    sets = {"city100 031-038 (chose)": city[:8], "city100 039-060": city[8:]}
    for family in EVALUATION_FAMILIES:
        items = family_set("Kodak24", family, 24, 256)
        sets[f"{family} kodim01-06 (chose)"], sets[f"{family} kodim07-24"] = items[:6], items[6:]
    for family in UNSEEN_FAMILIES:
        sets[f"{family} kodim01-24"] = family_set("Kodak24", family, 24, 256)
    sets["demo photos"] = [(name, lr, None) for name, lr in demo_set()]
    results = {}
    print(f"{'set':<34} {'gate value':>10} {'images >= 2':>12} {'median':>7}  (per image)")
    for name, items in sets.items():
        tensors = [torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float() for _, lr, *_ in items]
        per_image = [explainability(model, reconstruction, [t], loss, "bf16") for t in tensors]
        gate = explainability(model, reconstruction, tensors, loss, "bf16")
        results[name] = {"gate": gate, "images": {stem: r for (stem, *_), r in zip(items, per_image)}}
        above = sum(r >= THRESHOLD for r in per_image)
        print(f"{name:<34} {gate:>10.2f} {above:>5} of {len(per_image):<4} {statistics.median(per_image):>7.2f}  "
              + " ".join(f"{r:.2f}" for r in per_image), flush=True)
    out = results_dir() / f"gate_check_{args.reconstructor.stem}.json"
    out.write_text(json.dumps({"reconstructor": str(args.reconstructor), "threshold": THRESHOLD,
                               "results": results}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
