"""How far can adaptation's budget move x4plus on City100 if the HR were known? An upper bound for any no-HR loss.

    .venv/bin/python bench/supervised_bound.py --quick    # ~10 min on one thread
    .venv/bin/python bench/supervised_bound.py --medium

Issue 15 asks `adapt` for LPIPS -0.02 on City100 under ``bench/quality.py``'s CPU profiles. This trains the same
parameters (65% from the output end, ``adaptation/trainable.py``) with the same optimiser, learning rate (the
default candidate's: the profile's lr x3), batch, crop and number of steps as the profile's default adaptation,
but against the HR itself (L1 + LPIPS-alex at SR scale on the HR crop under each LR crop), on the same eight pairs,
and scores the result as ``quality.py`` does (``lpips_colour_matched``: after a global colour map fitted to the HR).
If even the HR cannot buy -0.02 in that many steps, the profile's budget, not the LR-scale loss, is what caps the
gain. It also splits the supervised change by band (``adaptation/step.py``'s ``above_lr_band``): the unadapted
output with only the LR band of the change (``lr_band_only``: all an LR-scale loss can see through R) and with
only the part above it (``above_band_only``). Writes bench/results/supervised_bound_<profile>_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from quality import PROFILES, band_split, city100, print_summary, score, summarise, upscale_all
from results_dir import results_dir

from lway_engine.adaptation.select import DEFAULT_CANDIDATES
from lway_engine.adaptation.trainable import select_trainable
from lway_engine.media.images import to_tensor
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--medium", action="store_true")
    parser.add_argument("--steps", type=int, help="default: the profile's iterations")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    profile_name = "medium" if args.medium else "quick"
    config = PROFILES[profile_name]["adapt"]
    steps = args.steps or config.iterations
    lr = config.lr * DEFAULT_CANDIDATES[0].lr_scale
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model, metric = load_model("realesrgan-x4plus"), LPIPS("alex")
    items = city100(args.pairs)
    unadapted = upscale_all(model, items)
    before = score(metric, items, unadapted)
    module = model.module.eval()
    select_trainable(module, config.trainable_fraction)
    params = [p for p in module.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=lr)
    lrs = [to_tensor(lr_np)[0] for _, lr_np, _ in items]
    hrs = [to_tensor(hr_np)[0] for _, _, hr_np in items]
    crop, scale, losses, started = config.crop, model.scale, [], time.perf_counter()
    for _ in range(steps):
        pairs = []
        for i in rng.integers(len(items), size=config.batch):
            top, left = (int(rng.integers(side - crop + 1)) for side in lrs[i].shape[-2:])
            pairs.append((lrs[i][:, top : top + crop, left : left + crop],
                          hrs[i][:, scale * top : scale * (top + crop), scale * left : scale * (left + crop)]))
        lr_crops, hr_crops = (torch.stack(part) for part in zip(*pairs))
        sr = module(lr_crops)
        loss = (sr - hr_crops).abs().mean() + metric(sr, hr_crops).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    module.requires_grad_(False)
    trained = upscale_all(model, items)
    after = score(metric, items, trained)
    bands = band_split(metric, items, trained, unadapted, model.scale)
    summary = summarise(before, after, bands)
    print_summary(summary)
    device = f"{platform.machine()} CPU"
    out = results_dir() / f"supervised_bound_{profile_name}_{device.replace(' ', '_')}.json"
    out.write_text(json.dumps({"profile": profile_name, "device": device, "steps": steps, "lr": lr,
                               "batch": config.batch, "crop": crop, "pairs": [name for name, _, _ in items],
                               "seconds": time.perf_counter() - started, "loss": losses, "summary": summary,
                               "before": before, "after": after, "bands": bands}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
