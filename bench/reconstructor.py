"""Reconstructor R forward+backward: PyTorch (eager) vs the C++ extension's fused op, and R's share of a step.

R runs forward and backward (to its input, the SR output) in every adaptation step. Measured side by side,
alternating eager and extension calls in one run (this machine is noisy; only the ratio is meaningful):

- ``eager``: R through PyTorch, as adaptation ran it before the extension: styles recomputed from the per-crop
  embeddings every step, then the grouped modulated convolutions;
- ``eager-prepared``: the same with styles computed once (the lever that needs no C++), for a fair baseline;
- ``extension``: styles and packed weights prepared once, every block through ``lway::conv3x3_fused``.

Shapes: batch 6 with 512 px HR (a 4x model's output for the paper's 128 px LR crops) and batch 2 with 192 px HR
(the CPU demo). The trained default E+R checkpoint gives the weights; embeddings come from real photo crops, one
image per crop (whole-set adaptation). With ``--step``, R's share of a real Real-ESRGAN x4plus adaptation step at
the demo shape is measured with the extension on and off.

    python bench/reconstructor.py [--device cuda] [--rounds N] [--step]

Prints a table and writes bench/results/reconstructor_<device name>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.ext import build_info
from lway_engine.hardware import cpu_features
from lway_engine.reconstruction import LWayReconstruction, Reconstructor, load_checkpoint
from results_dir import results_dir

SHAPES = {"batch 6, HR 512 (paper)": (6, 512), "batch 2, HR 192 (CPU demo)": (2, 192)}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU ({torch.get_num_threads()} threads)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def photo_crops(count: int, size: int, device: torch.device) -> torch.Tensor:
    """``count`` LR crops of scikit-image's bundled photos (real content for the encoder's embeddings)."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        img = photos[i % len(photos)]
        top, left = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        crops.append(torch.from_numpy(img[top : top + size, left : left + size].copy()).permute(2, 0, 1))
    return (torch.stack(crops).float() / 255).to(device)


def forward_backward(r: Reconstructor, hr: torch.Tensor, grad: torch.Tensor, **condition: object) -> Callable:
    def run() -> torch.Tensor:
        out = r(hr, **condition)
        (g,) = torch.autograd.grad(out, hr, grad)
        return g

    return run


def median_ms(runs: dict[str, Callable[[], object]], rounds: int, device: torch.device) -> dict[str, float]:
    """Median wall time of each run, calls interleaved round by round so drifts hit every variant alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():  # warm-up: allocator, oneDNN primitive caches
        run()
    for _ in range(rounds):
        for name, run in runs.items():
            sync(device)
            started = time.perf_counter()
            run()
            sync(device)
            times[name].append(time.perf_counter() - started)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def errors(r: Reconstructor, hr: torch.Tensor, e: torch.Tensor, grad: torch.Tensor) -> dict[str, dict[str, float]]:
    """Extension and eager (float32) against a float64 copy of R: output max error over the output's max, input
    gradient error norm over its norm.

    Gradients pass leaky ReLUs: a pre-activation within float32 rounding of zero can take the other branch than in
    float64, in either float32 implementation, which moves that element's gradient by a visible amount. Eager's
    own error shows how much of the extension's is that and not the kernel.
    """
    r64 = copy.deepcopy(r).double()
    r64.use_extension = False
    hr64 = hr.detach().double().requires_grad_()
    out64 = r64(hr64, styles=r64.prepare(e.double()))
    (grad64,) = torch.autograd.grad(out64, hr64, grad.double())
    result = {}
    for label, use in (("extension", True), ("eager", False)):
        r.use_extension = use
        out = r(hr, styles=r.prepare(e))
        (g,) = torch.autograd.grad(out, hr, grad)
        out, out64 = out.detach(), out64.detach()
        result[label] = {"output_max_rel": float((out.double() - out64).abs().max() / out64.abs().max()),
                         "grad_norm_rel": float((g.double() - grad64).norm() / grad64.norm())}
    r.use_extension = True
    return result


def bench_shape(recon: LWayReconstruction, batch: int, hr_size: int, rounds: int, device: torch.device) -> dict:
    r = recon.reconstructor
    scale = r.scale
    torch.manual_seed(0)
    with torch.no_grad():
        e = recon.encoder(photo_crops(batch, max(hr_size // scale, 32), device))
    hr = torch.rand(batch, 3, hr_size, hr_size, device=device, requires_grad=True)
    grad = torch.randn(batch, 3, hr_size // scale, hr_size // scale, device=device)
    with torch.no_grad():
        r.use_extension = False
        prepared = r.prepare(e)
        r.use_extension = True
        fused = r.prepare(e)
    assert fused.convs is not None, "the extension's op is not available on this device"

    def with_extension(use: bool, run: Callable) -> Callable:
        def call() -> object:
            r.use_extension = use
            return run()
        return call

    runs = {"eager": with_extension(False, forward_backward(r, hr, grad, e=e)),
            "eager-prepared": with_extension(False, forward_backward(r, hr, grad, styles=prepared)),
            "extension": with_extension(True, forward_backward(r, hr, grad, styles=fused))}
    ms = median_ms(runs, rounds, device)
    r.use_extension = True
    return {"batch": batch, "hr": hr_size, "ms": ms, "speedup_vs_eager": ms["eager"] / ms["extension"],
            "speedup_vs_eager_prepared": ms["eager-prepared"] / ms["extension"], "errors": errors(r, hr, e, grad)}


def bench_step(recon: LWayReconstruction, rounds: int, device: torch.device) -> dict:
    """R's share of a Real-ESRGAN x4plus adaptation step (batch 2, 48 px LR crops), extension on and off."""
    from lway_engine.adaptation.loss import LWayLoss
    from lway_engine.adaptation.step import AdaptStep
    from lway_engine.adaptation.trainable import select_trainable
    from lway_engine.metrics.lpips_net import LPIPS
    from lway_engine.models import load_model

    model = load_model("realesrgan-x4plus", device=str(device))
    select_trainable(model.module.eval(), 0.65)
    params = [p for p in model.module.parameters() if p.requires_grad]
    r = recon.reconstructor
    lr = photo_crops(2, 48, device)
    with torch.no_grad():
        e = recon.encoder(lr)
        sr = model.module(lr)
    grad = torch.randn_like(lr)
    picks = torch.arange(2, device=device)
    runs = {}
    for label, use in (("eager", False), ("extension", True)):
        r.use_extension = use  # what prepare packs; from then on the styles choose R's path (no packed convs: PyTorch)
        with torch.no_grad():
            styles = r.prepare(e)
        step = AdaptStep(model.module, r, styles, LWayLoss(LPIPS("alex").to(device)), params, 0.0, device)
        runs[f"step ({label})"] = lambda step=step: step(lr, picks)
        runs[f"R ({label})"] = forward_backward(r, sr.clone().requires_grad_(), grad, styles=styles)
    ms = median_ms(runs, rounds, device)
    share = {label: ms[f"R ({label})"] / ms[f"step ({label})"] for label in ("eager", "extension")}
    return {"model": "realesrgan-x4plus", "batch": 2, "lr_crop": 48, "ms": ms, "r_share_of_step": share}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15, help="timed calls per variant and shape")
    parser.add_argument("--step", action="store_true", help="also measure R's share of an x4plus step")
    args = parser.parse_args()
    device = torch.device(args.device)
    recon = load_checkpoint(DEFAULT_RECONSTRUCTOR).to(device).eval().requires_grad_(False)
    result = {"device": device_name(device), "cpu": cpu_features().as_dict(), "torch": torch.__version__,
              "extension": build_info(), "shapes": {}, "step": None}
    print(f"R forward+backward on {result['device']}, median of {args.rounds} interleaved rounds")
    print(f"{'shape':<28} {'eager ms':>9} {'prepared':>9} {'ext ms':>8} {'x eager':>8} {'x prep':>7}  "
          "vs float64: output max / gradient norm, extension | eager")
    for label, (batch, hr) in SHAPES.items():
        row = bench_shape(recon, batch, hr, args.rounds, device)
        result["shapes"][label] = row
        ms, err = row["ms"], row["errors"]
        print(f"{label:<28} {ms['eager']:9.1f} {ms['eager-prepared']:9.1f} {ms['extension']:8.1f} "
              f"{row['speedup_vs_eager']:7.2f}x {row['speedup_vs_eager_prepared']:6.2f}x  "
              f"{err['extension']['output_max_rel']:.1e} / {err['extension']['grad_norm_rel']:.1e} | "
              f"{err['eager']['output_max_rel']:.1e} / {err['eager']['grad_norm_rel']:.1e}", flush=True)
    if args.step:
        result["step"] = bench_step(recon, max(3, args.rounds // 3), device)
        for name, value in result["step"]["ms"].items():
            print(f"  {name:<22} {value:9.1f} ms")
        for label, share in result["step"]["r_share_of_step"].items():
            print(f"  R's share of an x4plus step ({label}): {100 * share:.1f}%")
    safe = "".join(ch if ch.isalnum() else "_" for ch in result["device"]).strip("_")
    out = results_dir() / f"reconstructor_{safe}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
