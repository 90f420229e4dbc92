"""The explainability gate against its own truth, at two LR sizes: R's error from the true HR beside the error
model's prediction of it.

    .venv/bin/python bench/gate_truth.py                     # kodim21-24 per family at 64- and 128-px LRs (~8 min)

``adaptation/gate.py`` estimates ``L(R(S0(LR)), LR) / L(R(HR, E(LR)), LR)`` without the HR, predicting the
denominator with the error model (``reconstruction/error_model.py``, fitted on 64-px LR crops). With the HR the
ratio can be computed exactly. Per set this prints the median of: the true explainability (``s0 / true``), the
gate's estimate (``s0 / predicted``) and the prediction's bias (``true / predicted``), with the raw losses (flat
LWay loss, L1 + LPIPS-alex, as the gate uses), and R's true error split into L1 and LPIPS, for the whole LR and
averaged over its four corner 64-px tiles (the error model's fitting size; LRs above 64 px). Why: on 128-px
family LRs the gate opened on four families and ``adapt`` kept seven runs that made LPIPS worse
(``bench/results/signal_check_larger_lr_preregistration.md``); this says whether the gate's idea or its estimate
failed there.
Writes bench/results/gate_truth_<ckpt>_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import numpy as np
import torch
from quality import city100, family_set
from results_dir import results_dir

from lway_engine.adaptation.gate import unadapted_error
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES
from lway_engine.hardware import cpu_features
from lway_engine.media.images import to_tensor
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import load_model
from lway_engine.reconstruction import load_checkpoint

TILE = 64  # LR px: the crops the error model was fitted on (bench/fit_error_model.py)

def losses(model, reconstruction, loss: LWayLoss, lr: np.ndarray, hr: np.ndarray) -> dict[str, float]:
    """R's loss from S0's output and the error model's prediction, as the gate computes them
    (``gate.unadapted_error``), beside R's loss from the true HR."""
    x = to_tensor(lr).float()
    x = x[..., : x.shape[-2] // 4 * 4, : x.shape[-1] // 4 * 4]
    h = to_tensor(hr).float()[..., : x.shape[-2] * 4, : x.shape[-1] * 4]
    s0, predicted = unadapted_error(model, reconstruction, x, loss)
    whole = true_error(reconstruction, loss, x, h)
    row = {"true": whole["total"], "s0": s0, "predicted": predicted, "true_l1": whole["l1"],
           "true_lpips": whole["lpips"]}
    if min(x.shape[-2:]) > TILE:  # the same content as four corner tiles (overlapping) of the error model's size
        tiles = [true_error(reconstruction, loss, x[..., t : t + TILE, c : c + TILE],
                            h[..., 4 * t : 4 * (t + TILE), 4 * c : 4 * (c + TILE)])
                 for t in (0, x.shape[-2] - TILE) for c in (0, x.shape[-1] - TILE)]
        row |= {f"tiles_{part}": float(np.mean([t[part] for t in tiles])) for part in ("total", "l1", "lpips")}
    return row


def true_error(reconstruction, loss: LWayLoss, x: torch.Tensor, h: torch.Tensor) -> dict[str, float]:
    """R's loss (total, l1, lpips) from the true HR ``h`` for the LR ``x``, with the LR's own embedding."""
    with torch.no_grad():
        styles = reconstruction.reconstructor.prepare(reconstruction.encoder(x))
        terms = loss(reconstruction.reconstructor(h, styles=styles, reference=x), x)
    return {"total": float(terms.total), "l1": float(terms.l1), "lpips": float(terms.lpips)}


def summary(rows: list[dict]) -> dict[str, float]:
    """Per-set medians of the ratios and losses (and of the tiles' true error, where measured)."""
    def median(f) -> float:
        return float(statistics.median(f(r) for r in rows))

    out = {"true_explainability": median(lambda r: r["s0"] / r["true"]),
           "gate_estimate": median(lambda r: r["s0"] / r["predicted"]),
           "prediction_bias": median(lambda r: r["true"] / r["predicted"]),
           **{key: median(lambda r, k=key: r[k]) for key in ("true", "predicted", "s0", "true_l1", "true_lpips")}}
    if all("tiles_total" in r for r in rows):
        out |= {key: median(lambda r, k=key: r[k]) for key in ("tiles_total", "tiles_l1", "tiles_lpips")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reconstructor", type=Path, default=Path(DEFAULT_RECONSTRUCTOR))
    parser.add_argument("--hr-crops", type=int, nargs="+", default=[256, 512],
                        help="centre crops of the families' Kodak24 HR (LR side: a quarter)")
    parser.add_argument("--per-set", type=int, default=4, help="Kodak24 images per family")
    parser.add_argument("--offset", type=int, default=20, help="skip this many Kodak24 images (20: kodim21-24)")
    parser.add_argument("--city100", type=int, default=6, help="City100 pairs from 031 + offset")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model("realesrgan-x4plus")
    reconstruction = load_checkpoint(args.reconstructor, expect_scale=4)
    if reconstruction.error_model is None:
        raise SystemExit(f"{args.reconstructor} has no error model: run bench/fit_error_model.py on it first")
    loss = LWayLoss(LPIPS("alex"), hf_weight=False)
    sets = {"city100": city100(args.city100, args.offset)}
    for family in (*EVALUATION_FAMILIES, *UNSEEN_FAMILIES):
        for crop in args.hr_crops:
            sets[f"{family} @{crop // 4}px"] = family_set("Kodak24", family, args.per_set, crop, args.offset)
    results = {}
    print(f"{'set':<24} {'true expl.':>10} {'gate est.':>10} {'true/pred':>10} {'true':>8} {'pred':>8} {'s0':>8}"
          f"  true L1 / LPIPS, whole image vs its 64-px tiles")
    for name, items in sets.items():
        rows = [{"image": stem, **losses(model, reconstruction, loss, lr, hr)} for stem, lr, hr in items]
        results[name] = {"images": rows, **summary(rows)}
        s = results[name]
        print(f"{name:<24} {s['true_explainability']:>10.2f} {s['gate_estimate']:>10.2f} {s['prediction_bias']:>10.2f} "
              f"{s['true']:>8.4f} {s['predicted']:>8.4f} {s['s0']:>8.4f}  {s['true_l1']:.4f} / {s['true_lpips']:.4f}"
              + (f" vs {s['tiles_l1']:.4f} / {s['tiles_lpips']:.4f}" if "tiles_l1" in s else ""), flush=True)
    device = f"{platform.machine()}_CPU"
    out = results_dir() / f"gate_truth_{args.reconstructor.stem}_{device}.json"
    out.write_text(json.dumps({"reconstructor": str(args.reconstructor), "device": device,
                               "cpu": cpu_features().as_dict(), "args": vars(args), "results": results},
                              indent=1, default=str))
    print(f"written {out}")


if __name__ == "__main__":
    main()
