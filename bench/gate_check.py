"""The explainability gate (``lway_engine/adaptation/gate.py``) on every evaluation set, without adapting.

    .venv/bin/python bench/gate_check.py [--reconstructor CKPT]        # ~10 min on one thread
    .venv/bin/python bench/gate_check.py --hr-crop 512                  # the families at 128-px LRs

For each set, the explainability of each image alone and the gate's value for the set (its median over up to
8 images, as ``adapt`` computes it), and the set value's lower confidence bound that ``adapt`` holds to the
threshold (``gate.Reading.lower``; images count as above the threshold by theirs). The gate's threshold (1.5, on
the per-tile L1 explainability since 2026-12-01; 2 on the older whole-image flat loss) was read off the images
``bench/quality.py --quick`` uses (City100 031-038, each family's Kodak24 kodim01-06; ``bench/gate_truth.py`` sets
it beside the truth); the other rows are images it was not chosen on: City100 039-060, kodim07-24 per
family, the two unseen families, and ``make demo``'s three photos.
With ``--real``: the real-world LR sets of ``../shared/data`` instead (RealSR_LR4, realsrset, OldPhotos_BOPB,
RNI15; no HR, so only where ``adapt`` would act on what users bring), written to gate_check_real_<...>.json.
Writes bench/results/gate_check_<reconstructor>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import numpy as np
import torch
from gate_setup import THRESHOLD
from quality import DATA, city100, family_set
from results_dir import results_dir

from lway_engine.adaptation.gate import explainability
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES
from lway_engine.demo import demo_lr, demo_photos
from lway_engine.hardware import AMP_CHOICES, cpu_features, resolve_amp
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import load_model
from lway_engine.reconstruction import load_checkpoint


def demo_set() -> list[tuple[str, np.ndarray]]:
    """``make demo``'s LR images (the same degradation draws), 8-bit as it writes them."""
    photos = demo_photos()
    return [(name, np.rint(np.clip(lr, 0, 1) * 255) / 255) for name, lr in zip(photos, demo_lr(photos, 4))]


REAL_SETS = ("RealSR_LR4", "realsrset", "OldPhotos_BOPB", "RNI15")


def real_sets(limit: int, names: tuple[str, ...] = REAL_SETS) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Up to ``limit`` RGB images of each real-world LR set (greyscale and alpha dropped: E takes RGB)."""
    from lway_engine.media.images import read_image

    sets = {}
    for name in names:
        files = sorted(p for p in (DATA / name).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
        sets[name] = [(p.stem, read_image(p).rgb()) for p in files[:limit]]
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reconstructor", type=Path, default=Path(DEFAULT_RECONSTRUCTOR))
    parser.add_argument("--real", action="store_true", help="the real-world LR sets instead (no HR)")
    parser.add_argument("--limit", type=int, default=24, help="--real: images per set")
    parser.add_argument("--hr-crop", type=int, default=256,
                        help="centre crop of the families' Kodak24 HR (256: the 64-px LRs the threshold was read on; "
                             "512: 128-px LRs, where the gate opened on four families in bench/signal_check.py)")
    parser.add_argument("--colour", choices=("fitted", "predicted"), default="fitted",
                        help="R's colour map as adapt would run it (--predict-colour needs an error model fitted "
                             "that way: bench/fit_error_model.py --colour predicted)")
    parser.add_argument("--amp", choices=AMP_CHOICES, default="auto",
                        help="S0's autocast, as adapt resolves it (auto: bf16 on a CPU with native bf16, else fp32; "
                             "the recorded JSONs of the broad checkpoint ran bf16)")
    args = parser.parse_args()
    amp = resolve_amp(args.amp, "cpu")
    torch.manual_seed(0)
    model = load_model("realesrgan-x4plus")
    reconstruction = load_checkpoint(args.reconstructor, expect_scale=4)
    reconstruction.reconstructor.colour_fit = fitted = args.colour == "fitted"
    if reconstruction.error_model is None or not reconstruction.error_model.fits(fitted):
        raise SystemExit(f"{args.reconstructor} has no error model for the {args.colour} colour map: run "
                         f"bench/fit_error_model.py --colour {args.colour} on it first")
    loss = LWayLoss(LPIPS("alex"), hf_weight=False)
    sets = {name: [(stem, lr, None) for stem, lr in items] for name, items in real_sets(args.limit).items()} if (
        args.real) else evaluation_sets(args.hr_crop)
    results = {}
    print(f"{'set':<34} {'gate (bound)':>13} {f'images >= {THRESHOLD:g}':>12} {'median':>7}  (per image)")
    for name, items in sets.items():
        tensors = [torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float() for _, lr, *_ in items]
        per_image = [explainability(model, reconstruction, [t], loss, amp) for t in tensors]
        gate = explainability(model, reconstruction, tensors, loss, amp)
        results[name] = {"gate": gate and gate.value, "gate_bound": gate and gate.lower(),
                         "images": {stem: r and r.value for (stem, *_), r in zip(items, per_image)}}
        measured = [r for r in per_image if r is not None]  # None: an image below E's minimum side
        above = sum(r.lower() >= THRESHOLD for r in measured)
        gate_text, median = ("-", "-") if gate is None else (f"{gate.value:.2f} ({gate.lower():.2f})",
                                                             f"{statistics.median(r.value for r in measured):.2f}")
        print(f"{name:<34} {gate_text:>13} {above:>5} of {len(measured):<4} {median:>7}  "
              + " ".join("-" if r is None else f"{r.value:.2f}" for r in per_image), flush=True)
    colour = "_predicted" if args.colour == "predicted" else ""
    size = "" if args.real or args.hr_crop == 256 else f"_lr{args.hr_crop // 4}"
    out = results_dir() / f"gate_check_{'real_' if args.real else ''}{args.reconstructor.stem}{colour}{size}.json"
    out.write_text(json.dumps({"reconstructor": str(args.reconstructor), "device": f"{platform.machine()}_CPU",
                               "cpu": cpu_features().as_dict(), "colour": args.colour, "amp": amp or "fp32",
                               "family_hr_crop": None if args.real else args.hr_crop, "threshold": THRESHOLD,
                               "results": results}, indent=1))
    print(f"written {out}")


def evaluation_sets(hr_crop: int = 256) -> dict[str, list[tuple[str, np.ndarray, np.ndarray | None]]]:
    """The evaluation sets, split into the images the threshold was read from and the rest (module docstring); the
    families' LRs are ``hr_crop`` / 4 px."""
    city = city100(30)
    sets = {"city100 031-038 (chose)": city[:8], "city100 039-060": city[8:]}
    for family in EVALUATION_FAMILIES:
        items = family_set("Kodak24", family, 24, hr_crop)
        sets[f"{family} kodim01-06 (chose)"], sets[f"{family} kodim07-24"] = items[:6], items[6:]
    for family in UNSEEN_FAMILIES:
        sets[f"{family} kodim01-24"] = family_set("Kodak24", family, 24, hr_crop)
    sets["demo photos"] = [(name, lr, None) for name, lr in demo_set()]
    return sets


if __name__ == "__main__":
    main()
