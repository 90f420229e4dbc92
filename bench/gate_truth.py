"""The explainability gate against its own truth: R's error from the true HR beside the error model's prediction of
it, on the images that chose the gate's threshold and on held-out ones at two LR sizes.

    .venv/bin/python bench/gate_truth.py          # ~10 min on one thread

``adaptation/gate.py`` estimates ``L1(R(S0(LR)), LR) / L1(R(HR, E(LR)), LR)`` per 64-px tile without the HR,
predicting the denominator with the error model (``reconstruction/error_model.py``); with the HR the ratio can be
computed exactly. Per image this takes the median over its tiles (``gate.tile_errors``, the gate's own code) of the
true explainability (``actual / true``), the gate's estimate (``actual / predicted``) and the prediction's bias
(``true / predicted``); per set, the medians over its images, the estimate's lower confidence bound over all their
tiles (``gate.Reading.lower``) and whether that opens the gate (the default candidate's threshold). Sets:
- design: City100 031-038 and Kodak24 kodim01-06 under each family at 64-px LRs (``bench/quality.py --quick``'s
  images), where the threshold was chosen;
- held out: City100 051-056, kodim21-24 at 64- and 128-px LRs (``--hr-crop 512``: where the previous gate opened on
  four families, ``bench/results/signal_check_larger_lr_preregistration.md``).
``--model``: another SR model as S0 (the error model's residual features were fitted on x4plus's outputs).
``--iphone``: only the smartphone City100's pairs 051-058 and 059-066 (``bench/fetched_data.py``), a real camera no
checkpoint nor error model has seen.
Writes bench/results/gate_truth_<ckpt>[_<model>][_iphone]_<device>.json.
"""

from __future__ import annotations

import json
import platform
import statistics

from gate_setup import THRESHOLD, gate_setup
from quality import city100, city100_iphone, family_set
from results_dir import results_dir

from lway_engine.adaptation.gate import Reading, TileError, tile_errors
from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES
from lway_engine.degradations.catalog import CONTROLS
from lway_engine.hardware import cpu_features
from lway_engine.media.images import to_tensor
from lway_engine.metrics.lpips_net import LPIPS


def truth_sets(iphone: bool = False) -> dict[str, list]:
    """The sets the gate is checked on (see the module docstring), by name: (stem, LR, HR) items."""
    if iphone:
        return {"held out: city100_iphone 051-058": city100_iphone(8), "held out: city100_iphone 059-066":
                city100_iphone(8, 8)}
    sets = {"design: city100 031-038": city100(8, 0), "held out: city100 051-056": city100(6, 20)}
    for family in (*EVALUATION_FAMILIES, *UNSEEN_FAMILIES, *CONTROLS):
        sets[f"design: {family} @64px"] = family_set("Kodak24", family, 6, 256, 0)
        for crop in (256, 512):
            sets[f"held out: {family} @{crop // 4}px"] = family_set("Kodak24", family, 4, crop, 20)
    return sets


def image_tiles(model, reconstruction, lpips: LPIPS, lr, hr) -> list[TileError]:
    """The gate's tiles of one (LR, HR) image pair (numpy HWC), with the truth: cropped to a multiple of 4."""
    x = to_tensor(lr).float()
    x = x[..., : x.shape[-2] // 4 * 4, : x.shape[-1] // 4 * 4]
    h = to_tensor(hr).float()[..., : x.shape[-2] * 4, : x.shape[-1] * 4]
    return tile_errors(model, reconstruction, x, lpips, hr=h)


def image_row(model, reconstruction, lpips: LPIPS, stem: str, lr, hr) -> dict:
    """One image's per-tile medians, as the gate reads them, beside the truth."""
    tiles = image_tiles(model, reconstruction, lpips, lr, hr)
    return {"image": stem, "size": [int(lr.shape[0]) // 4 * 4, int(lr.shape[1]) // 4 * 4], "tiles": len(tiles),
            "true_explainability": statistics.median(t.actual / t.true for t in tiles),
            "gate_estimate": statistics.median(t.actual / t.predicted for t in tiles),
            "prediction_bias": statistics.median(t.true / t.predicted for t in tiles),
            "actual": statistics.median(t.actual for t in tiles), "true": statistics.median(t.true for t in tiles),
            "predicted": statistics.median(t.predicted for t in tiles)}


def main() -> None:
    args, model, reconstruction = gate_setup(__doc__, (("--iphone", dict(action="store_true", help="only the "
                                                                          "smartphone City100 (fetched)")),))
    lpips = LPIPS("alex")
    sets = truth_sets(args.iphone)
    results = {}
    print(f"gate threshold {THRESHOLD:g}\n{'set':<36} {'true expl.':>10} {'gate est.':>10} {'its bound':>10} "
          f"{'true/pred':>10} {'gate':>6}   per image: estimate")
    for name, items in sets.items():
        rows = [image_row(model, reconstruction, lpips, stem, lr, hr) for stem, lr, hr in items]
        s = {key: statistics.median(r[key] for r in rows)
             for key in ("true_explainability", "gate_estimate", "prediction_bias")}
        # the set's reading as gate.explainability pools it (its estimate is s["gate_estimate"]); adapt holds its
        # bound to the threshold
        bound = Reading.pooled([Reading(r["gate_estimate"], r["tiles"]) for r in rows]).lower()
        results[name] = {"images": rows, **s, "gate_bound": bound, "opens": bound >= THRESHOLD}
        print(f"{name:<36} {s['true_explainability']:>10.2f} {s['gate_estimate']:>10.2f} {bound:>10.2f} "
              f"{s['prediction_bias']:>10.2f} {'open' if results[name]['opens'] else 'shut':>6}   "
              + " ".join(f"{r['gate_estimate']:.2f}" for r in rows), flush=True)
    device = f"{platform.machine()}_CPU"
    model_tag = "" if args.model == "realesrgan-x4plus" else f"_{args.model}"
    out = results_dir() / f"gate_truth_{args.reconstructor.stem}{model_tag}{'_iphone' * args.iphone}_{device}.json"
    out.write_text(json.dumps({"reconstructor": str(args.reconstructor), "model": args.model, "device": device,
                               "threshold": THRESHOLD,
                               "error_model_sr_model": reconstruction.error_model.sr_model,
                               "cpu": cpu_features().as_dict(), "args": vars(args), "results": results},
                              indent=1, default=str))
    print(f"written {out}")


if __name__ == "__main__":
    main()
