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
them, per origin too (each synthetic pipeline, each camera's real pairs, each outlier defect): a factor
true/predicted away from 1 on one origin is a bias the overall R^2 hides (0.80 on the resize crops of the 29th
session's fit). ``--save-samples`` keeps the features, errors, origins and LR crops for
``bench/error_model_features.py``, which tries candidate features on them in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
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
from lway_engine.reconstruction.error_model import TILE, ErrorModel, error_samples, fit_features, sidecar
from lway_engine.training.data import PairSource, find_pairs

REAL_FRACTION = 0.3  # of the samples, real City100 pairs (the rest synthetic from the mix)


def training_source(mix: dict[str, float] | None = None, pairs: tuple[Path, ...] = ()) -> PairSource:
    """The training split's images; ``pairs``: more real pairs' HR files beside City100's 001-030, e.g. the
    smartphone City100's 001-050 (drawn camera by camera, as pretraining draws them). A camera the checkpoint did
    not train on still belongs here: it teaches the error model how large R's error is on a camera R has not
    learnt, where the bundled model under-predicted it by 1.3x and the gate over-read phone photos."""
    return PairSource.load(hr_files(DATA), find_pairs([*city100_hr_files(DATA), *pairs], 4), 4, min_hr_side=256,
                           pipelines=mix)


def outlier_pairs(source: PairSource, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    """``count`` training samples whose LR also carries one of the OUTLIERS defects, in turn, with their origin
    (``outlier:<defect>``); seeded apart from the plain samples, so adding them leaves those unchanged."""
    rng, kinds = np.random.default_rng([seed, 1]), list(OUTLIERS)
    pairs = []
    for i in range(count):
        hr, lr = source.sample(rng, TILE, REAL_FRACTION)[:2]
        pairs.append((hr, add_outlier(lr, kinds[i % len(kinds)], rng), f"outlier:{kinds[i % len(kinds)]}"))
    return pairs


def r_squared(predicted: torch.Tensor, target: torch.Tensor) -> float:
    return 1 - float(torch.mean((predicted - target) ** 2) / torch.var(target, correction=0))


def split(plain: int, total: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(fitted rows, held-out rows by part): the last 20% of the plain samples and of the outliers are held out."""
    parts = {"plain": torch.arange(plain), "outliers": torch.arange(plain, total)}
    held = {name: rows[int(0.8 * len(rows)):] for name, rows in parts.items()}
    return torch.cat([rows[: int(0.8 * len(rows))] for rows in parts.values()]), held


def heldout_report(x: torch.Tensor, y: torch.Tensor, origins: list[str], plain: int,
                   fit: Callable[[torch.Tensor, torch.Tensor], ErrorModel]) -> dict:
    """R^2 of the log error and the mean log bias on the held-out rows, per part and per origin (pipeline, camera
    or outlier defect), of the model ``fit(x, y)`` fitted on the other rows. ``true_over_predicted`` (the bias as a
    factor) is what the gate feels: 0.8 means R's error is over-predicted by 1.25x and the gate reads too low."""
    fitted, held = split(plain, len(y))
    trial = fit(x[fitted], y[fitted])
    report = {}
    for name, rows in held.items():
        if not len(rows):
            continue
        predicted = torch.log(trial.predict(x[rows]).double())
        kinds = {}
        for origin in sorted({origins[int(i)] for i in rows}):
            mine = torch.tensor([bool(origins[int(i)] == origin) for i in rows])
            bias = float((y[rows][mine] - predicted[mine]).mean())
            kinds[origin] = {"samples": int(mine.sum()), "mean_log_bias": bias, "true_over_predicted": math.exp(bias)}
            if mine.sum() >= 10:
                kinds[origin]["r2_log_error"] = r_squared(predicted[mine], y[rows][mine])
        report[name] = {"r2_log_error": r_squared(predicted, y[rows]), "samples": len(rows),
                        "mean_log_bias": float((y[rows] - predicted).mean()), "by_origin": kinds}
    return report


def print_report(report: dict) -> None:
    """The held-out report as a table, one line per origin."""
    for name, part in report.items():
        print(f"held out, {name}: R^2 {part['r2_log_error']:.3f} on {part['samples']} crops")
        for origin, row in part["by_origin"].items():
            r2 = f"{row['r2_log_error']:6.3f}" if "r2_log_error" in row else "     -"
            print(f"  {origin:<34} {row['samples']:4d} crops  R^2 {r2}  "
                  f"true/predicted {row['true_over_predicted']:.2f}")


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
    drawn = [source.labelled_sample(rng, TILE, REAL_FRACTION) for _ in range(args.samples)]
    pairs = [(sample.hr, sample.lr, origin) for sample, origin in drawn]
    pairs += outlier_pairs(source, args.outliers, args.seed)
    origins = [origin for *_, origin in pairs]
    sha = read_checkpoint_info(args.checkpoint).content_sha256
    sr_model = load_model(args.sr_model)
    x, y = error_samples(reconstruction, sr_model.module,
                         tqdm([(hr, lr) for hr, lr, _ in pairs], desc="error samples", unit="crop"), LPIPS("alex"))
    if args.save_samples:  # the half hour above, kept for refitting variants (bench/error_model_features.py)
        np.savez(args.save_samples, features=x.numpy(), log_error=y.numpy(), plain=args.samples,
                 origin=np.array(origins), lr=torch.stack([lr for _, lr, _ in pairs]).half().numpy())
    colour_fit = reconstruction.reconstructor.colour_fit
    heldout = heldout_report(x, y, origins, args.samples,
                             lambda xf, yf: fit_features(xf, yf, sha, colour_fit))
    print_report(heldout)
    model = fit_features(x, y, sha, colour_fit, args.sr_model, sr_model.sha256)
    model.save(sidecar(args.checkpoint))
    print(f"wrote {sidecar(args.checkpoint)} in {time.perf_counter() - started:.0f} s")
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
