"""Does the no-HR quality signal of ``adapt`` track the true LPIPS change against the HR?

    .venv/bin/python bench/signal_check.py                      # ~40 runs on a 2-core CPU (about an hour)
    .venv/bin/python bench/signal_check.py --reconstructor NEW.safetensors --per-set 4

Runs: per-image adaptations of Real-ESRGAN x4plus (fixed schedule, no selection, so each run shows the signal
over its whole course) on City100 pairs 031-... and on Kodak24 crops of every evaluation family and the two
unseen families (the LR images of ``bench/quality.py``), each with two candidate losses (the paper's, and the
texture-keeping anchor + texture terms). At every signal evaluation the adapted model also upscales the whole LR
image and is scored against the HR (LPIPS-alex, PSNR-Y). Reports the Spearman rank correlation between the
signal's change and the true LPIPS change, per run (at the last step) and over all evaluation points, for the
signal and for each of its parts, and the selection outcome: the true LPIPS change at the step each run's signal
picks. Writes bench/results/signal_check_<device>.json and a scatter plot beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from quality import city100, family_set

from lway_engine.adaptation.loop import AdaptConfig, adapt
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.adaptation.select import DEFAULT_CANDIDATES, MIN_GAIN
from lway_engine.adaptation.signal import SignalPoint, combine, hold_out
from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES
from lway_engine.hardware import cpu_features
from lway_engine.media.images import Image
from lway_engine.losses import LPIPS
from lway_engine.metrics import lpips_arrays, psnr_y
from lway_engine.models import load_model
from lway_engine.reconstruction import load_checkpoint
from lway_engine.upscale import UpscaleOptions, upscale_image

PARTS = ("value", "fidelity", "copying", "texture", "coarse")


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho: Pearson correlation of the ranks (average ranks for ties)."""
    def ranks(v: list[float]) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        values = np.asarray(v)
        for value in np.unique(values):
            tied = values == value
            r[tied] = r[tied].mean()
        return r
    if len(x) < 3:
        return math.nan
    a, b = ranks(x), ranks(y)
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reconstructor", type=Path, default=DEFAULT_RECONSTRUCTOR)
    parser.add_argument("--per-set", type=int, default=3, help="images per set (default 3: 8 sets x 3 x 2 = 48 runs)")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--only", help="comma-separated subset of sets")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--from", dest="source", type=Path,
                        help="re-score a JSON of earlier runs with the current combination, no adaptation")
    args = parser.parse_args()
    if args.source:
        recorded = json.loads(args.source.read_text())
        summary = summarise(recorded["runs"])
        report(summary)
        recorded["summary"] = summary
        out = args.out or args.source
        out.write_text(json.dumps(recorded, indent=1, default=str))
        scatter(out.with_suffix(".png"), recorded["runs"])
        return
    torch.manual_seed(0)
    model = load_model("realesrgan-x4plus")
    original = {k: v.clone() for k, v in model.module.state_dict().items()}
    recon = load_checkpoint(args.reconstructor, expect_scale=4)
    metric = LPIPS("alex")
    loss_fn = LWayLoss(metric)
    sets = {"city100": city100(args.per_set)}
    for family in (*EVALUATION_FAMILIES, *UNSEEN_FAMILIES):
        sets[family] = family_set("Kodak24", family, args.per_set, 256)
    if args.only:
        sets = {k: v for k, v in sets.items() if k in args.only.split(",")}
    runs, started = [], time.perf_counter()
    for set_name, items in sets.items():
        for stem, lr_np, hr_np in items:
            lr = torch.from_numpy(lr_np.transpose(2, 0, 1).copy())
            holdout = hold_out([tuple(lr.shape[-2:])], 48, model.size.multiple_of)
            for candidate in DEFAULT_CANDIDATES:
                model.module.load_state_dict(original)
                config, candidate_loss = candidate.configure(AdaptConfig(
                    iterations=args.iterations, lr=args.lr, batch=2, crop=48, select=False,
                    eval_every=max(1, args.iterations // 6)), loss_fn)
                points: list[dict] = []

                def observe(point: SignalPoint, module: torch.nn.Module) -> None:
                    sr = upscale_image(model, Image(lr_np, None, 8), UpscaleOptions(tile=512)).pixels
                    points.append({**asdict(point), "lpips": lpips_arrays(metric, sr, hr_np),
                                   "psnr": psnr_y(sr, hr_np)})

                log = adapt(model, [lr], recon, candidate_loss, config, progress=False, holdout=holdout,
                            observe=observe)
                base = points[0]
                for p in points:
                    p["lpips_change"], p["psnr_change"] = p["lpips"] - base["lpips"], p["psnr"] - base["psnr"]
                chosen = chosen_point(points)
                runs.append({"set": set_name, "image": stem, "candidate": candidate.name, "status": log.status,
                             "points": points})
                last = points[-1]
                print(f"{set_name:<14} {stem:<10} {candidate.name:<20} last: signal {last['value']:+.4f} "
                      f"(fid {last['fidelity']:+.3f} copy {last['copying']:+.3f} tex {last['texture']:+.3f}) "
                      f"LPIPS {last['lpips_change']:+.4f} PSNR {last['psnr_change']:+.2f} | chosen step "
                      f"{chosen['step']}: LPIPS {chosen['lpips_change']:+.4f}", flush=True)
    summary = summarise(runs)
    report(summary)
    device = f"{platform.machine()} CPU"
    out = args.out or Path(__file__).resolve().parent / "results" / f"signal_check_{device.replace(' ', '_')}.json"
    out.write_text(json.dumps({"device": device, "cpu": cpu_features().as_dict(), "reconstructor": str(args.reconstructor), "args": vars(args) | {
        "reconstructor": str(args.reconstructor), "out": str(out)}, "seconds": time.perf_counter() - started,
        "summary": summary, "runs": runs}, indent=1, default=str))
    scatter(out.with_suffix(".png"), runs)
    print(f"written {out} and {out.with_suffix('.png')}")


def chosen_point(points: list[dict]) -> dict:
    """The point selection keeps: the lowest signal (recomputed from its parts with ``combine``) if it beats the
    unadapted model by ``MIN_GAIN``, else step 0. Sets each point's ``value``."""
    for p in points:
        p["value"] = combine(p["fidelity"], p["copying"], p["texture"])
    best = min(points, key=lambda p: p["value"] if math.isfinite(p["value"]) else math.inf)
    return best if best["value"] <= -MIN_GAIN else points[0]


def summarise(runs: list[dict]) -> dict:
    """Spearman per part (at the last step and over all points) and what selection by the signal would give: the
    signal is recomputed from its recorded parts with ``combine``, so a changed combination can be scored on old
    runs (``--from``)."""
    for r in runs:
        chosen = chosen_point(r["points"])
        r["chosen_step"], r["chosen_lpips_change"] = chosen["step"], chosen["lpips_change"]
    summary: dict = {"runs": len(runs)}
    for part in PARTS:
        if not all(part in p for r in runs for p in r["points"]):
            continue  # a part added after these runs were recorded
        final_x = [r["points"][-1][part] for r in runs]
        final_y = [r["points"][-1]["lpips_change"] for r in runs]
        all_x = [p[part] for r in runs for p in r["points"][1:]]
        all_y = [p["lpips_change"] for r in runs for p in r["points"][1:]]
        summary[part] = {"spearman_final": spearman(final_x, final_y), "spearman_all_points": spearman(all_x, all_y)}
    chosen = [r["chosen_lpips_change"] for r in runs]
    last = [r["points"][-1]["lpips_change"] for r in runs]
    summary["selection"] = {"mean_lpips_change_chosen": float(np.mean(chosen)),
                            "mean_lpips_change_last": float(np.mean(last)),
                            "worse_than_unadapted_chosen": int(sum(c > 0.002 for c in chosen)),
                            "worse_than_unadapted_last": int(sum(c > 0.002 for c in last)),
                            "adapted_chosen": int(sum(r["chosen_step"] > 0 for r in runs))}
    return summary


def report(summary: dict) -> None:
    print(f"\n{summary['runs']} runs. Spearman rho between each part's change and the true LPIPS change:")
    for part in PARTS:
        if part in summary:
            s = summary[part]
            print(f"  {part:<9} last step: {s['spearman_final']:+.3f}   all points: {s['spearman_all_points']:+.3f}")
    sel = summary["selection"]
    print(f"selection by the signal: adapted {sel['adapted_chosen']} of {summary['runs']} runs; mean LPIPS change "
          f"{sel['mean_lpips_change_chosen']:+.4f} (last step: {sel['mean_lpips_change_last']:+.4f}); runs worse than "
          f"+0.002: {sel['worse_than_unadapted_chosen']} (last step: {sel['worse_than_unadapted_last']})")


def scatter(path: Path, runs: list[dict]) -> None:
    """The signal's change against the true LPIPS change at each run's last step, coloured by set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for set_name in dict.fromkeys(r["set"] for r in runs):
        chosen = [r for r in runs if r["set"] == set_name]
        ax.scatter([r["points"][-1]["value"] for r in chosen], [r["points"][-1]["lpips_change"] for r in chosen],
                   label=set_name, s=18)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set(xlabel="signal change (no HR; lower = predicted better)", ylabel="true LPIPS change vs HR (lower = better)",
           title=f"{len(runs)} adaptation runs, last step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
