"""Can E+R learn where a Bayer mosaic's phase is? An experiment for the reconstructor issue's bayer_jpeg margin.

    .venv/bin/python bench/mosaic_phase.py train --out DIR [--steps N] [--resume]     # training split only
    .venv/bin/python bench/mosaic_phase.py score --weights DIR/mosaic_phase.pt [--per-family 8]
    .venv/bin/python bench/mosaic_phase.py detect [--steps 1200]     # the branch alone, supervised by each plan

Why: on bayer_jpeg, a plain area downsample followed by the family's own mosaic, demosaic and JPEG reproduces the
LR 3 dB better than today's R and turns the signal margin positive on 7 of 8 images, while re-applying the JPEG alone
changes nothing (``bench/results/margin_probe_capture_tail_x86_64_CPU.json``). R cannot draw a mosaic: its
convolutions treat every LR pixel alike, and a mosaic is tied to each pixel's position modulo 2.

The experiment adds, after R's output z (before its colour map is fitted to the LR), a mosaic tail
``z + sum_p g_p (D(M_p(z)) - z)``: M_p samples one colour per pixel in the RGGB pattern shifted by phase p (four
phases: RGGB, GRBG, GBRG, BGGR), D is the bilinear demosaic, and the four gates g come from a small branch that sees
the LR pixel-unshuffled by 2, so each of its channels holds one phase. Its last layer starts at zero, so the
model starts exactly as today's default. E+R train with it (lr ``--lr-base``, the branch ``--lr-tail``) on the
training split as pretraining draws it (the broad mix, 30% City100 pairs 001-030), L1 + 0.1 LPIPS, colour fitted.
Whole images keep their phase because the degradations run on the crop itself; adaptation would need crops at even
offsets, which this experiment does not touch.

``score`` compares it with today's default on City100 031-038 and 8 Kodak24 crops of every family: PSNR of
``R(HR, E(LR))`` against the LR, the HF-weighted signal margin, and the branch's mean gates per set.
JSON: bench/results/mosaic_phase_<device>.json.

Outcome (2026-12-02; 1,000 steps = 16,000 samples, 34 min on one CPU thread; 8 images per set in
``bench/results/mosaic_phase_x86_64_CPU.json``): **the branch did not learn the phase.** Its gates read +0.05 to
+0.06 on all four phases and on every set, bayer_jpeg and the clean LR alike: a constant blur, not a detector.
bayer_jpeg stayed at 31.94 dB / margin -0.0044 (today's default: 31.91 / -0.0042), and no set moved by more than
0.3 dB. About 2 of each batch's 16 samples carry a mosaic (the broad space's camera path), and pooled random
features give the gates almost nothing to tell them by. A detector needs a far longer run, or a target: the plan
knows each sample's pattern, so a classification loss on the gates (as ``pretrain --kernel-weight`` supervises
R's blur kernel) is the next design.

``detect`` tries that supervision on the branch alone: a five-way head (no mosaic, or one of the four phases)
trained with cross-entropy on the training mix, each sample labelled by its own plan (``mosaic_class``), then
tested on 512 fresh draws and on 24 Kodak24 crops of every family. Outcome (2026-12-02; 1,200 steps of 32 samples,
13 min; ``bench/results/mosaic_phase_detect_x86_64_CPU.json``): **it learned only the prior.** Its loss settled at
0.78, the entropy of the classes' frequencies (80% no mosaic, about 5% each phase). It predicted "no mosaic" for all
512 draws and for every family's 24 crops, bayer_jpeg included. In the training mix the mosaic happens in linear light
before noise, tone curves, sharpening and JPEG, and on 64 px LRs what it leaves is not enough for this branch to find.
A phase-aware R would need either far more training or a mix where mosaics survive.

And the phase is not optional: with the family's exact resize and JPEG, every wrong phase and the mean of the four
leave bayer_jpeg's margin negative; only the true one turns it (``bench/results/margin_probe_phase_x86_64_CPU.json``,
``bench/training/README.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from run_state import resume_run, save_run
from training_split import city100_hr_files, hr_files

from lway_engine.degradations import degrade_with_plan, ops
from lway_engine.degradations.camera import BAYER_PATTERNS
from lway_engine.reconstruction import LWayReconstruction, load_checkpoint
from lway_engine.reconstruction.colour_fit import fit_colour
from lway_engine.training.data import draw_pipeline

PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))  # the RGGB pattern shifted by (rows, columns): RGGB, GRBG, GBRG, BGGR
assert BAYER_PATTERNS == ("RGGB", "GRBG", "GBRG", "BGGR")  # the same order: pattern index p has phase PHASES[p]


def mosaic_class(steps: list) -> int:
    """0: the plan leaves no mosaic at LR scale; 1 + p: a mosaic in ``BAYER_PATTERNS[p]`` (the evaluation family's
    ``bayer`` step is RGGB)."""
    for step in steps:
        if step.op == "raw_capture" and step.params.get("mosaic"):
            return 1 + BAYER_PATTERNS.index(step.params["pattern"])
        if step.op == "bayer":
            return 1
    return 0


def mosaic_demosaic(z: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """D(M_p(z)): the bilinear demosaic of ``z`` (B, 3, H, W) sampled in the RGGB pattern shifted by (dy, dx)."""
    padded = F.pad(z, [dx, 0, dy, 0], mode="reflect")
    return ops.demosaic_bilinear(ops.bayer_mosaic(padded))[..., dy:, dx:]


class MosaicTail(nn.Module):
    """Gates over the four phases' mosaic-demosaic, from the LR seen phase by phase (see the module docstring)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(12, width, 3, padding=1), nn.LeakyReLU(0.1),
                                      nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
                                      nn.Conv2d(width, width, 3, stride=2, padding=1), nn.LeakyReLU(0.1))
        self.gates = nn.Linear(width, len(PHASES))
        nn.init.zeros_(self.gates.weight)
        nn.init.zeros_(self.gates.bias)

    def gate(self, lr: torch.Tensor) -> torch.Tensor:
        even = lr[..., : lr.shape[-2] // 2 * 2, : lr.shape[-1] // 2 * 2]
        return self.gates(self.features(F.pixel_unshuffle(even, 2)).mean((2, 3)))  # (B, 4)

    def forward(self, z: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        g = self.gate(lr)
        out = z
        for p, (dy, dx) in enumerate(PHASES):
            out = out + g[:, p, None, None, None] * (mosaic_demosaic(z, dy, dx) - z)
        return out


class PhaseAware(nn.Module):
    """Today's E+R with the mosaic tail between R's output and its fitted colour map."""

    def __init__(self, base: LWayReconstruction) -> None:
        super().__init__()
        self.base, self.tail = base, MosaicTail()

    def forward(self, hr: torch.Tensor, lr: torch.Tensor, tail: bool = True) -> torch.Tensor:
        r = self.base.reconstructor
        styles = dataclasses.replace(r.prepare(self.base.encoder(lr)), colour=None)  # R's raw output, no head
        z = r(hr, styles=styles)
        return fit_colour(self.tail(z, lr) if tail else z, lr)


def _default() -> LWayReconstruction:
    from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR

    return load_checkpoint(DEFAULT_RECONSTRUCTOR, expect_scale=4)


def train(args: argparse.Namespace) -> None:
    from lway_engine.metrics.lpips_net import LPIPS
    from lway_engine.training.data import PairSource

    args.out.mkdir(parents=True, exist_ok=True)
    weights, log_path = args.out / "mosaic_phase.pt", args.out / "mosaic_phase.json"
    torch.manual_seed(0)
    model = PhaseAware(_default())
    if model.base.reconstructor.colour is not None:  # the fitted map replaces the head, as in pretrain --colour-fit
        model.base.reconstructor.colour.requires_grad_(False)
    groups = [{"params": [p for p in model.base.parameters() if p.requires_grad], "lr": args.lr_base},
              {"params": list(model.tail.parameters()), "lr": args.lr_tail}]
    optimiser = torch.optim.Adam(groups, betas=(0.9, 0.99))
    log: dict = {"config": {k: str(v) for k, v in vars(args).items() if k != "func"}, "steps": []}
    start = 0
    resumed = resume_run(weights, log_path, model, optimiser) if args.resume else None
    if resumed:
        start, log = resumed
    pairs = [(h, h.with_name(h.name.replace("H.png", "L.png"))) for h in city100_hr_files(args.data)]
    source = PairSource.load(hr_files(args.data), pairs, 4, min_hr_side=256)
    print(source.report.summary(), flush=True)
    lpips = LPIPS("alex")
    started = time.perf_counter()
    for step in range(start + 1, args.steps + 1):
        for group, peak in zip(optimiser.param_groups, (args.lr_base, args.lr_tail), strict=True):
            group["lr"] = peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 1) / args.steps)))
        batch = source.batch_for_step(args.seed, step, 16, 64, args.real_fraction)
        lr_hat = model(batch.hr, batch.lr)
        l1 = (lr_hat - batch.lr).abs().mean()
        total = l1 + 0.1 * lpips(lr_hat, batch.lr).mean()
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        optimiser.step()
        log["steps"].append({"step": step, "total": float(total.detach()), "l1": float(l1.detach())})
        if step % 25 == 0:
            recent = log["steps"][-25:]
            print(f"step {step}: l1 {np.mean([s['l1'] for s in recent]):.4f} total "
                  f"{np.mean([s['total'] for s in recent]):.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
        if step % args.checkpoint_every == 0 or step == args.steps:
            save_run(weights, log_path, model, optimiser, step, log)


def score(args: argparse.Namespace) -> None:
    from reconstruction_fidelity import psnr, sets, write_results

    from lway_engine.adaptation.loss import LWayLoss
    from lway_engine.inference.upscale import UpscaleOptions, upscale_image
    from lway_engine.media.images import Image, to_tensor
    from lway_engine.metrics.lpips_net import LPIPS
    from lway_engine.models import load_model

    started = time.perf_counter()
    trained = PhaseAware(_default())
    trained.load_state_dict(torch.load(args.weights, map_location="cpu")["model"])
    default = PhaseAware(_default())  # zero gates: exactly today's R with its colour fitted
    model, loss_fn = load_model("realesrgan-x4plus"), LWayLoss(LPIPS("alex"))
    data = sets(args.per_family, args.only, city100_pairs=args.per_family, clean=True)
    results = {}
    for set_name, items in data.items():
        rows = []
        for stem, lr_np, hr_np in items:
            lr, hr = to_tensor(lr_np), to_tensor(hr_np)
            sr = to_tensor(upscale_image(model, Image(lr_np, None, 8), UpscaleOptions(tile=512)).pixels)
            row: dict = {"image": stem}
            with torch.no_grad():
                row["gates"] = trained.tail.gate(lr)[0].tolist()
                for name, net, tail in (("default", default, False), ("trained, no tail", trained, False),
                                        ("trained", trained, True)):
                    from_hr, from_sr = net(hr, lr, tail), net(sr, lr, tail)
                    row[name] = {"psnr": psnr(from_hr, lr),
                                 "margin": float(loss_fn(from_sr, lr).total - loss_fn(from_hr, lr).total)}
            rows.append(row)
        columns = ("default", "trained, no tail", "trained")
        mean = {c: {k: float(np.mean([r[c][k] for r in rows if r[c][k] is not None])) for k in ("psnr", "margin")}
                for c in columns}
        positive = {c: sum(r[c]["margin"] > 0 for r in rows) for c in columns}
        gates = np.mean([r["gates"] for r in rows], axis=0).tolist()
        results[set_name] = {"mean": mean, "positive": positive, "gates": gates, "images": rows}
        print(f"{set_name:<14} " + "  ".join(f"{c}: {mean[c]['psnr']:.2f} dB / {mean[c]['margin']:+.4f} "
                                             f"({positive[c]}/{len(rows)})" for c in columns)
              + "  gates " + " ".join(f"{g:+.2f}" for g in gates), flush=True)
    write_results("mosaic_phase", args.out, {"trained": str(args.weights)}, args.per_family, started, results)


class MosaicDetector(nn.Module):
    """The tail's branch (the LR seen phase by phase) with a five-way head: no mosaic, or one of the four phases."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.branch = MosaicTail(width)
        self.classes = nn.Linear(width, 1 + len(PHASES))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        even = lr[..., : lr.shape[-2] // 2 * 2, : lr.shape[-1] // 2 * 2]
        return self.classes(self.branch.features(F.pixel_unshuffle(even, 2)).mean((2, 3)))


def _labelled_batch(hr_images: list[torch.Tensor], rng: np.random.Generator, size: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    lrs, labels = [], []
    for _ in range(size):
        image = hr_images[rng.integers(len(hr_images))]
        top, left = rng.integers(0, image.shape[1] - 255), rng.integers(0, image.shape[2] - 255)
        lr, steps = degrade_with_plan(image[:, top : top + 256, left : left + 256].float() / 255,
                                      draw_pipeline(rng), rng, scale=4)
        lrs.append(lr)
        labels.append(mosaic_class(steps))
    return torch.stack(lrs), torch.tensor(labels)


def detect(args: argparse.Namespace) -> None:
    """Supervised: can a small CNN tell from the LR alone whether it carries a mosaic, and at which phase? The
    question behind the tail's unlearned gates, without R in the way."""
    from quality import family_set
    from reconstruction_fidelity import write_results

    from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES
    from lway_engine.media.images import to_tensor
    from lway_engine.training.data import PairSource

    started = time.perf_counter()
    torch.manual_seed(0)
    source = PairSource.load(hr_files(args.data), [], 4, min_hr_side=256)
    detector = MosaicDetector()
    optimiser = torch.optim.Adam(detector.parameters(), lr=1e-3)
    log = []
    for step in range(1, args.steps + 1):
        lr, labels = _labelled_batch(source.hr_images, np.random.default_rng([args.seed, step]), args.batch)
        logits = detector(lr)
        loss = F.cross_entropy(logits, labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        log.append({"step": step, "loss": float(loss.detach()), "mosaic_share": float((labels > 0).float().mean()),
                    "accuracy": float((logits.argmax(1) == labels).float().mean())})
        if step % 50 == 0:
            recent = log[-50:]
            print(f"step {step}: loss {np.mean([r['loss'] for r in recent]):.3f} accuracy "
                  f"{np.mean([r['accuracy'] for r in recent]):.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
    detector.eval()
    results: dict = {"training": log}
    held_out, truth = _labelled_batch(source.hr_images, np.random.default_rng([args.seed + 1, 0]), 512)
    with torch.no_grad():
        predicted = detector(held_out).argmax(1)
    confusion = np.zeros((5, 5), dtype=int)
    for t, p in zip(truth.tolist(), predicted.tolist(), strict=True):
        confusion[t, p] += 1
    results["training_mix_confusion"] = confusion.tolist()  # rows: truth (none, RGGB, GRBG, GBRG, BGGR)
    print("training mix, 512 fresh draws (rows truth, columns predicted: none RGGB GRBG GBRG BGGR):")
    print(confusion)
    for family in (*EVALUATION_FAMILIES, *UNSEEN_FAMILIES):
        items = family_set("Kodak24", family, 24, 256)
        with torch.no_grad():
            classes = detector(torch.cat([to_tensor(lr) for _, lr, _ in items])).argmax(1)
        counts = np.bincount(classes.numpy(), minlength=5).tolist()
        results[family] = counts
        print(f"{family:<14} predicted none/RGGB/GRBG/GBRG/BGGR: {counts} (truth: "
              f"{'RGGB' if family == 'bayer_jpeg' else 'none'})", flush=True)
    write_results("mosaic_phase_detect", args.out, {"detector": "trained here"}, 24, started, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)
    t = sub.add_parser("train", help="train E+R with the mosaic tail on the training split (resumable)")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--lr-base", type=float, default=3e-5)
    t.add_argument("--lr-tail", type=float, default=1e-3)
    t.add_argument("--real-fraction", type=float, default=0.3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=100)
    t.add_argument("--resume", action="store_true")
    t.set_defaults(func=train)
    s = sub.add_parser("score", help="fidelity, margin and gates against today's default")
    s.add_argument("--weights", type=Path, required=True)
    s.add_argument("--per-family", type=int, default=8)
    s.add_argument("--only", help="comma-separated subset of sets")
    s.add_argument("--out", type=Path)
    s.set_defaults(func=score)
    d = sub.add_parser("detect", help="train the branch alone to classify the LR's mosaic phase, then test it")
    d.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    d.add_argument("--steps", type=int, default=1500)
    d.add_argument("--batch", type=int, default=32)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", type=Path)
    d.set_defaults(func=detect)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
