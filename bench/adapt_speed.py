"""Adaptation step speed: eager vs ``adapt --compile``, with the time of each stage, peak memory and compile time.

    .venv/bin/python bench/adapt_speed.py                                   # CPU profile (~10 min on 2 cores)
    .venv/bin/python bench/adapt_speed.py --device cuda --profile gpu       # x4plus, batch 6, 128 px, bf16 too

Each variant is an ``AdaptStep`` (lway_engine/adaptation/step.py, what ``adapt`` runs) on its own copy of the
model with the paper's trainable 65%, the bundled E+R checkpoint and LPIPS-alex: the paper's bare step, and (the
``-default`` variants) the step of ``adapt``'s default candidate, which adds the flat-area anchor (a forward of the
unadapted model) and the cross-scale pseudo-pair (a second pass of S on crops twice the size, R-degraded to half a
crop, and LPIPS at twice the crop size). Steps are timed side by side:
every repeat runs each variant once, in turn, on the same crops, so drifting machine load hits all alike; the
table reports medians and each variant's ratio to eager. ``compile s`` is the first step's time (tracing, inductor,
C++/Triton builds; a warm cache in $LWAY_HOME/torch-compile shortens it) minus a warm step's.

The stage breakdown runs the same computation cut at the stage boundaries (gradients handed on between stages by
``torch.autograd.grad``), each stage compiled on its own for the compiled variants, with a device sync after each:
SR forward/backward, R forward+backward, loss forward+backward, optimizer; E runs once per run (not per step), so
it is listed per run. Peak memory: CUDA's max allocated during the variant's steps; on the CPU the process's peak
resident set sampled during them. The GPU profile also times a whole 500-iteration ``adapt`` run (--compile).
Prints a table and writes bench/results/adapt_speed_<profile>_<device>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lway_engine.adaptation.loop import AdaptConfig, adapt
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.adaptation.select import DEFAULT_CANDIDATES
from lway_engine.adaptation.step import AdaptStep, execution_settings
from lway_engine.adaptation.trainable import select_trainable
from lway_engine.hardware import cpu_features
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import LoadedModel, load_model
from lway_engine.reconstruction import LWayReconstruction, load_checkpoint
from results_dir import results_dir

# variant name -> (compile, amp, terms): terms "paper" is the bare LWay step, "default" adds the terms of adapt's
# default candidate (select.DEFAULT_CANDIDATES[0]: the flat-area anchor, W = 1, the cross-scale pseudo-pair), what
# a user's default run pays per step
PROFILES = {
    # x4plus's stage pieces would add minutes of compiling on 2 cores: its breakdown is left to the GPU profile
    "cpu": dict(models=["rrdb-small", "realesrgan-x4plus"], breakdown=["rrdb-small"], batch=1, crop=32, repeats=10,
                variants={"eager": (False, None, "paper"), "compiled": (True, None, "paper"),
                          "eager-default": (False, None, "default")}, run_iterations=0),
    # bfloat16 on a CPU with AMX / AVX512_BF16 (issue: CPU bf16), at the size the issue measured
    "cpu-bf16": dict(models=["realesrgan-x4plus"], breakdown=[], batch=2, crop=64, repeats=3,
                     variants={"eager": (False, None, "paper"), "eager-bf16": (False, "bf16", "paper")},
                     run_iterations=0),
    "gpu": dict(models=["realesrgan-x4plus"], breakdown=["realesrgan-x4plus"], batch=6, crop=128, repeats=20,
                variants={"eager": (False, None, "paper"), "compiled": (True, None, "paper"),
                          "eager-bf16": (False, "bf16", "paper"), "compiled-bf16": (True, "bf16", "paper"),
                          "eager-bf16-default": (False, "bf16", "default")}, run_iterations=500),
}


def small_rrdb(folder: Path, device: str) -> LoadedModel:
    """Real-ESRGAN's architecture (spandrel's RRDBNet) at 2 blocks x 32 features, seeded random weights."""
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    path = folder / "rrdb-small.safetensors"
    save_file(ESRGAN(num_filters=32, num_blocks=2).state_dict(), str(path))
    return load_model(path, device=device)


def photos(size: int) -> list[torch.Tensor]:
    """Centre crops of scikit-image photos as (3, size, size) LR images in [0, 1]."""
    from skimage import data

    out = []
    for name in ("astronaut", "coffee", "chelsea"):
        img = getattr(data, name)().astype(np.float32) / 255.0
        top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        out.append(torch.from_numpy(img[top : top + size, left : left + size].transpose(2, 0, 1).copy()))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def peak_memory(device: torch.device, record: list[float]) -> Iterator[None]:
    """Appends the peak memory (MiB) seen while the block runs: CUDA max allocated, or sampled CPU resident set."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield
        record.append(torch.cuda.max_memory_allocated(device) / 2**20)
        return
    page, peak, done = 4096, [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            with open("/proc/self/statm") as f:
                peak[0] = max(peak[0], int(f.read().split()[1]) * page)
            done.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        record.append(peak[0] / 2**20)


@dataclass
class Variant:
    """One way of running the step, on its own copy of the model."""

    name: str
    step: AdaptStep
    stages: Callable[[torch.Tensor, torch.Tensor], dict[str, float]] | None
    times: list[float]
    memory: list[float]
    compile_s: float = 0.0


def stage_timer(step: AdaptStep, compiled: bool, device: torch.device) -> Callable[..., dict[str, float]]:
    """Seconds per stage of one step on ``(lr_crops, e)``, cut at the stage boundaries (see the module docstring)."""
    sr_fn, r_fn, loss_fn = step.module, step.reconstruct, step.loss_fn
    if compiled:
        sr_fn, r_fn, loss_fn = (torch.compile(f) for f in (sr_fn, r_fn, loss_fn))
    amp = dict(device_type=device.type, dtype=step.autocast_dtype, enabled=step.autocast_dtype is not None)

    def run(lr_crops: torch.Tensor, picks: torch.Tensor) -> dict[str, float]:
        times: dict[str, float] = {}
        started = [time.perf_counter()]

        def lap(name: str) -> None:
            sync(device)
            now = time.perf_counter()
            times[name] = times.get(name, 0.0) + now - started[0]
            started[0] = now

        with torch.autocast(**amp):
            sr = sr_fn(lr_crops)
            lap("SR forward")
            sr_leaf = sr.detach().requires_grad_()
            x_hat = r_fn(sr_leaf, picks, lr_crops).float()
            lap("R forward+backward")
            x_hat_leaf = x_hat.detach().requires_grad_()
            total = loss_fn(x_hat_leaf, lr_crops).total
            (grad_x_hat,) = torch.autograd.grad(total, x_hat_leaf)
            lap("loss forward+backward")
        (grad_sr,) = torch.autograd.grad(x_hat, sr_leaf, grad_x_hat)
        lap("R forward+backward")
        sr.backward(grad_sr)
        lap("SR backward")
        step.optimizer.step()
        step.optimizer.zero_grad(set_to_none=True)
        lap("optimizer")
        return times

    return run


def bench_model(label: str, model: LoadedModel, recon: LWayReconstruction, lpips: LPIPS, images: list[torch.Tensor],
                profile: dict, device: torch.device, breakdown: bool) -> list[dict]:
    """Rows of the table for one model: each variant's step time, ratio to eager, stages, memory, compile time."""
    rng = np.random.default_rng(0)
    batch, crop = profile["batch"], profile["crop"]
    with torch.no_grad():
        sync(device)
        started = time.perf_counter()
        embeddings = torch.cat([recon.encoder(img[None]) for img in images])
        sync(device)
        encoder_s = time.perf_counter() - started
        styles = recon.reconstructor.prepare(embeddings)  # once per run, as adapt does

    def crops(size: int = crop) -> tuple[torch.Tensor, torch.Tensor]:
        picks = rng.integers(0, len(images), size=batch)
        tops = rng.integers(0, images[0].shape[-1] - size + 1, size=(batch, 2))
        x = torch.stack([images[i][:, t : t + size, s : s + size] for i, (t, s) in zip(picks, tops)])
        return x, torch.as_tensor(picks, device=device)  # R's condition: each crop's image index into styles

    def batch_of_crops() -> tuple[torch.Tensor, ...]:
        """The main crops and the cross-scale term's, twice their size (``AdaptConfig.cross_crop``'s default)."""
        return (*crops(), *crops(2 * crop))

    variants = []
    for name, (compiled, amp, terms) in profile["variants"].items():
        module = copy.deepcopy(model.module).eval()
        select_trainable(module, 0.65)
        params = [p for p in module.parameters() if p.requires_grad]
        config, loss_fn = AdaptConfig(), LWayLoss(lpips)
        if terms == "default":
            config, loss_fn = DEFAULT_CANDIDATES[0].configure(config, loss_fn)
        step = AdaptStep(module, recon.reconstructor, styles, loss_fn, params, 1e-6, device, compiled, amp,
                         anchor=config.anchor, texture=config.texture, detail=config.detail,
                         cross_scale=config.cross_scale)
        stages = stage_timer(step, compiled, device) if breakdown and terms == "paper" else None
        variants.append(Variant(name, step, stages, [], []))
    for variant in variants:  # first step (compilation), then a warm one; the difference is the compile time
        first = []
        for _ in range(2):
            x, e, cross_x, cross_e = batch_of_crops()
            sync(device)
            started = time.perf_counter()
            variant.step(x, e, cross_x, cross_e)
            sync(device)
            first.append(time.perf_counter() - started)
        variant.compile_s = max(0.0, first[0] - first[1])
        print(f"  {variant.name}: first step {first[0]:.1f} s, second {first[1]:.2f} s", flush=True)
        if variant.stages is not None:
            variant.stages(*crops())  # compiles the stage pieces
    stage_rows: dict[str, list[dict[str, float]]] = {v.name: [] for v in variants}
    for _ in range(profile["repeats"]):
        x, e, cross_x, cross_e = batch_of_crops()
        for variant in variants:
            with peak_memory(device, variant.memory):
                sync(device)
                started = time.perf_counter()
                variant.step(x, e, cross_x, cross_e)
                sync(device)
                variant.times.append(time.perf_counter() - started)
            if variant.stages is not None:
                stage_rows[variant.name].append(variant.stages(x, e))
    eager = statistics.median(variants[0].times)
    rows = []
    for variant in variants:
        median = statistics.median(variant.times)
        stages = {k: statistics.median(r[k] for r in stage_rows[variant.name]) for k in stage_rows[variant.name][0]} \
            if stage_rows[variant.name] else {}
        stage_sum = sum(stages.values())
        erl = (stages.get("R forward+backward", 0) + stages.get("loss forward+backward", 0)) / stage_sum \
            if stage_sum else None
        rows.append({"model": label, "variant": variant.name, "terms": profile["variants"][variant.name][2],
                     "batch": batch, "crop": crop,
                     "median_step_s": median, "speedup_vs_eager": eager / median, "steps_s": variant.times,
                     "compile_s": variant.compile_s, "peak_memory_mib": max(variant.memory),
                     "stages_s": stages, "r_loss_fraction": erl, "encoder_once_s": encoder_s})
    return rows


def timed_run(model: LoadedModel, recon: LWayReconstruction, lpips: LPIPS, images: list[torch.Tensor],
              profile: dict, amp: str | None) -> dict:
    """A whole ``adapt --compile`` run of ``run_iterations`` steps, as a user runs it (compile included)."""
    config = AdaptConfig(iterations=profile["run_iterations"], batch=profile["batch"], crop=profile["crop"],
                         compile=True, amp=amp)
    module_state = copy.deepcopy(model.module.state_dict())
    started = time.perf_counter()
    log = adapt(model, images, recon, LWayLoss(lpips), config, progress=False)
    seconds = time.perf_counter() - started
    model.module.load_state_dict(module_state)
    return {"iterations": len(log.loss), "status": log.status, "amp": amp, "seconds": seconds,
            "seconds_after_first_step": sum(log.step_seconds[1:]), "first_step_s": log.step_seconds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None, help="default: cpu, or gpu on cuda")
    parser.add_argument("--models", nargs="+", help="override the profile's: registry names, paths, or rrdb-small")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--crop", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--breakdown", nargs="*", help="models to time per stage (default: the profile's)")
    parser.add_argument("--deterministic", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    profile_name = args.profile or ("gpu" if device.type == "cuda" else "cpu")
    profile = dict(PROFILES[profile_name])
    for key in ("models", "breakdown", "batch", "crop", "repeats"):
        if getattr(args, key) is not None:
            profile[key] = getattr(args, key)

    recon = load_checkpoint(DEFAULT_RECONSTRUCTOR, expect_scale=4).to(device).eval().requires_grad_(False)
    lpips = LPIPS("alex").to(device)
    images = [img.to(device) for img in photos(max(2 * profile["crop"], 64))]  # holds a cross-scale crop
    rows, runs = [], []
    with tempfile.TemporaryDirectory() as tmp, execution_settings(device, args.deterministic):
        for name in profile["models"]:
            model = small_rrdb(Path(tmp), args.device) if name == "rrdb-small" else load_model(name, device=device)
            print(f"{name}: batch {profile['batch']}, {profile['crop']} px LR crops, {profile['repeats']} repeats",
                  flush=True)
            rows += bench_model(name, model, recon, lpips, images, profile, device, name in profile["breakdown"])
            if profile["run_iterations"]:
                for amp in dict.fromkeys(a for _, a, _ in profile["variants"].values()):
                    runs.append({"model": name, **timed_run(model, recon, lpips, images, profile, amp)})

    stage_names = sorted({k for row in rows for k in row["stages_s"]})
    header = (f"{'model':<24} {'variant':<14} {'s/step':>8} {'vs eager':>8} {'compile s':>9} {'peak MiB':>9} "
              f"{'R+loss %':>8}  " + "  ".join(f"{s:>10.10}" for s in stage_names))
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        erl = f"{100 * row['r_loss_fraction']:.1f}" if row["r_loss_fraction"] is not None else "-"
        stages = "  ".join(f"{row['stages_s'].get(s, float('nan')):>10.4f}" for s in stage_names)
        print(f"{row['model']:<24} {row['variant']:<14} {row['median_step_s']:>8.3f} {row['speedup_vs_eager']:>7.2f}x "
              f"{row['compile_s']:>9.1f} {row['peak_memory_mib']:>9.0f} {erl:>8}  {stages}")
    print(f"E (once per run, {len(images)} LR images of {images[0].shape[-1]} px): "
          + ", ".join(f"{r['model']} {r['encoder_once_s']:.3f} s" for r in rows if r["variant"] == "eager"))
    for run in runs:
        print(f"adapt --compile{' --amp ' + run['amp'] if run['amp'] else ''} ({run['model']}): {run['iterations']} "
              f"iterations in {run['seconds']:.1f} s ({run['seconds_after_first_step']:.1f} s after the first step)")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    stem = f"adapt_speed_{profile_name}_{device_name.replace(' ', '_')}"
    out = results_dir() / f"{stem}.json"
    out.write_text(json.dumps({"device": device_name, "torch": torch.__version__, "profile": profile_name,
                               "torch_threads": torch.get_num_threads(), "cpu": cpu_features().as_dict(),
                               "deterministic": args.deterministic,
                               "rows": rows, "runs": runs}, indent=1))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
