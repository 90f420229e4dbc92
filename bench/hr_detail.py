"""Does a run's true LPIPS change follow how detailed the unadapted output is *relative to its HR*?

    .venv/bin/python bench/hr_detail.py        # the per-image samples of today's default (~6 min on 2 threads)

Why: the no-HR signal ranks runs inside the degradation families the wrong way on one sample and the right way on
the next (``signal_check_history.md``), and forced adaptation of the same families hurt on Kodak24 crops and helped on
Sun_Hays80 crops (``signal_check_whole_set_today_preregistration.md``). Adaptation moves S towards LR fidelity and
away from its GAN texture. That helps where S0 paints more detail above the LR's Nyquist frequency than the HR holds
and hurts where it paints less, and the HR's detail at those frequencies is exactly what the LR cannot show.

For every run of the recorded per-image samples of today's default (``gate_redecide.SAMPLES``) this rebuilds the
run's LR and HR, upscales the LR with x4plus (S0) and records:

- ``ratio_textured`` / ``ratio_flat``: log of S0's detail energy above the LR's Nyquist frequency over the HR's, in
  the areas the LR's HF map calls textured / flat (``signal.area_detail``): > 0, S0 is more detailed than its HR;
  an oracle reading, it needs the HR;
- ``gap_s0``: the spectral gap of S0's output (``signal_probes.spectral_gap``: its power above the LR's Nyquist
  against the power law of its lower band), a reading of the same question from the LR alone;
- the run's true LPIPS change at its last step and the shipped signal there; its true PSNR-Y change (what an LR
  fidelity reading would at best recover) and S0's LPIPS, both oracle readings too;
- ``departure``: how far the run moved its output from S0's (LPIPS(S, S0), recorded by the run), and
  ``expected_change`` = -ratio_textured x departure: the change if moving away from S0 helped in proportion to how
  much S0 out-paints its HR, the best guess this account of the sign allows (an oracle reading).

Reports per HR source the mean ratio and true change, the Spearman correlations of the true change with the ratio
(pooled, per family across sources, inside each sample's families) and how well ``gap_s0`` tracks the ratio. Writes
bench/results/hr_detail_<device>.json.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
from collections import defaultdict

import numpy as np
import torch
from gate_redecide import FAMILY_HR_SETS, RECORDED, SAMPLES, family_places, pair_of
from quality import upscale_all
from results_dir import results_dir
from signal_check import WORSE, load_runs, spearman
from signal_probes import spectral_gap

from lway_engine.adaptation.signal import area_detail
from lway_engine.media.images import to_tensor
from lway_engine.models import LoadedModel, load_model


def readings(model: LoadedModel, lr: torch.Tensor, hr: np.ndarray) -> dict[str, float]:
    """S0's detail relative to the HR's (flat and textured areas) and S0's spectral gap, for one LR/HR pair (floats
    in [0, 1], as ``pair_of`` gives them)."""
    sr = upscale_all(model, [("", lr.numpy().transpose(1, 2, 0), hr)])[0]
    (s0_flat, s0_textured), (hr_flat, hr_textured) = (area_detail(to_tensor(x[..., :3]), lr[None], 4)
                                                      for x in (sr, hr))
    return {"ratio_textured": math.log(s0_textured / hr_textured), "ratio_flat": math.log(s0_flat / hr_flat),
            "gap_s0": spectral_gap(sr)}


def source_of(run: dict) -> str:
    """Where the run's HR comes from: City100, or the family image's HR set."""
    return "City100" if run["set"] == "city100" else family_places()[run["image"]][0]


def main() -> None:
    model = load_model("realesrgan-x4plus")
    rows = []
    for stem in SAMPLES:
        runs = load_runs(RECORDED / f"{stem}_x86_64_CPU.json")
        for run in runs:
            lr, hr = pair_of(run["set"], run["image"], run["hr_crop"])
            last, found = run["points"][-1], readings(model, lr, hr)
            rows.append({"sample": stem.removeprefix("signal_check_per_image_cross0.3").lstrip("_") or "cross0.3",
                         "set": run["set"], "image": run["image"], "source": source_of(run),
                         "hr_crop": run["hr_crop"], "lpips_change": last["lpips_change"], "signal": last["value"],
                         "psnr_change": last["psnr_change"], "lpips_before": last["lpips"] - last["lpips_change"],
                         "departure": last["departure"], **found,
                         "expected_change": -found["ratio_textured"] * last["departure"]})
        print(f"{stem}: {len(runs)} runs", flush=True)
    families = [r for r in rows if r["set"] != "city100"]

    def rho(rs: list[dict], key: str, against: str = "lpips_change") -> float:
        return spearman([r[key] for r in rs], [r[against] for r in rs])

    by_source = {}
    for source in ("City100", *FAMILY_HR_SETS):
        rs = [r for r in rows if r["source"] == source]
        if rs:
            by_source[source] = {
                "runs": len(rs), "ratio_textured_mean": statistics.fmean(r["ratio_textured"] for r in rs),
                "ratio_flat_mean": statistics.fmean(r["ratio_flat"] for r in rs),
                "gap_s0_mean": statistics.fmean(r["gap_s0"] for r in rs),
                "lpips_change_mean": statistics.fmean(r["lpips_change"] for r in rs),
                "worse": sum(r["lpips_change"] > WORSE for r in rs),
                "better": sum(r["lpips_change"] < -WORSE for r in rs)}
    by_family = defaultdict(list)
    for r in families:
        by_family[r["set"]].append(r)
    per_family = {name: {"runs": len(rs), **{key: rho(rs, key) for key in ("ratio_textured", "ratio_flat", "signal")}}
                  for name, rs in sorted(by_family.items())}
    groups = defaultdict(list)
    for r in families:
        groups[(r["sample"], r["set"])].append(r)
    inside = {key: statistics.fmean(v for v in (rho(rs, key) for rs in groups.values() if len(rs) >= 3)
                                    if math.isfinite(v))
              for key in ("ratio_textured", "signal", "psnr_change", "lpips_before", "departure", "expected_change")}
    summary = {"runs": len(rows), "family_runs": len(families), "by_source": by_source, "per_family": per_family,
               "spearman_family_runs": {key: rho(families, key) for key in ("ratio_textured", "ratio_flat", "gap_s0",
                                                                            "signal", "psnr_change", "departure",
                                                                            "expected_change")},
               "spearman_all_runs": {key: rho(rows, key) for key in ("ratio_textured", "signal", "expected_change")},
               "mean_spearman_inside_sample_families": inside,
               "gap_s0_tracks_ratio_textured": rho(families, "gap_s0", "ratio_textured")}

    print(f"\n{'source':<11} {'runs':>5} {'S0/HR textured':>15} {'S0/HR flat':>11} {'gap S0':>7} {'LPIPS':>8} "
          f"{'worse':>6} {'better':>7}")
    for source, s in by_source.items():
        print(f"{source:<11} {s['runs']:>5} {s['ratio_textured_mean']:>+15.2f} {s['ratio_flat_mean']:>+11.2f} "
              f"{s['gap_s0_mean']:>+7.2f} {s['lpips_change_mean']:>+8.4f} {s['worse']:>6} {s['better']:>7}")
    print(f"\nSpearman with the true LPIPS change over {len(families)} family runs: "
          + ", ".join(f"{k} {v:+.2f}" for k, v in summary["spearman_family_runs"].items()))
    print("per family (across sources): " + "; ".join(
        f"{name} {f['ratio_textured']:+.2f} (signal {f['signal']:+.2f})" for name, f in per_family.items()))
    print("mean inside each sample's families: " + ", ".join(f"{k} {v:+.2f}" for k, v in inside.items()))
    print(f"gap_s0 against the textured ratio (can the LR alone tell?): "
          f"{summary['gap_s0_tracks_ratio_textured']:+.2f}")
    device = f"{platform.machine()}_CPU"
    path = results_dir() / f"hr_detail_{device}.json"
    path.write_text(json.dumps({"device": device, "samples": list(SAMPLES), "summary": summary, "runs": rows},
                               indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
