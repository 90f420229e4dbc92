"""Every paper metric over five blur and five noise levels on 10 Kodak24 photos: each must worsen step by step.

Run: .venv/bin/python bench/metric_ladders.py   -> prints a table, writes bench/results/metric_ladders.json
(needs ../shared/data/Kodak24; the ladders are lway_engine.evaluation.ladders, the same as the tests use).
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
from lway_engine.metrics import METRICS, PAPER_METRICS, build_metric

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "Kodak24"


def _monotone(values: list[float], higher_is_better: bool) -> bool:
    steps = [b - a for a, b in zip(values, values[1:])]
    return all(s < 0 for s in steps) if higher_is_better else all(s > 0 for s in steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=10, help="first N Kodak24 photos by name")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    files = sorted(KODAK.glob("*.png"))[: args.photos]
    if not files:
        raise SystemExit(f"no photos in {KODAK}")
    metrics = {name: build_metric(name, args.device) for name in PAPER_METRICS}
    # scores[ladder][metric][photo] = [value per level]
    scores: dict[str, dict[str, dict[str, list[float]]]] = {k: {m: {} for m in metrics} for k in LADDERS}
    start = time.perf_counter()
    for file in files:
        ref = to_tensor(read_image(file).rgb()).to(args.device)
        for kind in LADDERS:
            levels = torch.cat(ladder(ref, kind))
            refs = ref.expand_as(levels)
            for name, metric in metrics.items():
                scores[kind][name][file.stem] = metric(levels, refs).tolist()
        print(f"{file.name} done ({time.perf_counter() - start:.0f} s)", flush=True)

    summary: dict[str, dict[str, dict]] = {}
    for kind, sigmas in LADDERS.items():
        unit = "px" if kind == "blur" else "/255"
        shown = [f"{s:g}" if kind == "blur" else f"{s * 255:g}" for s in sigmas]
        print(f"\n{kind} ladder (sigma {unit}: {', '.join(shown)}), mean over {len(files)} Kodak24 photos")
        print(f"{'metric':<12}" + "".join(f" {s:>9}" for s in shown) + "  monotone: mean  photos")
        summary[kind] = {}
        for name in metrics:
            better = METRICS[name].higher_is_better
            per_photo = scores[kind][name]
            mean = [sum(v[i] for v in per_photo.values()) / len(per_photo) for i in range(len(sigmas))]
            photos_ok = sum(_monotone(v, better) for v in per_photo.values())
            summary[kind][name] = {"mean": mean, "mean_monotone": _monotone(mean, better),
                                   "photos_monotone": photos_ok, "higher_is_better": better}
            arrow = "↑" if better else "↓"
            print(f"{name + ' ' + arrow:<12}" + "".join(f" {v:>9.4f}" for v in mean)
                  + f"  {'yes' if _monotone(mean, better) else 'NO':>12} {photos_ok:>4}/{len(files)}")
    print("\n(↑ higher is better, ↓ lower is better; monotone = every level worse than the one before)")
    out = Path(__file__).resolve().parent / "results" / "metric_ladders.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "cpu": cpu_features().as_dict(),
        "machine": f"{platform.processor() or platform.machine()} {args.device}",
        "photos": [f.name for f in files],
        "ladders": {k: list(v) for k, v in LADDERS.items()},
        "seconds": round(time.perf_counter() - start, 1),
        "summary": summary,
        "scores": scores,
    }, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
