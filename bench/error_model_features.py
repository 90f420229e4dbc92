"""Candidate features for R's error model, tried on saved fit samples without rerunning S0: which one removes the
bias on an origin (the resize crops' 0.80) without losing held-out R^2 elsewhere.

    .venv/bin/python bench/fit_error_model.py COPY --save-samples /tmp/s.npz ...   # the ~40-min fit, once
    .venv/bin/python bench/error_model_features.py /tmp/s.npz                       # seconds

Each candidate's columns are added to the shipped features (``reconstruction/error_model.py``) and the model is
refitted on the same rows, then judged on the same held-out rows, per origin, as ``bench/fit_error_model.py``
judges it. The candidates, computed from the saved LR crops' luma unless said otherwise, and why each might tell a
clean downsample (which R reproduces almost exactly) from what only looks like one:
- ``nyquist``: the share of the spectrum's power beyond 3/8 cycles per pixel, horizontally and vertically (log). A
  plain resize keeps (and aliases) detail up to Nyquist; blur, JPEG and demosaicking remove it.
- ``slope``: log power in 3/8-1/2 over 1/4-3/8 cycles per pixel, radially: how the spectrum falls towards Nyquist.
- ``blocks``: JPEG's 8x8 grid, the largest over the 8 phases of the mean step across column (row) boundaries over
  the mean step elsewhere (log): compression that R must reproduce and a clean resize lacks.
- ``chroma``: the chroma's Haar HH energy over the luma's (log): 4:2:0 JPEG and demosaicking blur colour more than
  brightness, a resize does not.
- ``knn``: the mean log error of the 16 nearest fitted samples in E's embedding (cosine; leave-one-out on the fitted
  rows): a non-linear read of the embedding, whose degradation clusters the linear model can only average.
- ``classifier``: the logit of the lookalike classifier below (cross-fitted): whether a non-linear read of "looks
  like ``--origin``" carries what the linear fit misses.
- ``oracle``: each sample's origin, one column per origin: what no user's image carries, the ceiling a feature that
  told the origins apart would reach.
Then the lookalike table (``--origin``, default resize): a logistic classifier of that origin on the shipped
features, cross-fitted over 5 folds (its AUC printed), and per band of its probability the true/predicted error of
the origin's own crops beside the other crops'. If the origin's crops are over-predicted in every band while the
others that look like them are under-predicted, the LR does not carry what sets their error apart, and no feature
of it will.
Writes bench/results/error_model_features_<name>_<device>.json (``--name``; default the NPZ's stem).
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from fit_error_model import heldout_report, print_report, split
from results_dir import results_dir

from lway_engine.reconstruction.error_model import fit_features, haar_hh

EMBED = 512  # E's embedding: the first columns of the saved features
NEIGHBOURS = 16


def _luma(lr: torch.Tensor) -> torch.Tensor:
    return lr.float().mean(1)


def _band_power(lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(power spectrum of the Hann-windowed, mean-free luma, |fx|, |fy|) in cycles per pixel."""
    y = _luma(lr)
    y = y - y.mean((1, 2), keepdim=True)
    n = y.shape[-1]
    window = torch.hann_window(n, periodic=False)
    power = torch.fft.fft2(y * window[:, None] * window[None, :]).abs() ** 2
    f = torch.fft.fftfreq(n).abs()
    return power, f[None, :].expand(n, n), f[:, None].expand(n, n)


def nyquist(lr: torch.Tensor) -> torch.Tensor:
    power, fx, fy = _band_power(lr)
    total = power.sum((1, 2)).clamp_min(1e-12)
    return torch.stack([((power * (fx > 0.375)).sum((1, 2)) / total).clamp_min(1e-9).log(),
                        ((power * (fy > 0.375)).sum((1, 2)) / total).clamp_min(1e-9).log()], dim=1)


def slope(lr: torch.Tensor) -> torch.Tensor:
    power, fx, fy = _band_power(lr)
    radius = (fx**2 + fy**2).sqrt()
    high = (power * ((radius > 0.375) & (radius <= 0.5))).sum((1, 2))
    mid = (power * ((radius > 0.25) & (radius <= 0.375))).sum((1, 2))
    return (high.clamp_min(1e-12) / mid.clamp_min(1e-12)).log()[:, None]


def blocks(lr: torch.Tensor) -> torch.Tensor:
    y = _luma(lr)
    columns = []
    for steps in ((y[..., :, 1:] - y[..., :, :-1]).abs().mean(1), (y[..., 1:, :] - y[..., :-1, :]).abs().mean(2)):
        position = torch.arange(steps.shape[-1])
        ratios = [steps[:, position % 8 == phase].mean(1) / steps[:, position % 8 != phase].mean(1).clamp_min(1e-9)
                  for phase in range(8)]
        columns.append(torch.stack(ratios, 1).max(1).values.log())
    return torch.stack(columns, 1)


def chroma(lr: torch.Tensor) -> torch.Tensor:
    x = lr.float()
    y = x.mean(1, keepdim=True)

    def energy(c: torch.Tensor) -> torch.Tensor:
        return haar_hh(c).pow(2).mean((1, 2, 3))

    colour = energy(x[:, 2:3] - y) + energy(x[:, 0:1] - y)  # Cb- and Cr-like differences from the luma
    return (colour.clamp_min(1e-12) / energy(y).clamp_min(1e-12)).log()[:, None]


def knn(features: torch.Tensor, log_error: torch.Tensor, fitted: torch.Tensor) -> torch.Tensor:
    """Mean log error of the NEIGHBOURS nearest fitted rows by the embedding's cosine, each fitted row leaving
    itself out."""
    e = torch.nn.functional.normalize(features[:, :EMBED].float(), dim=1)
    similarity = e @ e[fitted].T
    similarity[fitted, torch.arange(len(fitted))] = -2.0
    nearest = similarity.topk(NEIGHBOURS, dim=1).indices
    return log_error[fitted][nearest].mean(1, keepdim=True).double()


LR_CANDIDATES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "nyquist": nyquist, "slope": slope, "blocks": blocks, "chroma": chroma}


def logistic(x: torch.Tensor, target: torch.Tensor, ridge: float = 30.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ridge-penalised logistic regression of ``target`` (0/1) on standardised ``x`` (Newton steps): the
    probability function."""
    mean, scale = x.mean(0), x.std(0) + 1e-8

    def design(rows: torch.Tensor) -> torch.Tensor:
        return torch.cat([(rows - mean) / scale, torch.ones(len(rows), 1, dtype=torch.float64)], 1)

    z, w = design(x), torch.zeros(x.shape[1] + 1, dtype=torch.float64)
    penalty = ridge * torch.eye(len(w), dtype=torch.float64)
    penalty[-1, -1] = 0  # the intercept is not shrunk
    for _ in range(30):
        p = torch.sigmoid(z @ w)
        w = w - torch.linalg.solve(z.T @ (z * (p * (1 - p))[:, None]) + penalty, z.T @ (p - target) + penalty @ w)
    return lambda rows: torch.sigmoid(design(rows) @ w)


def cross_fit(x: torch.Tensor, y: torch.Tensor, fit: Callable[[torch.Tensor, torch.Tensor],
              Callable[[torch.Tensor], torch.Tensor]], folds: int = 5) -> torch.Tensor:
    """Each row's prediction by ``fit(x, y)`` fitted on the other folds (rows dealt to folds in turn)."""
    rows, predicted = torch.arange(len(x)), torch.zeros(len(x), dtype=torch.float64)
    for fold in range(folds):
        test = rows % folds == fold
        predicted[test] = fit(x[~test], y[~test])(x[test]).double()
    return predicted


def cross_fitted_probability(x: torch.Tensor, mine: torch.Tensor, folds: int = 5) -> torch.Tensor:
    """Each row's probability of being one of ``mine`` (bool) from a logistic classifier fitted on the other folds."""
    return cross_fit(x, mine.double(), logistic, folds)


def auc(score: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of ``score`` for the ``positive`` rows (rank form; ties broken by order)."""
    ranks = score.argsort().argsort().double() + 1
    n1, n0 = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def lookalike_table(x: torch.Tensor, y: torch.Tensor, mine: torch.Tensor, probability: torch.Tensor,
                    origin: str, folds: int = 5) -> list[dict]:
    """Per band of ``probability`` that a crop is of ``origin`` (``mine``): how many crops of it and of the others
    fall there and each group's true/predicted error under the shipped features' ridge (cross-fitted)."""
    predicted = cross_fit(x, y, lambda xf, yf: fit_features(xf, yf, "", True).predict, folds).log()
    residual, table = y - predicted, []
    for low, high in ((0.0, 0.1), (0.1, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0)):
        band = (probability >= low) & ((probability < high) if high < 1 else (probability <= high))
        row = {"probability": [low, high]}
        for name, group in ((origin, band & mine), ("others", band & ~mine)):
            row[name] = {"samples": int(group.sum()),
                         "true_over_predicted": float(residual[group].mean().exp()) if group.any() else None}
        table.append(row)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", type=Path, help="NPZ from bench/fit_error_model.py --save-samples")
    parser.add_argument("--name", help="results name (default: the NPZ's stem)")
    parser.add_argument("--origin", default="resize", help="the origin whose lookalikes to tabulate")
    args = parser.parse_args()
    saved = np.load(args.samples)
    if "origin" not in saved or "lr" not in saved:
        parser.error(f"{args.samples} has no origins or LR crops: save it again with this version's "
                     "bench/fit_error_model.py --save-samples")
    x, y = torch.from_numpy(saved["features"]), torch.from_numpy(saved["log_error"])
    origins, plain, lr = [str(o) for o in saved["origin"]], int(saved["plain"]), torch.from_numpy(saved["lr"])
    fitted, _ = split(plain, len(y))
    extra = {name: fn(lr).double() for name, fn in LR_CANDIDATES.items()}
    extra["knn"] = knn(x, y, fitted)
    mine = torch.tensor([o == args.origin for o in origins])
    probability = cross_fitted_probability(x, mine)
    extra["classifier"] = torch.logit(probability.clamp(1e-4, 1 - 1e-4))[:, None]
    kinds = sorted(set(origins))
    oracle = torch.tensor([[float(o == kind) for kind in kinds] for o in origins], dtype=torch.float64)
    variants = {"shipped": x, **{name: torch.cat([x, column], 1) for name, column in extra.items()},
                "all": torch.cat([x, *extra.values()], 1), "oracle": torch.cat([x, oracle], 1)}
    results = {}
    for name, features in variants.items():
        print(f"\n== {name}")
        results[name] = heldout_report(features, y, origins, plain, lambda xf, yf: fit_features(xf, yf, "", True))
        print_report(results[name])
    table, separation = lookalike_table(x, y, mine, probability, args.origin), auc(probability, mine)
    print(f"\n{args.origin} lookalikes (cross-fitted classifier, AUC {separation:.3f}): probability band, its crops "
          "and the others, true/predicted")
    for row in table:
        cells = [f"{name} {row[name]['samples']:4d} crops " + (f"{row[name]['true_over_predicted']:.2f}"
                                                              if row[name]["samples"] else "   -")
                 for name in (args.origin, "others")]
        print(f"  {row['probability'][0]:.1f}-{row['probability'][1]:.1f}   " + "   ".join(cells))
    device = f"{platform.machine()}_CPU"
    out = results_dir() / f"error_model_features_{args.name or args.samples.stem}_{device}.json"
    out.write_text(json.dumps({"samples": str(args.samples), "plain": plain, "outliers": len(y) - plain,
                               "device": device, "variants": results,
                               "lookalikes": {"origin": args.origin, "auc": separation, "bands": table}}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
