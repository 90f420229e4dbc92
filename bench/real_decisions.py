"""What ``adapt``'s selection decides on real-world LR photos without HR, and whether an adapted model paints
noise in: the never-worse check where no LPIPS can be measured.

    .venv/bin/python bench/real_decisions.py --set RNI15 [--candidates "anchor=1,flat=1,..."]   # ~10 min

Where the explainability gate opens on real photos (RNI15 and OldPhotos_BOPB read above 2, ``bench/gate_check.py
--real``), the held-out signal alone decides, and these are the noisiest photos users bring. Centre crops (128 LR
px) of the set's first images are adapted as one set with ``bench/quality.py --quick``'s settings; the JSON holds
the decision, the signal's parts per evaluation, and the change of the adapted model's detail energy above the LR's
Nyquist frequency in the areas the HF map calls flat, over the whole crops (``flat_detail_change``; 0 when the
unadapted weights were kept): noise or grain copied into the output raises it. Writes
bench/results/real_decisions_<set>[_<tag>]_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch
from gate_check import real_sets
from quality import PROFILES
from results_dir import results_dir

from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.adaptation.select import DEFAULT_CANDIDATES, Candidate, adapt_and_select
from lway_engine.adaptation.signal import area_detail
from lway_engine.media.images import to_tensor
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import load_model
from lway_engine.reconstruction import load_checkpoint


def centre(image: np.ndarray, side: int) -> torch.Tensor:
    height, width = image.shape[:2]
    s = min(side, height, width)
    top, left = (height - s) // 2, (width - s) // 2
    return to_tensor(image[top : top + s, left : left + s])[0].float()


def flat_detail(module: torch.nn.Module, images: list[torch.Tensor], scale: int) -> float:
    """The model's detail energy above the LR band in flat areas (``signal.area_detail``), summed."""
    with torch.no_grad():
        return sum(area_detail(module(x[None]).clamp(0, 1), x[None], scale)[0] for x in images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="RNI15", help="a real-world LR set of ../shared/data")
    parser.add_argument("--candidates", help="selection's candidates joined by ';' (default: adapt's)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--side", type=int, default=128, help="LR centre-crop side")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    candidates = tuple(Candidate.parse(c) for c in args.candidates.split(";")) if args.candidates else (
        DEFAULT_CANDIDATES)
    model, metric = load_model("realesrgan-x4plus"), LPIPS("alex")
    images = [centre(image, args.side) for _, image in real_sets(args.images, (args.set,))[args.set]]
    before = flat_detail(model.module, images, model.scale)
    _, decision = adapt_and_select(model, images, load_checkpoint(DEFAULT_RECONSTRUCTOR), LWayLoss(metric),
                                   PROFILES["quick"]["adapt"], candidates, progress=False)
    change = flat_detail(model.module, images, model.scale) / before - 1
    print(f"{args.set}: adapted {decision.adapted}, flat-area detail {change:+.1%}\n{decision.reason}")
    device = f"{platform.machine()} CPU"
    tag = f"_{args.tag}" if args.tag else ""
    out = results_dir() / f"real_decisions_{args.set}{tag}_{device.replace(' ', '_')}.json"
    out.write_text(json.dumps({"set": args.set, "images": len(images), "side": args.side, "device": device,
                               "candidates": [c.name for c in candidates], "adapted": decision.adapted,
                               "reason": decision.reason, "explainability": decision.explainability,
                               "flat_detail_change": change,
                               "signal": {name: [p.__dict__ for p in run.signal]
                                          for name, run in (decision.runs or {}).items()}}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
