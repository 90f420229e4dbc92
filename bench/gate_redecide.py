"""``adapt``'s decisions on the recorded per-image samples of ``bench/signal_check.py``, re-made with today's gate.

    .venv/bin/python bench/gate_redecide.py          # the eleven samples of today's default candidate (~13 min)

Why: the samples' runs trained the default candidate past the gate and recorded, at every signal evaluation, the
signal's parts and the true LPIPS change against the HR. The training does not depend on the gate (its value only
caps the fidelity credit in the signal, which is recomputed from the recorded parts), so the decision ``adapt``
would make with another gate can be re-made exactly: compute today's explainability for each run's image and for
its set (the sample's images of that set; ``adapt --per-image`` takes the lower), then apply today's threshold and
``signal_check.chosen_point``. Prints, per sample and set, what ``adapt`` keeps under the gate the sample ran with
("then"), under today's deciding on its value ("point") and on its lower confidence bound ("now", as ``adapt``
does; ``gate.Reading.lower``), with the true LPIPS change of the kept weights. Writes
bench/results/gate_redecide_<device>.json.
"""

from __future__ import annotations

import copy
import functools
import json
import platform
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from gate_setup import THRESHOLD, gate_setup
from quality import city100, family_set, hr_images
from results_dir import results_dir
from signal_check import WORSE, chosen_point, load_runs

from lway_engine.adaptation.gate import CONFIDENCE, Reading, explainability, gate_sample
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.metrics.lpips_net import LPIPS

RECORDED = Path(__file__).resolve().parent / "results"
# the samples of today's default candidate (each file's --hr-crop, stamped on its runs by load_runs, sizes its LRs)
SAMPLES = ("signal_check_per_image_cross0.3", "signal_check_per_image_cross0.3_fresh",
           "signal_check_per_image_cross0.3_next", "signal_check_per_image_cross0.3_larger_lr",
           "signal_check_per_image_cross0.3_movement", "signal_check_per_image_cross0.3_niqe",
           "signal_check_per_image_cross0.3_resize2", "signal_check_per_image_cross0.3_confidence",
           "signal_check_per_image_cross0.3_confidence5a", "signal_check_per_image_cross0.3_confidence5b",
           "signal_check_per_image_cross0.3_texture_loss")
# where the samples' family images come from (runs record only the stem)
FAMILY_HR_SETS = ("Kodak24", "CBSD68", "Sun_Hays80")


@functools.cache
def family_places() -> dict[str, tuple[str, int]]:
    """Each family image's stem -> (its HR set in FAMILY_HR_SETS, the first that has it; its place there), listed
    once."""
    return {path.stem: (name, k) for name in reversed(FAMILY_HR_SETS) for k, path in enumerate(hr_images(name))}


def pair_of(set_name: str, image: str, hr_crop: int) -> tuple[torch.Tensor, np.ndarray]:
    """The run's LR (a tensor) and HR (an HxWx3 array), rebuilt as signal_check built them: City100 pair by number,
    a family image (found by its stem in FAMILY_HR_SETS) by its place in its set, which sets its seed."""
    if set_name == "city100":
        (_, lr, hr), = city100(1, int(image) - 31)
    else:
        hr_set, k = family_places()[image]
        (_, lr, hr), = family_set(hr_set, set_name, 1, hr_crop, k)
    return torch.from_numpy(lr.transpose(2, 0, 1).copy()), hr


def decide(run: dict, own: Reading, whole: Reading, threshold: float, confidence: float) -> dict:
    """The point ``adapt`` keeps with these gate readings, threshold and confidence (``gate.Reading.lower``)."""
    run = copy.deepcopy(run)
    run.update(explainability=own.value, explainability_tiles=own.tiles, set_explainability=whole.value,
               set_explainability_tiles=whole.tiles, gate_threshold=threshold)
    return chosen_point(run, confidence)


def tally(rows: list[dict], key: str) -> dict:
    kept = [r[key] for r in rows if r[key + "_step"] > 0]
    return {"adapted": len(kept), "kept_lpips_change": sum(r[key] for r in rows) / len(rows),
            "kept_worse": sum(k > WORSE for k in kept), "kept_better": sum(k < -WORSE for k in kept)}


KEYS = ("then", "point", "now")  # as recorded; today's gate at its value (no bound); today's gate at its bound


def main() -> None:
    args, model, reconstruction = gate_setup(__doc__, (("--confidence", {
        "type": float, "default": CONFIDENCE, "help": f"the bound's standard errors (default {CONFIDENCE:g}, as "
        "adapt decides); the 'point' columns decide at 0, on the gate's value itself"}),))
    if args.model != "realesrgan-x4plus":
        raise SystemExit("the recorded samples adapted realesrgan-x4plus: their decisions need its gate")
    loss = LWayLoss(LPIPS("alex"))
    out, pooled = {}, defaultdict(list)
    for stem in SAMPLES:
        runs = load_runs(RECORDED / f"{stem}_x86_64_CPU.json")
        hr_crop = runs[0]["hr_crop"]
        own = {(r["set"], r["image"]): explainability(
            model, reconstruction, [pair_of(r["set"], r["image"], hr_crop)[0]], loss) for r in runs}
        by_set = defaultdict(list)
        for (set_name, _), reading in own.items():
            by_set[set_name].append(reading)
        # gate.explainability over a set pools the readings of the images gate_sample picks, in the run order
        whole = {set_name: Reading.pooled(gate_sample(readings)) for set_name, readings in by_set.items()}
        rows = []
        for r in runs:
            image, set_reading = own[(r["set"], r["image"])], whole[r["set"]]
            row = {"set": r["set"], "image": r["image"], "then_gate": r["explainability"],
                   "then_set_gate": r["set_explainability"], "then_threshold": r["gate_threshold"],
                   "now_gate": image.value, "now_gate_bound": image.lower(args.confidence), "now_tiles": image.tiles,
                   "now_set_gate": set_reading.value, "now_set_gate_bound": set_reading.lower(args.confidence),
                   "now_set_tiles": set_reading.tiles}
            for key, point in (("then", chosen_point(copy.deepcopy(r))),
                               ("point", decide(r, image, set_reading, THRESHOLD, 0.0)),
                               ("now", decide(r, image, set_reading, THRESHOLD, args.confidence))):
                row.update({key: point["lpips_change"], f"{key}_step": point["step"]})
            rows.append(row)
        sets = {}
        print(f"\n{stem} (families' HR crop {hr_crop}: {hr_crop // 4}-px LRs)\n{'set':<14} {'gate then':>9} "
              f"{'gate now':>9} {'(bound)':>8} " + " ".join(f"{'kept ' + k:>10}" for k in KEYS) + " "
              + " ".join(f"{'LPIPS ' + k:>11}" for k in KEYS))
        for set_name in dict.fromkeys(r["set"] for r in rows):
            rs = [r for r in rows if r["set"] == set_name]
            sets[set_name] = {**{k: tally(rs, k) for k in KEYS}, "set_gate_then": rs[0]["then_set_gate"],
                              "set_gate_now": rs[0]["now_set_gate"], "set_gate_bound": rs[0]["now_set_gate_bound"]}
            s = sets[set_name]
            print(f"{set_name:<14} {s['set_gate_then']:>9.2f} {s['set_gate_now']:>9.2f} {s['set_gate_bound']:>8.2f} "
                  + " ".join(f"{s[k]['adapted']:>10}" for k in KEYS) + " "
                  + " ".join(f"{s[k]['kept_lpips_change']:>+11.4f}" for k in KEYS))
        total = {k: tally(rows, k) for k in KEYS}
        print(f"{'all':<14} {'':>9} {'':>9} {'':>8} " + " ".join(f"{total[k]['adapted']:>10}" for k in KEYS) + " "
              + " ".join(f"{total[k]['kept_lpips_change']:>+11.4f}" for k in KEYS) + "   kept worse: "
              + ", ".join(f"{total[k]['kept_worse']} {k}" for k in KEYS), flush=True)
        out[stem] = {"hr_crop": hr_crop, "runs": rows, "sets": sets, "all": total}
        pooled["64" if hr_crop == 256 else "128"] += rows
    summary = {size: {**{k: tally(rows, k) for k in KEYS}, "runs": len(rows)} for size, rows in pooled.items()}
    for size, s in summary.items():
        print(f"pooled, {size}-px family LRs ({s['runs']} runs): " + "; ".join(
            f"{k}: adapted {s[k]['adapted']}, kept LPIPS {s[k]['kept_lpips_change']:+.4f}, kept worse "
            f"{s[k]['kept_worse']}, kept better {s[k]['kept_better']}" for k in KEYS))
    device = f"{platform.machine()}_CPU"
    path = results_dir() / f"gate_redecide_{device}.json"
    path.write_text(json.dumps({"device": device, "threshold": THRESHOLD, "confidence": args.confidence,
                                "reconstructor": str(args.reconstructor), "samples": out, "pooled": summary},
                               indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
