"""Does the no-HR quality signal of ``adapt`` track the true LPIPS change against the HR?

    .venv/bin/python bench/signal_check.py                      # 36 per-image runs, ~1.5 h on one CPU thread
    .venv/bin/python bench/signal_check.py --only city100,defocus_noise,motion --out a.json   # shard it
    .venv/bin/python bench/signal_check.py --from a.json b.json --out both.json                # merge, re-score
    .venv/bin/python bench/signal_check.py --whole-set --city100 4 --per-set 4 --points 5 --candidates \
        anchor=1,flat=1,lr_scale=3,gate=2 anchor=1,flat=1,lr_scale=1,gate=2 anchor=1,flat=1,lr_scale=10,gate=2 \
        anchor=0,flat=1,lr_scale=3,gate=2 gate=2         # 35 whole-set runs (7 sets x 5 settings), ~2 h
    .venv/bin/python bench/signal_check.py --offset 6 --city100 6 --per-set 4   # a fresh sample: 037-042, kodim07-10
    .venv/bin/python bench/signal_check.py --probes ...    # also record bench/signal_probes.py's candidate readings
    .venv/bin/python bench/signal_check.py --probes niqe ...   # only its NIQE-style ones (bench/naturalness.py)
    .venv/bin/python bench/signal_check.py --split training ...  # design runs on training images (City100 001-)

Runs: per-image adaptations of Real-ESRGAN x4plus with the default candidate (``select.DEFAULT_CANDIDATES``) on
City100 pairs 031-... and on Kodak24 crops of every evaluation family and the two unseen families (the LR images
and settings of ``bench/quality.py --quick``). The candidate runs on its fixed schedule *whatever the gate says*, so
that runs the gate would have kept off are scored too: the signal has to say they are worse. Each run records the
image's explainability (``gate.py``), which the signal uses to cap the fidelity gain it credits
(``signal.fidelity_room``). At every signal evaluation the adapted model also upscales the whole LR image and is
scored against the HR (LPIPS-alex, PSNR-Y). Reports the Spearman rank correlation between the signal's change and
the true LPIPS change, per run (at the last step) and over all evaluation points, for the signal, the signal without
the cap, and each part, and the selection outcome as ``adapt`` decides it (the gate, then the best step by the
signal): the true LPIPS change of the weights it would keep. It also scores the true change on the held-out strip
alone against the whole image's: what a perfect reading of the strip would score. Writes
bench/results/signal_check_<device>.json and a scatter plot beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from gate_setup import THRESHOLD
from quality import city100, family_set
from signal_probes import PROBE_GROUPS, PROBES, probe, probe_changes
from training_split import CITY100_TRAINING, HR_FOLDERS

from lway_engine.adaptation.gate import CONFIDENCE, Reading, explainability
from lway_engine.adaptation.loop import AdaptConfig, adapt
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.adaptation.select import DEFAULT_CANDIDATES, Candidate, held_out_area, min_gain, selection_holdout
from lway_engine.adaptation.signal import SignalPoint, combine, fidelity_room
from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES
from lway_engine.hardware import cpu_features, resolve_amp
from lway_engine.inference.upscale import UpscaleOptions, upscale_image
from lway_engine.media.images import Image
from lway_engine.metrics import lpips_arrays, psnr_y
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import load_model
from lway_engine.reconstruction import load_checkpoint

WORSE = 0.002  # a run's LPIPS change beyond +-this counts as worse / better than the unadapted model's
PARTS = ("value", "uncapped", "fidelity", "copying", "texture", "texture_all", "coarse", "departure", "movement",
         "expected", "hybrid", *PROBES)


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
    parser.add_argument("--candidates", type=Candidate.parse, nargs="+", default=[DEFAULT_CANDIDATES[0]],
                        help='settings to run, each e.g. "anchor=1,flat=1,lr_scale=3,gate=2" (default: the default '
                             'candidate)')
    parser.add_argument("--whole-set", action="store_true",
                        help="one run per set and setting on all its images (adapt's default mode), scored by the "
                             "mean over the images; default: one run per image")
    parser.add_argument("--points", type=int, default=8, help="signal evaluations per run (default 8)")
    parser.add_argument("--city100", type=int, default=6,
                        help="City100 pairs, from 031 (--split training: from 001) (default 6)")
    parser.add_argument("--per-set", type=int, default=5, help="Kodak24 images per family (default 5: 36 runs)")
    parser.add_argument("--offset", type=int, default=0,
                        help="skip the first N images of every set: a fresh sample (City100 from 031+N)")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-5, help="before the candidate's lr_scale")
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--amp", choices=("auto", "bf16", "fp32"), default="auto",
                        help="autocast of adaptation and the gate (auto: bf16 on a CPU with native bf16)")
    parser.add_argument("--only", help="comma-separated subset of sets")
    parser.add_argument("--split", choices=("evaluation", "training"), default="evaluation",
                        help="evaluation images (default; City100 031-060) or the training split's (City100 "
                             "001-030, families on Urban100 or Manga109): a design sample that leaves every "
                             "evaluation image fresh. R and the gate's error model were fitted on these images, so "
                             "they read them better than fresh ones")
    parser.add_argument("--hr-set", help="the HR images the families degrade (evaluation: Kodak24 (default), CBSD68, "
                        "Set14; training: Urban100_HR_jpeg (default), Manga109_HR_jpeg)")
    parser.add_argument("--hr-crop", type=int, default=256,
                        help="centre crop of the family images' HR (default 256: a 64-px LR, whose held-out strip "
                             "is one 16 x 48 tile; larger crops give the signal more to see and cost more per run)")
    parser.add_argument("--probes", nargs="*", choices=tuple(PROBE_GROUPS),
                        help="also record bench/signal_probes.py's readings of these groups (none named: detail)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--from", dest="sources", type=Path, nargs="+",
                        help="merge and re-score JSONs of earlier runs with the current combination, no adaptation")
    args = parser.parse_args()
    device = f"{platform.machine()} CPU"
    out = args.out or Path(__file__).resolve().parent / "results" / f"signal_check_{device.replace(' ', '_')}.json"
    if args.sources:
        recorded = [json.loads(p.read_text()) for p in args.sources]
        runs = [r for p in args.sources for r in load_runs(p)]
        summary = summarise(runs)
        report(summary)
        merged = {**recorded[0], "merged_from": [str(p) for p in args.sources], "summary": summary, "runs": runs,
                  "seconds": sum(rec.get("seconds", 0.0) for rec in recorded)}
        out.write_text(json.dumps(merged, indent=1, default=str))
        scatter(out.with_suffix(".png"), runs)
        print(f"written {out} and {out.with_suffix('.png')}")
        return
    torch.manual_seed(0)
    model = load_model("realesrgan-x4plus")
    original = {k: v.clone() for k, v in model.module.state_dict().items()}
    recon = load_checkpoint(args.reconstructor, expect_scale=4)
    metric = LPIPS("alex")
    loss_fn = LWayLoss(metric)
    amp = resolve_amp(args.amp, "cpu")
    training = args.split == "training"
    hr_set = args.hr_set or (HR_FOLDERS[0] if training else "Kodak24")
    if (hr_set in HR_FOLDERS) != training:
        parser.error(f"--hr-set {hr_set} is not in the {args.split} split (bench/training_split.py)")
    names = args.only.split(",") if args.only else ["city100", *EVALUATION_FAMILIES, *UNSEEN_FAMILIES]
    first = CITY100_TRAINING.start if training else CITY100_TRAINING.stop
    sets = {name: city100(args.city100, args.offset, first) if name == "city100"
            else family_set(hr_set, name, args.per_set, args.hr_crop, args.offset) for name in names}
    runs, started = [], time.perf_counter()
    for set_name, items in sets.items():
        model.module.load_state_dict(original)
        set_gate = explainability(model, recon, [torch.from_numpy(lr.transpose(2, 0, 1).copy())
                                                 for _, lr, _ in items], loss_fn, amp)
        for group in [items] if args.whole_set else [[item] for item in items]:
            lrs = [torch.from_numpy(lr_np.transpose(2, 0, 1).copy()) for _, lr_np, _ in group]
            model.module.load_state_dict(original)
            gate = explainability(model, recon, lrs, loss_fn, amp)
            holdout = selection_holdout([tuple(lr.shape[-2:]) for lr in lrs], args.crop, model.size.multiple_of)
            for candidate in args.candidates:
                model.module.load_state_dict(original)
                config, candidate_loss = candidate.configure(AdaptConfig(
                    iterations=args.iterations, lr=args.lr, batch=2, crop=args.crop, select=False, amp=amp,
                    eval_every=max(1, args.iterations // args.points)), loss_fn)
                config = replace(config, explainability=min(gate.value, set_gate.value))  # as adapt --per-image
                points: list[dict] = []

                def observe(point: SignalPoint, module: torch.nn.Module, group: list = group) -> None:
                    scores, probes = [], []
                    for index, (_, lr_np, hr_np) in enumerate(group):
                        sr = upscale_image(model, Image(lr_np, None, 8), UpscaleOptions(tile=512)).pixels
                        areas = split_strip(sr, hr_np, holdout.limits[index] if holdout else None, model.scale)
                        scores.append((lpips_arrays(metric, sr, hr_np), psnr_y(sr, hr_np),
                                       *([lpips_arrays(metric, *pair) for pair in areas] if areas else
                                         [math.nan, math.nan])))
                        if args.probes is not None:
                            probes.append(probe(model, recon, metric, lr_np, sr, tuple(args.probes or ["detail"]),
                                                areas[0][0] if areas else None))
                    lpips, psnr, strip, rest = np.mean(scores, axis=0)
                    raw = {f"raw_{k}": float(np.mean([p[k] for p in probes])) for k in probes[0]} if probes else {}
                    points.append({**asdict(point), "lpips": float(lpips), "psnr": float(psnr),
                                   "lpips_strip": float(strip), "lpips_rest": float(rest), **raw})

                log = adapt(model, lrs, recon, candidate_loss, config, progress=False, holdout=holdout,
                            observe=observe)
                base = points[0]
                for p in points:
                    p["lpips_change"], p["psnr_change"] = p["lpips"] - base["lpips"], p["psnr"] - base["psnr"]
                    p["lpips_strip_change"] = p["lpips_strip"] - base["lpips_strip"]
                    p["lpips_rest_change"] = p["lpips_rest"] - base["lpips_rest"]
                    p.update(probe_changes(p, base))
                stem = group[0][0] if len(group) == 1 else f"{len(group)} images"
                run = {"set": set_name, "image": stem, "images": [item[0] for item in group],
                       "candidate": candidate.name, "gate_threshold": candidate.gate, "explainability": gate.value,
                       "explainability_tiles": gate.tiles, "set_explainability": set_gate.value,
                       "set_explainability_tiles": set_gate.tiles,
                       "added_only": config.added_detail_only, "status": log.status, "points": points,
                       "holdout_area": held_out_area(holdout) if holdout else 0}
                runs.append(run)
                chosen = chosen_point(run)
                last = points[-1]
                print(f"{set_name:<14} {stem:<10} {_short(candidate):<24} gate {gate.value:.2f} last: signal "
                      f"{last['value']:+.4f} (fid {last['fidelity']:+.3f} copy {last['copying']:+.3f} tex "
                      f"{last['texture']:+.3f} all {last['texture_all']:+.3f}) LPIPS {last['lpips_change']:+.4f} PSNR "
                      f"{last['psnr_change']:+.2f} | "
                      f"adapt keeps step {chosen['step']}: LPIPS {chosen['lpips_change']:+.4f}", flush=True)
                out.write_text(json.dumps({"device": device, "runs": runs, "partial": True}, default=str))
    summary = summarise(runs)
    report(summary)
    out.write_text(json.dumps({"device": device, "cpu": cpu_features().as_dict(),
                               "args": {k: str(v) for k, v in vars(args).items()},
                               "seconds": time.perf_counter() - started, "summary": summary, "runs": runs},
                              indent=1, default=str))
    scatter(out.with_suffix(".png"), runs)
    print(f"written {out} and {out.with_suffix('.png')}")


def split_strip(sr: np.ndarray, hr: np.ndarray, limit: tuple[int, int] | None,
                scale: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """(SR, HR) on the held-out strip and on the area training crops come from (``limit``: the LR rows and columns
    left for training, ``Holdout.limits``); None without a strip. LPIPS on the strip is the truth a held-out signal
    can see at best: how well it ranks the whole image's change is what a perfect held-out reading scores."""
    if limit is None or (limit[0] * scale, limit[1] * scale) == sr.shape[:2]:
        return None
    rows, cols = limit[0] * scale, limit[1] * scale
    strip = (sr[rows:], hr[rows:]) if rows < sr.shape[0] else (sr[:, cols:], hr[:, cols:])
    return strip, (sr[:rows, :cols], hr[:rows, :cols])


def _short(candidate: Candidate) -> str:
    """The fields of ``candidate`` that differ from the defaults, as ``Candidate.parse`` reads them."""
    fields = {k: v for k, v in vars(candidate).items() if v != Candidate.__dataclass_fields__[k].default}
    return ",".join(f"{k}={int(v) if isinstance(v, bool) else f'{v:g}'}" for k, v in fields.items())


def rescore(run: dict) -> None:
    """Recompute each point's ``value`` (and ``uncapped``: without the explainability cap) from its recorded parts
    with the current ``combine``, so a changed combination can be scored on old runs (``--from``); and, where the
    run recorded the ``movement``, the readings ``expected`` (:func:`expected_change`) and ``hybrid`` (the signal
    where the gate opens, ``expected`` where it stays shut)."""
    added_only, gate = run.get("added_only", False), effective_gate(run)
    for p in run["points"]:
        p["value"] = combine(p["fidelity"], p["copying"], p["texture"], added_only=added_only, explainability=gate)
        p["uncapped"] = combine(p["fidelity"], p["copying"], p["texture"], added_only=added_only)
        if "movement" in p and gate is not None:
            threshold = run.get("gate_threshold") or THRESHOLD
            p["expected"] = expected_change(p["movement"], gate, threshold)
            p["hybrid"] = p["value"] if gate >= threshold else p["expected"]


def expected_change(movement: float, gate: float, threshold: float) -> float:
    """A candidate reading (pre-registered in ``signal_check_movement_preregistration.md``, where it failed:
    +0.39): how far the trained area moved perceptually, signed and scaled by what the gate says R can explain.
    Where R explains nothing (``fidelity_room`` 0) every move counts as harm; at the gate's threshold the sign
    turns; above it moving is credited. 0 at the unadapted model, as the signal is."""
    return movement * (1 - fidelity_room(gate) / fidelity_room(threshold))


def effective_gate(run: dict) -> float | None:
    """The explainability that caps the run's signal (``signal.fidelity_room``): its images' own, or (per image) the
    lower of the image's and its set's (``select.adapt_and_select``'s ``set_explainability``); the gate itself holds
    their lower bounds to the threshold (``gate_opens``)."""
    own, whole = run.get("explainability"), run.get("set_explainability")
    return own if own is None or whole is None else min(own, whole)


def gate_opens(run: dict, confidence: float = CONFIDENCE) -> bool:
    """Whether ``adapt``'s gate opens on the run: the lower confidence bound (``gate.Reading.lower``) of the image's
    reading and of its set's both reach the threshold. A reading recorded without its tiles (before the bound,
    2026-12-02) counts at its value, as ``adapt`` then decided."""
    threshold, own = run.get("gate_threshold", 0), run.get("explainability")
    if threshold <= 0:
        return True
    readings = [(run.get(key), run.get(f"{key}_tiles")) for key in ("explainability", "set_explainability")]
    return own is not None and min(value if tiles is None else Reading(value, tiles).lower(confidence)
                                   for value, tiles in readings if value is not None) >= threshold


def chosen_point(run: dict, confidence: float = CONFIDENCE) -> dict:
    """The point ``adapt`` keeps: step 0 where the gate stays shut (``gate_opens`` at ``confidence``); else the
    lowest signal if it beats the unadapted model by ``min_gain`` of its held-out area (:func:`holdout_area`), else
    step 0."""
    rescore(run)
    points = run["points"]
    if not gate_opens(run, confidence):
        return points[0]
    best = min(points, key=lambda p: p["value"] if math.isfinite(p["value"]) else math.inf)
    return best if best["value"] <= -min_gain(holdout_area(run)) else points[0]


def holdout_area(run: dict) -> int:
    """The LR pixels the run's signal read: recorded since session 31; for older runs, worked out as ``adapt`` held
    out one image of their size for x4plus (no size multiple) with the default 48-px crop (City100's 128 x 192 LR; a
    family's HR crop / 4 square, ``hr_crop`` as :func:`load_runs` stamps it). Whole-set runs, which held out a strip
    of every image, were never recorded by older versions (the summaries score per-image runs)."""
    if "holdout_area" in run:
        return run["holdout_area"]
    side = run.get("hr_crop", 256) // 4
    shape = (128, 192) if run["set"] == "city100" else (side, side)
    return held_out_area(selection_holdout([shape], 48, 1))


def load_runs(path: Path) -> list[dict]:
    """A recorded sample's runs, each stamped with the sample's ``--hr-crop`` (for :func:`holdout_area`)."""
    recorded = json.loads(path.read_text())
    hr_crop = int(recorded.get("args", {}).get("hr_crop", 256))
    return [{"hr_crop": hr_crop, **run} for run in recorded["runs"]]


def summarise(runs: list[dict]) -> dict:
    """Spearman per part (at the last step and over all points), the explainability's own (per run), per-set means
    and what ``adapt``'s decision would give."""
    for r in runs:
        chosen = chosen_point(r)
        r["chosen_step"], r["chosen_lpips_change"] = chosen["step"], chosen["lpips_change"]
    summary: dict = {"runs": len(runs)}
    final_y = [r["points"][-1]["lpips_change"] for r in runs]
    for part in PARTS:  # over the runs that recorded the part (merged older runs lack the departure)
        have = [r for r in runs if part in r["points"][-1]]
        final_x = [r["points"][-1][part] for r in have]
        all_x = [p[part] for r in have for p in r["points"][1:]]
        all_y = [p["lpips_change"] for r in have for p in r["points"][1:]]
        summary[part] = {"spearman_final": spearman(final_x, [r["points"][-1]["lpips_change"] for r in have]),
                         "spearman_all_points": spearman(all_x, all_y), "runs": len(have),
                         **ranked_inside(have, part)}
    strip = [r for r in runs if math.isfinite(r["points"][-1].get("lpips_strip_change", math.nan))]
    summary["strip_truth"] = {"spearman_final": spearman([r["points"][-1]["lpips_strip_change"] for r in strip],
                                                         [r["points"][-1]["lpips_change"] for r in strip]),
                              "runs": len(strip)}
    if all(r.get("explainability") is not None for r in runs):
        summary["explainability"] = {"spearman_final": spearman([r["explainability"] for r in runs], final_y)}
    summary["sets"] = {}
    for set_name in dict.fromkeys(r["set"] for r in runs):
        rs = [r for r in runs if r["set"] == set_name]
        summary["sets"][set_name] = {
            "runs": len(rs), "explainability_median": float(np.median([r.get("explainability") or math.nan
                                                                       for r in rs])),
            "signal_last": float(np.mean([r["points"][-1]["value"] for r in rs])),
            "lpips_change_last": float(np.mean([r["points"][-1]["lpips_change"] for r in rs])),
            "psnr_change_last": float(np.mean([r["points"][-1]["psnr_change"] for r in rs])),
            "lpips_change_kept": float(np.mean([r["chosen_lpips_change"] for r in rs])),
            "adapted": int(sum(r["chosen_step"] > 0 for r in rs))}
    chosen = [r["chosen_lpips_change"] for r in runs]
    summary["selection"] = {"mean_lpips_change_chosen": float(np.mean(chosen)),
                            "mean_lpips_change_last": float(np.mean(final_y)),
                            "worse_than_unadapted_chosen": int(sum(c > WORSE for c in chosen)),
                            "worse_than_unadapted_last": int(sum(c > WORSE for c in final_y)),
                            "adapted_chosen": int(sum(r["chosen_step"] > 0 for r in runs))}
    return summary


def ranked_inside(runs: list[dict], part: str) -> dict[str, float]:
    """Spearman of ``part`` at the last step within each set (the mean over sets of 3 or more runs) and over the
    family runs alone: the within-set ranking a set-level reading cannot give (the set oracle's gap to 1)."""
    def rho(rs: list[dict]) -> float:
        return spearman([r["points"][-1][part] for r in rs], [r["points"][-1]["lpips_change"] for r in rs])
    per_set = [rho(rs) for name in dict.fromkeys(r["set"] for r in runs)
               if len(rs := [r for r in runs if r["set"] == name]) >= 3]
    per_set = [v for v in per_set if math.isfinite(v)]
    return {"spearman_within_sets": float(np.mean(per_set)) if per_set else math.nan,
            "spearman_families": rho([r for r in runs if r["set"] != "city100"])}


def report(summary: dict) -> None:
    print(f"\n{summary['runs']} runs. Spearman rho between each part's change and the true LPIPS change:")
    for part in PARTS:
        s = summary[part]
        print(f"  {part:<9} last step: {s['spearman_final']:+.3f}   all points: {s['spearman_all_points']:+.3f}"
              f"   within sets: {s['spearman_within_sets']:+.3f}   families: {s['spearman_families']:+.3f}"
              f"   ({s['runs']} runs)")
    if "explainability" in summary:
        print(f"  explainability (per run): {summary['explainability']['spearman_final']:+.3f}")
    strip = summary["strip_truth"]
    print(f"  the true change on the held-out strip alone (a perfect held-out reading): "
          f"{strip['spearman_final']:+.3f}   ({strip['runs']} runs)")
    print(f"\n{'set':<14} runs  gate  signal  LPIPS last  PSNR last  LPIPS kept  adapted")
    for name, row in summary["sets"].items():
        print(f"{name:<14} {row['runs']:>4} {row['explainability_median']:5.2f} {row['signal_last']:+7.3f} "
              f"{row['lpips_change_last']:+11.4f} {row['psnr_change_last']:+10.2f} {row['lpips_change_kept']:+11.4f} "
              f"{row['adapted']:>8}")
    sel = summary["selection"]
    print(f"adapt's decision (gate, then best step by the signal): adapted {sel['adapted_chosen']} of "
          f"{summary['runs']} runs; mean LPIPS change {sel['mean_lpips_change_chosen']:+.4f} (last step: "
          f"{sel['mean_lpips_change_last']:+.4f}); runs worse than +0.002: {sel['worse_than_unadapted_chosen']} "
          f"(last step: {sel['worse_than_unadapted_last']})")


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
    ax.set_xscale("symlog", linthresh=0.5)  # the detail terms reach +10 on a few runs; the decisions sit near 0
    ax.set(xlabel="signal change (no HR; lower = predicted better)", ylabel="true LPIPS change vs HR (lower = better)",
           title=f"{len(runs)} adaptation runs, last step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
