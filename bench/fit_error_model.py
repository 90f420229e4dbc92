"""Fit R's error model (``lway_engine/reconstruction/error_model.py``) for a checkpoint; writes its sidecar.

    .venv/bin/python bench/fit_error_model.py lway_engine/assets/lway-er-x4.safetensors   # ~30 min, 2 threads

The samples are the pretraining's: 64 px LR crops from the training split only (Urban100_HR_jpeg, Manga109_HR_jpeg,
Sun_Hays80 files 1-40, City100 pairs 001-030; as bench/pretrain_broad.sh; ``--pairs`` adds other real pairs the
checkpoint trained on), synthetic LR from the training mix (``--mix``: the one the checkpoint was trained on, as
``pretrain --mix`` takes it) and 30% real pairs, seeded. Each crop goes through the SR model S0 (x4plus by default:
its outputs are what the residual features describe, about 1.5 s a crop on the CPU), E, R and LPIPS once.
``--outliers`` more samples (300 by default) carry a defect that no training pipeline makes
(``lway_engine/degradations/outliers.py``: impulse noise, banding, scratches), so that the model also learns what
R's error looks like where R fails; without them it predicted R's usual small error on the unseen gif_palette and
the gate opened there. The last 20% of each kind of sample are held out to report R^2 before the final fit on all of
them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from quality import DATA
from results_dir import results_dir
from training_split import city100_hr_files, hr_files

from lway_engine.degradations.catalog import parse_mix
from lway_engine.degradations.outliers import OUTLIERS, add_outlier
from lway_engine.hardware import cpu_features
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import load_model
from lway_engine.reconstruction import load_checkpoint
from lway_engine.reconstruction.checkpoint import read_checkpoint_info
from lway_engine.reconstruction.error_model import TILE, error_samples, fit_features, sidecar
from lway_engine.training.data import PairSource, find_pairs

REAL_FRACTION = 0.3  # of the samples, real City100 pairs (the rest synthetic from the mix)


def training_source(mix: dict[str, float] | None = None, pairs: tuple[Path, ...] = ()) -> PairSource:
    """The training split's images; ``pairs``: more real pairs' HR files beside City100's 001-030, e.g. the
    smartphone City100's 001-050 (drawn camera by camera, as pretraining draws them). A camera the checkpoint did
    not train on still belongs here: it teaches the error model how large R's error is on a camera R has not
    learnt, where the bundled model under-predicted it by 1.3x and the gate over-read phone photos."""
    return PairSource.load(hr_files(DATA), find_pairs([*city100_hr_files(DATA), *pairs], 4), 4, min_hr_side=256,
                           pipelines=mix)


def outlier_pairs(source: PairSource, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` training samples whose LR also carries one of the OUTLIERS defects, in turn; seeded apart from
    the plain samples, so adding them leaves those unchanged."""
    rng, kinds = np.random.default_rng([seed, 1]), list(OUTLIERS)
    pairs = []
    for i in range(count):
        hr, lr = source.sample(rng, TILE, REAL_FRACTION)[:2]
        pairs.append((hr, add_outlier(lr, kinds[i % len(kinds)], rng)))
    return pairs


def r_squared(predicted: torch.Tensor, target: torch.Tensor) -> float:
    return 1 - float(torch.mean((predicted - target) ** 2) / torch.var(target, correction=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--sr-model", default="realesrgan-x4plus", help="S0: the SR model the gate will judge")
    parser.add_argument("--outliers", type=int, default=300,
                        help="samples more whose LR carries a defect R never saw (impulse, banding, scratches)")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--colour", choices=("fitted", "predicted"), default="fitted",
                        help="R's colour mode to fit the errors under (adapt's default: fitted to the LR)")
    parser.add_argument("--mix", type=parse_mix, metavar="NAME=ODDS,...",
                        help="synthetic pipelines and odds the checkpoint was trained on (default: TRAINING_MIX)")
    parser.add_argument("--pairs", type=Path, nargs="*", default=(), metavar="HR",
                        help="more real pairs' HR files (NNNH.png, the LR beside it): a camera's training pairs, "
                             "whether or not the checkpoint trained on them")
    parser.add_argument("--save-samples", type=Path, metavar="NPZ",
                        help="also write the fitted samples' features and log errors here (keep it outside the repo)")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    sidecar(args.checkpoint).unlink(missing_ok=True)  # a stale one would be refused by load_checkpoint
    reconstruction = load_checkpoint(args.checkpoint, expect_scale=4)
    reconstruction.reconstructor.colour_fit = args.colour == "fitted"
    source, rng = training_source(args.mix, tuple(args.pairs)), np.random.default_rng(args.seed)
    pairs = [source.sample(rng, TILE, REAL_FRACTION)[:2] for _ in range(args.samples)]
    pairs += outlier_pairs(source, args.outliers, args.seed)
    sha = read_checkpoint_info(args.checkpoint).content_sha256
    sr_model = load_model(args.sr_model)
    x, y = error_samples(reconstruction, sr_model.module, tqdm(pairs, desc="error samples", unit="crop"),
                         LPIPS("alex"))
    if args.save_samples:  # the half hour above, kept for refitting variants (bench/gate_uncertainty.py)
        np.savez(args.save_samples, features=x.numpy(), log_error=y.numpy(), plain=args.samples)
    parts = {"plain": torch.arange(args.samples), "outliers": torch.arange(args.samples, len(pairs))}
    held = {name: rows[int(0.8 * len(rows)):] for name, rows in parts.items()}
    fitted = torch.cat([rows[: int(0.8 * len(rows))] for rows in parts.values()])
    colour_fit = reconstruction.reconstructor.colour_fit
    trial = fit_features(x[fitted], y[fitted], sha, colour_fit)
    heldout = {}
    for name, rows in held.items():
        if len(rows):
            predicted = torch.log(trial.predict(x[rows]).double())
            heldout[name] = {"r2_log_error": r_squared(predicted, y[rows]), "samples": len(rows),
                             "mean_log_bias": float((y[rows] - predicted).mean())}
    model = fit_features(x, y, sha, colour_fit, args.sr_model, sr_model.sha256)
    model.save(sidecar(args.checkpoint))
    print("held-out R^2 of log L1 error: " + ", ".join(f"{r['r2_log_error']:.3f} on {r['samples']} {name} crops"
                                                       for name, r in heldout.items())
          + f"; wrote {sidecar(args.checkpoint)} in {time.perf_counter() - started:.0f} s")
    out = results_dir() / f"error_model_{args.checkpoint.stem}.json"
    out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "samples": args.samples,
                               "outliers": args.outliers, "outlier_kinds": list(OUTLIERS), "seed": args.seed,
                               "sr_model": args.sr_model, "mix": args.mix,
                               "extra_pairs": [str(p) for p in args.pairs],
                               "target": "log L1 of R(HR, E(LR)) against the LR",
                               "device": f"{platform.machine()}_CPU", "cpu": cpu_features().as_dict(),
                               "heldout_r2_log_error": heldout["plain"]["r2_log_error"], "heldout": heldout},
                              indent=1))


if __name__ == "__main__":
    main()
