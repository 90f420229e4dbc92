"""Step 1 of LWay: train the degradation encoder E and reconstructor R so that R(HR, E(LR)) reproduces LR.

Resumable: every ``checkpoint_every`` steps the model (safetensors) and the optimizer state (``*.state.pt``) are
written atomically, and ``resume=True`` continues from them bit-for-bit: each step's batch is a pure function of
(seed, step), so no sampler state is needed, and ``workers`` processes can synthesise the next batches while this
one trains (degradation synthesis is NumPy/Pillow work that would otherwise stall the optimiser). A held-out
validation set (fixed samples from files never used for training) is scored every ``val_every`` steps.

Under torchrun (``topology`` of several ranks) the model trains with DistributedDataParallel: ``batch`` stays the
global batch, each rank synthesises its share from its own stream (seed, step, rank), DDP averages the gradients,
and rank 0 alone validates and writes the checkpoints. The step count and the optimizer state do not depend on the
number of processes, so ``resume`` continues on another world size (8 GPUs, then 1 CPU, ...). Bit for bit then
holds only at the same world size: the rank streams draw other samples for another count of ranks.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lway_engine.adaptation.step import amp_dtype
from lway_engine.atomic import atomic_write
from lway_engine.distributed import Topology, data_parallel, local_slice, mean_over_ranks, step_rng
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.reconstruction import (
    CheckpointError,
    LWayReconstruction,
    ReconstructionConfig,
    load_checkpoint,
    save_checkpoint,
)
from lway_engine.training.data import PairSource, Sample, find_pairs, image_files


class _StepBatches(torch.utils.data.Dataset):
    """Index i -> this rank's share of the batch of step ``start + i``; what the prefetching DataLoader's workers
    compute."""

    def __init__(self, source: PairSource, config: PretrainConfig, start: int, topology: Topology) -> None:
        self.source, self.config, self.start, self.topology = source, config, start, topology
        share = local_slice(config.batch, topology)
        self.size = share.stop - share.start

    def __len__(self) -> int:
        return self.config.steps - self.start

    def __getitem__(self, index: int) -> Sample:
        c = self.config
        rng = step_rng(c.seed, self.start + index, self.topology)
        return self.source.batch(rng, self.size, c.crop, c.real_fraction)


def _batches(source: PairSource, config: PretrainConfig, start: int, topology: Topology) -> Iterator[Sample]:
    steps = _StepBatches(source, config, start, topology)
    if config.workers == 0:
        return (steps[i] for i in range(len(steps)))
    return iter(torch.utils.data.DataLoader(steps, batch_size=None, num_workers=config.workers, prefetch_factor=4,
                                            persistent_workers=False))


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation and data settings of step 1."""

    steps: int = 3000
    batch: int = 8
    crop: int = 48  # LR crop side (HR crops are crop * scale)
    workers: int = 0  # processes preparing batches ahead of the optimiser (0: in the training process)
    device: str = "cpu"
    amp: str | None = None  # "bf16": autocast the forward (fp32 weights, Adam state and loss sum); validation is fp32
    lr: float = 2e-4
    real_fraction: float = 0.5  # share of real pairs in a batch when both kinds of data are given
    lpips_weight: float = 1.0
    kernel_weight: float = 0.0  # > 0: also fit R's blur kernel to synthetic samples' optics kernel (squared error)
    colour_fit: bool = False  # fit R's colour map to each LR (as adapt does) instead of training the colour head
    checkpoint_every: int = 250
    val_every: int = 250
    val_samples: int = 48
    seed: int = 0
    init_from: str | None = None  # a checkpoint whose weights start a fresh run (heads it lacks start as identity)
    mix: dict[str, float] | None = None  # synthetic pipelines and their odds (None: degradations.TRAINING_MIX)


def _loss(model: LWayReconstruction, lpips: LPIPS, batch: Sample, config: PretrainConfig,
          amp: torch.dtype | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss and its parts: L1, LPIPS and, with ``config.kernel_weight``, the squared error of R's HR blur
    kernel against the samples' optics kernel, averaged over the synthetic samples (real pairs have none).

    Why supervise the kernel: trained on the LR alone, R's blur head stayed isotropic on motion blur (E did not
    encode the direction) and lost 0.5 dB there; the plan knows the true kernel of every synthetic sample."""
    hr, lr = batch.hr, batch.lr
    with torch.autocast(hr.device.type, amp or torch.float32, enabled=amp is not None):
        out = model(hr, lr, with_kernel=bool(config.kernel_weight), fit_colour=config.colour_fit)
        lr_hat, kernel = out if config.kernel_weight else (out, None)
        lr_hat = lr_hat.float()
        perceptual = lpips(lr_hat, lr).float().mean()
    l1 = (lr_hat - lr).abs().mean()
    total = l1 + config.lpips_weight * perceptual
    parts = {"l1": float(l1.detach()), "lpips": float(perceptual.detach())}
    if kernel is not None:
        known = torch.isfinite(batch.kernel[:, 0, 0])
        error = ((kernel.float() - torch.nan_to_num(batch.kernel)) ** 2).sum((1, 2))
        kernel_loss = (error * known).sum() / known.sum().clamp(min=1)
        total = total + config.kernel_weight * kernel_loss
        parts["kernel"] = float(kernel_loss.detach())
    return total, parts


def validation_loss(model: LWayReconstruction, lpips: LPIPS, samples: list[Sample], config: PretrainConfig
                    ) -> dict[str, float]:
    """Mean total and parts (L1, LPIPS, kernel error) on the fixed validation samples."""
    model.eval()
    sums: dict[str, float] = {}
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(samples), 16):
            chunk = samples[start : start + 16]
            batch = Sample(*(t.to(device) for t in Sample.stack(chunk)))
            total, parts = _loss(model, lpips, batch, config)
            for name, value in {"total": float(total), **parts}.items():
                sums[name] = sums.get(name, 0.0) + value * len(chunk)
    return {name: value / len(samples) for name, value in sums.items()}


def pretrain(train: PairSource, val: PairSource, out: Path, config: PretrainConfig,
             model_config: ReconstructionConfig, resume: bool = False, progress: bool = True,
             topology: Topology | None = None) -> dict:
    """Train E+R; rank 0 writes ``out`` (checkpoint), ``out.state.pt`` (resume state) and ``out.json`` (log)."""
    topology = topology or Topology.single()
    local_slice(config.batch, topology)  # a batch the ranks cannot share fails before any work
    if config.kernel_weight:  # the samples carry their optics kernel in R's frame
        if not model_config.blur_kernel:
            raise ValueError("--kernel-weight supervises R's blur kernel: give --blur-kernel K too")
        train, val = (replace(source, kernel_size=model_config.blur_kernel) for source in (train, val))
    progress = progress and topology.leader
    out.parent.mkdir(parents=True, exist_ok=True)
    state_path, log_path = out.with_suffix(".state.pt"), out.with_suffix(".json")
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    amp = amp_dtype(config.amp, device)
    lpips = LPIPS("alex").to(device)
    val_rng = np.random.default_rng(config.seed + 1)
    val_samples = [val.sample(val_rng, config.crop, config.real_fraction)
                   for _ in range(config.val_samples if topology.leader else 0)]  # rank 0 alone validates
    if resume and _resumable(out):
        model = load_checkpoint(out, expect_scale=model_config.scale, expect_embed_dim=model_config.embed_dim)
        model = model.to(device)
        try:
            state = torch.load(state_path, map_location=device, weights_only=False)  # ours: optimizer state + log
        except Exception as exc:  # a truncated or foreign file: torch raises several types
            raise CheckpointError(f"{state_path}: not a readable resume state ({type(exc).__name__}); restore it, or "
                                  f"delete it and {out.name} to start afresh") from exc
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.99))
        optimizer.load_state_dict(state["optimizer"])
        log, start = state["log"], state["step"]
    else:
        model = LWayReconstruction(model_config).to(device)
        if config.init_from:
            warm_start(model, Path(config.init_from))
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.99))
        log = {"config": asdict(config), "model": asdict(model_config), "train": [], "val": [], "seconds": 0.0,
               "samples": 0, "data": train.report.summary()}
        start = 0
    if config.colour_fit and model.reconstructor.colour is not None:
        # The fitted map replaces the head's output, so the head gets no gradient: frozen, DDP does not wait for it,
        # and it keeps its trained weights for `adapt --predict-colour`.
        model.reconstructor.colour.requires_grad_(False)
    # Each launch's settings, so a run resumed with other settings (--amp, --workers, --steps) says so in its log.
    log.setdefault("launches", []).append({"from_step": start, **asdict(config), "processes": topology.world_size})
    trained = data_parallel(model, device)  # the model itself in one process
    scheduler_floor = config.lr * 0.1

    def save(step: int) -> None:
        save_checkpoint(out, model, extra={"step": step, "seed": config.seed})
        state = {"optimizer": optimizer.state_dict(), "log": log, "step": step}
        atomic_write(state_path, lambda tmp: torch.save(state, tmp))
        atomic_write(log_path, lambda tmp: tmp.write_text(json.dumps(log, indent=1)))

    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="pretrain", disable=not progress)
    began = time.perf_counter() - log["seconds"]
    batches = _batches(train, config, start, topology)
    for step in bar:
        model.train()
        for group in optimizer.param_groups:  # cosine decay to 10% keeps late steps from undoing early progress
            group["lr"] = scheduler_floor + (config.lr - scheduler_floor) * 0.5 * (1 + math.cos(math.pi * step /
                                                                                          config.steps))
        batch = Sample(*(t.to(device, non_blocking=True) for t in next(batches)))
        total, parts = _loss(trained, lpips, batch, config, amp)
        row = [float(total.detach()), *parts.values()]  # total, l1, lpips[, kernel]
        if topology.distributed:  # the logged loss of the global batch; NCCL reduces GPU tensors only
            row = mean_over_ranks(torch.tensor(row, device=device)).tolist()
        if not math.isfinite(row[0]):
            raise FloatingPointError(f"pretraining loss became {row[0]} at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        log["train"].append([step + 1, *row])
        log["samples"] = (step + 1) * config.batch
        bar.set_postfix(loss=f"{row[0]:.4f}", **{name: f"{value:.4f}" for name, value in zip(parts, row[1:])})
        done = step + 1
        if topology.leader and (done % config.val_every == 0 or done == config.steps):
            log["val"].append([done, validation_loss(model, lpips, val_samples, config)])
            bar.write(f"step {done}: validation {log['val'][-1][1]}")
        log["seconds"] = time.perf_counter() - began
        if topology.leader and (done % config.checkpoint_every == 0 or done == config.steps):
            save(done)
    return log


def warm_start(model: LWayReconstruction, source: Path) -> None:
    """Copy ``source``'s weights into ``model``, which may add heads the source lacks (a blur kernel, a colour
    head): they keep their identity initialisation, so training starts exactly where the source ends. Anything
    else that does not match (a tensor of another shape, one the new model lacks) is an error."""
    weights = load_checkpoint(source, expect_scale=model.config.scale, expect_embed_dim=model.config.embed_dim
                              ).state_dict()
    own = model.state_dict()
    unknown = [k for k in weights if k not in own or own[k].shape != weights[k].shape]
    if unknown:
        raise ValueError(f"--init-from {source}: its weights {', '.join(unknown[:4])} do not fit this model "
                         f"({model.config}); only added heads may differ")
    model.load_state_dict(weights, strict=False)


def _resumable(out: Path) -> bool:
    """Whether ``out`` and its resume state (``out.state.pt``) are both there to continue from."""
    return out.exists() and out.with_suffix(".state.pt").exists()


def _split(items: list, folder: Callable[[Any], Path], holdout: float) -> tuple[list, list]:
    """Per folder, the last ``holdout`` of its files by name are validation, at least one (so each folder is
    represented); a folder of one file validates on it and trains on it too."""
    train, val = [], []
    for parent in sorted({folder(item) for item in items}):
        group = [item for item in items if folder(item) == parent]
        keep = len(group) - max(1, round(len(group) * holdout)) if len(group) > 1 else len(group)
        train += group[:keep]
        val += group[keep:] or group[:1]
    return train, val


def pretrain_files(hr: list[Path], pairs: list[Path], out: Path, config: PretrainConfig,
                   model_config: ReconstructionConfig, holdout: float = 0.1, resume: bool = False,
                   echo: Callable[[str], None] = print, topology: Topology | None = None) -> dict:
    """``lway-engine pretrain`` on files and folders: find HR images and registered pairs, hold out the last
    ``holdout`` of each folder for validation, load (skipping and counting what cannot serve), train."""
    pair_files = find_pairs(pairs, model_config.scale)
    paired = {p for pair in pair_files for p in pair}
    hr_files = [p for p in image_files(hr) if p not in paired]
    if not hr_files and not pair_files:
        raise ValueError("give --hr folders and/or --pairs folders containing images")
    hr_train, hr_val = _split(hr_files, lambda p: p.parent, holdout)
    pairs_train, pairs_val = _split(pair_files, lambda pair: pair[0].parent, holdout)
    min_side = config.crop * model_config.scale
    train = PairSource.load(hr_train, pairs_train, model_config.scale, min_hr_side=min_side, pipelines=config.mix)
    val = PairSource.load(hr_val, pairs_val, model_config.scale, min_hr_side=min_side, pipelines=config.mix)
    if not train.hr_images and not train.real_pairs:
        raise ValueError(f"no usable training images or pairs after holding out the last {holdout:.0%} of each "
                         f"folder for validation ({train.report.summary()}); give more, or lower --holdout")
    if resume and not _resumable(out):
        echo(f"nothing to resume at {out} (no checkpoint with its .state.pt yet): starting afresh")
    shared = len(set(hr_train) & set(hr_val)) + len(set(pairs_train) & set(pairs_val))  # one-file folders (_split)
    if shared:
        echo(f"{shared} folder(s) hold a single HR image or pair: it is validated on as well as trained on")
    cameras = len(train.cameras)
    drawn = f"from {cameras} folders, drawn folder by folder " if cameras > 1 else ""
    echo(f"training on {len(train.hr_images)} HR images + {len(train.real_pairs)} real pairs {drawn}"
         f"({train.report.summary()}); validating on {len(val.hr_images)} + {len(val.real_pairs)} held out "
         f"(last by name in each folder; {val.report.summary()})")
    return pretrain(train, val, out, config, model_config, resume, topology=topology)
