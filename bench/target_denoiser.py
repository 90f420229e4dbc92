"""A learned LR denoiser for a noise-aware adaptation target: trained, then scored by what it does to the margin.

    .venv/bin/python bench/target_denoiser.py train --out DIR [--steps N] [--resume]   # training split only
    .venv/bin/python bench/target_denoiser.py score --weights DIR/target_denoiser.pt [--per-family 8]
    # on a lent GPU, one call carrying .gpu (the training split as bench/gpu_pretrain.py pack writes it):
    PYTHONPATH=. python3 bench/target_denoiser.py train --data .gpu/data --out $OUT --device cuda --workers 15 \
        --batch 64 --steps 20000 --budget 450        # then --resume from the checkpoint it leaves in $OUT

Why: the LWay loss compares R's re-degradation of S's output with the LR itself. Where the LR carries a noise
realisation (film grain, sensor noise), S's output keeps part of it and no deterministic R can draw it from the HR,
so the loss prefers S's output to the HR: film's signal margin is negative on 6 of 8 Kodak24 crops against the LR
and positive on all 8 against the family's noise-free LR (``bench/reconstruction_fidelity.py``,
``margin_noise_free``). A target that keeps a quarter to a half of the noise's amplitude would turn it
(``margin_probe_noise_fraction``). Non-local means, Gaussian low-pass and wavelet shrinkage did not: they take the
blurred families' detail with the noise, or remove a twentieth of the correlated grain
(``bench/training/README.md``). The broad pipeline yields the noise-free twin of every noisy LR
(``degradations.noise_free``), so a denoiser can learn the LR's conditional mean directly.

Training pairs: a random 256 px crop of a training-split HR (Urban100, Manga109, Sun_Hays80 1-40: never an evaluation
image), degraded by ``TRAINING_MIX``; the input is the LR, the target its noise-free twin. A quarter of the pairs
are the twin twice (input = target), so that an LR without noise passes unchanged: the earlier attempt, trained on a
mix that was mostly noisy, smoothed clean LR to 35 dB. L2 loss (the conditional mean), Adam, cosine schedule, a
checkpoint every 250 steps; the batch of step k is a pure function of (seed, k), so a resumed run continues the same
sequence. The network is a small residual U-Net at LR scale (two halvings: a 40-px receptive field for grain that
spans pixels, at a quarter of a full-resolution CNN's cost); its last convolution starts at zero, so an untrained
denoiser is the identity. ``--workers`` synthesise batches in other processes and ``--budget`` checkpoints and stops
after that many seconds, for a GPU call's limit; the GPU command is tested here only as a CPU dry run (``--workers 2
--budget 20``), as no GPU was lent when it was written.

``score`` reports, per set (8 Kodak24 crops of each synthetic family, City100 031-038, and Kodak24
bicubic-downsampled as clean LR): the fraction of the noise amplitude removed, ``1 - RMS(D(LR) - NF) / RMS(LR -
NF)`` against the noise-free LR NF; the PSNR of D(LR) against the LR (on clean LR, how much D changes what it should
leave alone); and the signal margin of today's E+R against the LR, against D(LR) and against NF.
JSON: bench/results/target_denoiser_<device>.json.

Outcome on the CPU (2026-12-02; 4,500 steps = 72,000 pairs, 82 min on one thread, the defaults above; 8 images per
set in ``bench/results/target_denoiser_x86_64_CPU.json``): **not yet a usable target.**
- Training MSE over the identity's: 0.91 (steps 1-250), 0.85 (250-500), 0.82 (1,000-1,500), 0.78 (2,000-2,500),
  0.75 (3,000-4,500).
- Noise amplitude removed: film 18% and defocus_noise 21% (at step 1,500: 14% and 10%). Motion's LR ended 3% further
  from its noise-free twin. Clean LR changed to 37.6 dB.
- As the target, it lowered the margin on every set but film:
  - defocus_noise +0.0038 -> -0.0018 (positive on 2 of 8);
  - motion +0.0002 -> -0.0007;
  - City100 +0.0078 -> +0.0053;
  - film -0.0030 -> -0.0014 (3 of 8), still negative.
- Why: a fifth of the noise went, and detail went with it. A target smoother than the noise-free LR favours S's
  smoother re-degraded output.
- Not adopted. The GPU command above, 10-50 times longer, is the next step, scored by this same ``score``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from run_state import resume_run, save_run
from training_split import hr_files

from lway_engine.degradations import apply_plan, noise_free, plan
from lway_engine.training.data import PairSource, draw_pipeline

CROP = 64  # LR side of a training pair
SCALE = 4
CLEAN_SHARE = 0.25
MIN_NOISE = 0.5 / 255  # below half a level: the LR's own 8-bit rounding (0.0011 RMS), not noise to remove


class TargetDenoiser(nn.Module):
    """Residual U-Net at LR scale: LR (B, 3, H, W) -> denoised LR, H and W any size (padded to a multiple of 4)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 3 * width

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1))

        self.enc1, self.enc2, self.mid = block(3, w1), block(w1, w2), block(w2, w3)
        self.down1, self.down2 = nn.Conv2d(w1, w1, 2, stride=2), nn.Conv2d(w2, w2, 2, stride=2)
        self.up2, self.up1 = nn.ConvTranspose2d(w3, w2, 2, stride=2), nn.ConvTranspose2d(w2, w1, 2, stride=2)
        self.dec2, self.dec1 = block(2 * w2, w2), block(2 * w1, w1)
        self.out = nn.Conv2d(w1, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        height, width = lr.shape[-2:]
        pad_h, pad_w = -height % 4, -width % 4
        x = F.pad(lr, [0, pad_w, 0, pad_h], mode="replicate") if pad_h or pad_w else lr
        e1 = self.enc1(x)
        e2 = self.enc2(self.down1(e1))
        m = self.mid(self.down2(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return (x + self.out(d1))[..., :height, :width]


def training_pair(hr_images: list[torch.Tensor], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy or clean LR, noise-free LR), each (3, CROP, CROP), from one random crop and one draw of the mix."""
    image = hr_images[rng.integers(len(hr_images))]
    size = CROP * SCALE
    top, left = rng.integers(0, image.shape[1] - size + 1), rng.integers(0, image.shape[2] - size + 1)
    hr = image[:, top : top + size, left : left + size].float() / 255
    steps = plan((size, size), draw_pipeline(rng), rng, SCALE)
    clean = apply_plan(hr, noise_free(steps))
    noisy = clean if rng.random() < CLEAN_SHARE else apply_plan(hr, steps)
    if rng.random() < 0.5:  # flips and transposes: the noise has no orientation, so the pairs' symmetries are free
        noisy, clean = noisy.flip(-1), clean.flip(-1)
    if rng.random() < 0.5:
        noisy, clean = noisy.transpose(-1, -2), clean.transpose(-1, -2)
    return noisy, clean


def batch_for_step(hr_images: list[torch.Tensor], seed: int, step: int, size: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng([seed, step])
    noisy, clean = zip(*(training_pair(hr_images, rng) for _ in range(size)))
    return torch.stack(noisy), torch.stack(clean)


class StepBatches(torch.utils.data.Dataset):
    """Steps ``start + 1 .. steps`` as a dataset of batches, so DataLoader workers can synthesise them (the
    degradations are CPU work, about 15 ms per pair) while the model trains; item i is step ``start + 1 + i``."""

    def __init__(self, hr_images: list[torch.Tensor], seed: int, size: int, start: int, steps: int) -> None:
        self.hr_images, self.seed, self.size, self.start, self.steps = hr_images, seed, size, start, steps

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return batch_for_step(self.hr_images, self.seed, self.start + 1 + index, self.size)


def _load_hr(data: Path) -> list[torch.Tensor]:
    source = PairSource.load(hr_files(data), [], SCALE, min_hr_side=CROP * SCALE)
    print(source.report.summary(), flush=True)
    return source.hr_images


def train(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    weights, log_path = args.out / "target_denoiser.pt", args.out / "target_denoiser.json"
    torch.manual_seed(args.seed)
    model = TargetDenoiser(args.width)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    log: dict = {"config": {k: str(v) for k, v in vars(args).items() if k != "func"}, "steps": []}
    start = 0
    resumed = resume_run(weights, log_path, model, optimiser) if args.resume else None
    if resumed:
        start, log = resumed
    hr_images = _load_hr(args.data)
    device = torch.device(args.device)
    model.to(device)
    for state in optimiser.state.values():  # a resumed Adam state follows the model to the device
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device)
    batches = torch.utils.data.DataLoader(StepBatches(hr_images, args.seed, args.batch, start, args.steps),
                                          batch_size=None, num_workers=args.workers)
    started = time.perf_counter()
    for step, (noisy, clean) in enumerate(batches, start=start + 1):
        for group in optimiser.param_groups:  # cosine from lr to lr/10
            group["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 1) / args.steps)))
        noisy, clean = noisy.to(device, non_blocking=True), clean.to(device, non_blocking=True)
        loss = F.mse_loss(model(noisy), clean)
        baseline = F.mse_loss(noisy, clean)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        log["steps"].append({"step": step, "mse": float(loss.detach()), "identity_mse": float(baseline)})
        if step % 25 == 0:
            recent = log["steps"][-25:]
            ratio = sum(s["mse"] for s in recent) / max(sum(s["identity_mse"] for s in recent), 1e-12)
            print(f"step {step}: mse / identity {ratio:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
        out_of_time = args.budget and time.perf_counter() - started > args.budget
        if step % args.checkpoint_every == 0 or step == args.steps or out_of_time:
            save_run(weights, log_path, model, optimiser, step, log, width=args.width)
        if out_of_time:
            print(f"stopped at step {step}: the {args.budget:.0f} s budget is spent; --resume continues", flush=True)
            break


def load_denoiser(path: Path) -> TargetDenoiser:
    state = torch.load(path, map_location="cpu")
    model = TargetDenoiser(state["width"])
    model.load_state_dict(state["model"])
    return model.eval()


def _rms(x: torch.Tensor) -> float:
    return float(x.double().square().mean().sqrt())


def score(args: argparse.Namespace) -> None:
    from reconstruction_fidelity import degrade_both, finite_mean, noise_free_lr, psnr, sets, write_results

    from lway_engine.adaptation.loss import LWayLoss
    from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
    from lway_engine.inference.upscale import UpscaleOptions, upscale_image
    from lway_engine.media.images import Image, to_tensor
    from lway_engine.metrics.lpips_net import LPIPS
    from lway_engine.models import load_model
    from lway_engine.reconstruction import load_checkpoint

    started = time.perf_counter()
    denoiser = load_denoiser(args.weights)
    model, recon = load_model("realesrgan-x4plus"), load_checkpoint(DEFAULT_RECONSTRUCTOR, expect_scale=4)
    loss_fn = LWayLoss(LPIPS("alex"))
    data = sets(args.per_family, args.only, city100_pairs=args.per_family, clean=True)  # clean: D should keep it
    results = {}
    for set_name, items in data.items():
        rows = []
        for index, (stem, lr_np, hr_np) in enumerate(items):
            lr, hr = to_tensor(lr_np), to_tensor(hr_np)
            sr = to_tensor(upscale_image(model, Image(lr_np, None, 8), UpscaleOptions(tile=512)).pixels)
            with torch.no_grad():
                denoised = denoiser(lr).clamp(0, 1)
                nf = None if set_name in ("city100", "clean") else noise_free_lr(set_name, index, hr)
                noise = None if nf is None else _rms(lr - nf)
                row = {"image": stem, "psnr_denoised_vs_lr": psnr(denoised, lr), "noise_rms": noise,
                       "removed": None if not noise or noise < MIN_NOISE else 1 - _rms(denoised - nf) / noise}
                styles = recon.reconstructor.prepare(recon.encoder(lr))
                for name, target in (("lr", lr), ("denoised", denoised), ("noise_free", nf)):
                    if target is not None:
                        from_hr, from_sr = degrade_both(recon, styles, hr, sr, target)
                        row[f"margin_{name}"] = float(loss_fn(from_sr, target).total - loss_fn(from_hr, target).total)
            rows.append(row)
        keys = [k for k in rows[0] if k != "image"]
        mean = {k: finite_mean([r[k] for r in rows]) for k in keys}
        positive = {k: sum(1 for r in rows if r[k] is not None and r[k] > 0) for k in keys if k.startswith("margin")}
        results[set_name] = {"mean": mean, "positive": positive, "images": rows}
        cells = "  ".join(f"{k} {_fmt(mean[k])}" + (f" ({positive[k]}/{len(rows)})" if k in positive else "")
                          for k in keys)
        print(f"{set_name:<14} {cells}", flush=True)
    used = {"denoiser": str(args.weights), "reconstructor": str(DEFAULT_RECONSTRUCTOR)}
    write_results("target_denoiser", args.out, used, args.per_family, started, results)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}" if abs(value) < 1 else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)
    t = sub.add_parser("train", help="train on the training split (resumable)")
    t.add_argument("--out", type=Path, required=True, help="folder for target_denoiser.pt and its log")
    t.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    t.add_argument("--steps", type=int, default=5000)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--width", type=int, default=32)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=250)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--device", default="cpu")
    t.add_argument("--workers", type=int, default=0, help="batch-synthesis processes (0: in the training process)")
    t.add_argument("--budget", type=float, default=0,
                   help="seconds of training after which to checkpoint and stop (0: none); a lent GPU's call limit")
    t.set_defaults(func=train)
    s = sub.add_parser("score", help="noise removed, clean LR kept, and the margins, on evaluation images")
    s.add_argument("--weights", type=Path, required=True)
    s.add_argument("--per-family", type=int, default=8)
    s.add_argument("--only", help="comma-separated subset of sets")
    s.add_argument("--out", type=Path)
    s.set_defaults(func=score)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
