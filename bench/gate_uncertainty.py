"""Would the error model's own uncertainty shut the gate where it is wrong? A probe (2026-12-02: it would not).

    .venv/bin/python bench/fit_error_model.py lway_engine/assets/lway-er-x4.safetensors --save-samples S.npz
    .venv/bin/python bench/gate_uncertainty.py S.npz        # ~10 min on one thread, after the ~30-min fit above

The gate reads 1.59 on halftone_scan's design sample, whose truth is 1.03 (``gate_truth.py``): the error model
under-predicts R's error on a type R never saw. Read as a Bayesian regression (prior on the weights N(0,
sigma^2 / ridge)), the ridge fit has a posterior spread of its log prediction on a tile's standardised features z,

    spread = sigma * sqrt(z^T (Z^T Z + ridge I)^-1 z)     (Z: the fitted samples, sigma: their residual spread)

large where a tile lies off the samples the model was fitted on. A gate that divides by the prediction raised by k
spreads (an upper bound on R's error) would shut where the model is unsure, if unseen types are where it is unsure.
Per set of ``gate_truth.py``: the median spread over tiles and the gate's estimate at k = 0-3, beside the truth.
``S.npz`` must hold the samples of the checkpoint's own sidecar (checked: the refit must give its weights).
Writes bench/results/gate_uncertainty_<device>.json.
"""

from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path

import numpy as np
import torch
from gate_setup import THRESHOLD, gate_setup
from gate_truth import image_tiles, truth_sets
from results_dir import results_dir

from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.reconstruction.error_model import RIDGE, ErrorModel, fit_features

SPREADS = (0, 1, 2, 3)  # k: how many posterior spreads the prediction is raised by


def posterior(model: ErrorModel, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
    """((Z^T Z + RIDGE I)^-1, sigma) of ``model`` refitted on its samples ``x`` (features) and ``y`` (log error)."""
    z = (x - model.mean) / model.scale
    precision = torch.linalg.inv(z.T @ z + RIDGE * torch.eye(z.shape[1], dtype=torch.float64))
    residual = y - torch.log(model.predict(x).double())
    return precision, float(residual.std())


def spread(model: ErrorModel, precision: torch.Tensor, sigma: float, row: torch.Tensor) -> float:
    """The posterior spread of the log prediction on one tile's feature ``row``."""
    z = (row.double() - model.mean) / model.scale
    return sigma * float(z @ precision @ z) ** 0.5


def main() -> None:
    args, model, reconstruction = gate_setup(
        __doc__, (("samples", {"type": Path, "help": "the --save-samples NPZ of the sidecar"}),))
    shipped = reconstruction.error_model
    data = np.load(args.samples)
    x, y = torch.from_numpy(data["features"]), torch.from_numpy(data["log_error"])
    refit = fit_features(x, y, shipped.checkpoint_sha256, shipped.colour_fit)
    if not torch.allclose(refit.weights, shipped.weights, atol=1e-9):
        raise SystemExit(f"{args.samples} are not the samples {args.reconstructor}'s error model was fitted on")
    precision, sigma = posterior(refit, x, y)
    lpips = LPIPS("alex")
    results = {}
    print(f"residual sigma {sigma:.3f}; threshold {THRESHOLD:g}\n{'set':<36} {'truth':>6} {'spread':>7} "
          + " ".join(f"{'k=' + str(k):>6}" for k in SPREADS))
    for name, items in truth_sets().items():
        images = []
        for _, lr, hr in items:
            tiles = image_tiles(model, reconstruction, lpips, lr, hr)
            spreads = [spread(refit, precision, sigma, t.features) for t in tiles]
            images.append({"truth": statistics.median(t.actual / t.true for t in tiles),
                           "spread": statistics.median(spreads),
                           "estimate": {k: statistics.median(t.actual / (t.predicted * np.exp(k * s))
                                                             for t, s in zip(tiles, spreads)) for k in SPREADS}})
        row = {"truth": statistics.median(i["truth"] for i in images),
               "spread": statistics.median(i["spread"] for i in images),
               "estimate": {k: statistics.median(i["estimate"][k] for i in images) for k in SPREADS}}
        results[name] = {**row, "images": images}
        print(f"{name:<36} {row['truth']:>6.2f} {row['spread']:>7.3f} "
              + " ".join(f"{row['estimate'][k]:>6.2f}" for k in SPREADS), flush=True)
    device = f"{platform.machine()}_CPU"
    out = results_dir() / f"gate_uncertainty_{device}.json"
    out.write_text(json.dumps({"reconstructor": str(args.reconstructor), "model": args.model, "sigma": sigma,
                               "threshold": THRESHOLD, "spreads": SPREADS, "results": results}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
