"""The adaptation loop: S(LR crop) -> R(., E(LR)) vs the LR crop, updating a subset of S's parameters with Adam.

Each step (``step.py``, eager or compiled) computes the loss and applies its update in one go; the loop samples the
crops and checks the loss afterwards. Given a :class:`~lway_engine.adaptation.signal.Holdout`, crops never touch
the held-out strips, the no-HR quality signal (``signal.py``) is scored every ``eval_every`` steps, and the loop
ends with the weights of the best-scoring step seen (step 0, the unadapted model, included), not the last. Faults
are contained per run: a loss that turns NaN or explodes restores the last weights that gave a good loss (those
before the previous update, as a check before the update would) and stops; Ctrl-C keeps the weights of the last
completed step. Either way the caller still writes its outputs.

``data_parallel`` (whole-set ``adapt`` under torchrun) trains one model on all ranks with DistributedDataParallel
over the trainable subset. ``batch`` stays the global batch: every rank draws the whole batch's crop positions
from the same seeded generator and cuts only its own slice of them, so the ranks' crops are disjoint, together
exactly the single-process batch, and the run follows the single-process trajectory up to float32 rounding (DDP
averages the gradients of the slices' means, which is the gradient of the batch mean). Drawing positions is free;
only the rank's own crops are cut and run. The logged loss is averaged over the ranks, so the divergence check
and the log are the global batch's on every rank. The no-HR signal is not split: DDP keeps the weights equal on
every rank, so rank 0 alone scores the held-out tiles and hands its point to all; one scorer means the ranks can
never choose different steps (a last-bit difference between their scores would otherwise split the decision).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.signal import Holdout, QualityMonitor, SignalPoint
from lway_engine.adaptation.step import AdaptStep, execution_settings
from lway_engine.adaptation.trainable import select_trainable
from lway_engine.distributed import Topology, data_parallel, from_rank0, local_slice, mean_over_ranks
from lway_engine.models import MIN_INPUT_SIDE, LoadedModel
from lway_engine.reconstruction import MIN_LR_SIZE


@dataclass(frozen=True)
class AdaptConfig:
    """Optimisation settings; defaults follow the paper (Adam, lr 2e-6, batch 6, 65% of parameters)."""

    iterations: int = 300
    lr: float = 2e-6
    batch: int = 6
    crop: int = 128  # LR crop side; the paper's LR patches are 128x128
    trainable_fraction: float = 0.65
    trainable_patterns: tuple[str, ...] = ()
    hf_weight: bool = True
    seed: int = 0
    explode_factor: float = 10.0  # a loss above this many times the first one counts as divergence
    compile: bool = False  # torch.compile the step (see step.py); falls back to eager with a warning
    amp: str | None = None  # "bf16" (CUDA, or a CPU) or "fp16" (CUDA) autocast; None: float32
    deterministic: bool = False
    extension: bool = True  # R through the C++ op lway::conv3x3_fused (csrc/); False: the PyTorch path
    anchor: float = 0.0  # weight holding flat areas to the unadapted model's output (step.py); 0: the paper's loss
    texture: float = 0.0  # weight of LPIPS(S(LR), S0(LR)) at SR size, keeping the unadapted texture (step.py)
    detail: float = 0.0  # weight holding S's detail above the LR band to the unadapted model's (step.py)
    cross_scale: float = 0.0  # weight of the cross-scale pseudo-pair term S(R(y, e)) vs y (step.py); 0: off
    cross_crop: int = 0  # LR crop side of that term's crops y; 0: twice ``crop`` (R(y) is then half a crop)
    select: bool = True  # choose the step and the candidate by the no-HR signal (select.py); False: fixed schedule
    eval_every: int = 0  # steps between signal evaluations; 0: iterations // 8 (at least 1)
    data_parallel: bool = False  # split each (global) batch over torchrun's ranks, DDP (see the module docstring)
    added_detail_only: bool = False  # the held-out signal counts detail moves only where detail rose (gate.py)
    explainability: float | None = None  # the images' gate value: caps the fidelity gain the signal credits

    def __post_init__(self) -> None:
        """Settings no run can use fail here, plainly, rather than as an empty batch or in Adam's constructor."""
        if self.iterations < 0 or self.batch < 1 or self.crop < 1:
            raise ValueError(f"iterations must be >= 0, batch and crop >= 1 (got {self.iterations}, {self.batch}, "
                             f"{self.crop})")
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise ValueError(f"the learning rate must be a finite number >= 0, got {self.lr}")
        if not self.trainable_patterns and not 0 < self.trainable_fraction <= 1:
            raise ValueError(f"trainable fraction must be in (0, 1], got {self.trainable_fraction}")


@dataclass
class Hooks:
    """How an embedding app follows and stops a run: ``on_step(done, total, loss)`` after each step, and
    ``stop()`` polled before each one (True ends the run like Ctrl-C, keeping the best weights so far)."""

    on_step: Callable[[int, int, float], None] = lambda done, total, loss: None
    stop: Callable[[], bool] = lambda: False


@dataclass
class AdaptLog:
    """What happened during one adaptation run."""

    status: str = "running"  # "done", "interrupted" (Ctrl-C), "cancelled" (Hooks.stop), "diverged" or "failed"
    # ("failed": an exception ended the run; only run.py's report of that run says so, the exception propagates)
    message: str = ""
    crop: int = 0
    cross_crop: int = 0  # the cross-scale term's LR crop side (0: the term is off)
    trainable: int = 0
    total_parameters: int = 0
    loss: list[float] = field(default_factory=list)
    l1: list[float] = field(default_factory=list)
    lpips: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    signal: list[SignalPoint] = field(default_factory=list)  # with a holdout: the signal every eval_every steps
    best_step: int | None = None  # with a holdout: the step whose weights the model ends with

    def best_step_index(self) -> int:
        return next(i for i, p in enumerate(self.signal) if p.step == self.best_step)

    @property
    def best(self) -> SignalPoint | None:
        return self.signal[self.best_step_index()] if self.signal else None


def effective_crop(images: list[torch.Tensor], crop: int, multiple_of: int) -> int:
    """The crop side used: at most every image's shorter side, rounded down to the model's multiple."""
    side = min(crop, *(min(img.shape[-2:]) for img in images))
    return max(multiple_of, side - side % multiple_of)


def smallest_side(loss_fn: LWayLoss, multiple_of: int) -> int:
    """The shortest LR side (or ``--crop``) adaptation can crop from: the loss's LPIPS network sees nothing smaller
    than its ``min_side``, and crops are whole multiples of the model's ``multiple_of``."""
    return -(-loss_fn.lpips.min_side // multiple_of) * multiple_of


def check_sizes(crop: int, sizes: dict[str, tuple[int, int]], minimum: int) -> None:
    """Raise ``ValueError`` naming what is below ``minimum`` (``smallest_side``): the crop, or the images (name ->
    (height, width)), before any work rather than deep inside the loss."""
    if crop < minimum:
        raise ValueError(f"a {crop} px crop is too small: the loss's LPIPS network needs crops of at least "
                         f"{minimum} px")
    small = [f"{name} ({height}x{width})" for name, (height, width) in sizes.items() if min(height, width) < minimum]
    if small:
        raise ValueError(f"too small to adapt on (LR sides of at least {minimum} px are needed: the loss's LPIPS "
                         f"network sees nothing smaller): {', '.join(small)}; leave them out, or upscale them "
                         "without adapting")


def _cross_crop(images: list[torch.Tensor], config: AdaptConfig, model: LoadedModel) -> int:
    """The cross-scale term's crop side: ``config.cross_crop`` (or twice the crop) within every image, a multiple
    of the scale times the model's multiple so that R's output fits the model; 0 where that output would fall
    under MIN_INPUT_SIDE."""
    multiple = model.scale * model.size.multiple_of
    side = min(config.cross_crop or 2 * config.crop, *(min(img.shape[-2:]) for img in images))
    side -= side % multiple
    return side if side // model.scale >= MIN_INPUT_SIDE else 0


def _at_least(img: torch.Tensor, side: int) -> torch.Tensor:
    """Reflect-pad (replicate where reflect cannot reach) so both sides are at least ``side``."""
    pad_h, pad_w = max(0, side - img.shape[-2]), max(0, side - img.shape[-1])
    if not (pad_h or pad_w):
        return img
    mode = "reflect" if pad_h < img.shape[-2] and pad_w < img.shape[-1] else "replicate"
    return torch.nn.functional.pad(img[None], (0, pad_w, 0, pad_h), mode=mode)[0]


def _random_crops(images: list[torch.Tensor], batch: int, crop: int, rng: np.random.Generator,
                  limits: list[tuple[int, int]], part: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops (from random images, inside each image's ``limits``) with each crop's image index: the ``part``
    of a batch of ``batch`` whose positions are all drawn, so the generator advances alike on every rank."""
    picks = rng.integers(0, len(images), size=batch)
    boxes = []
    for i in picks:
        height, width = limits[i]
        boxes.append((i, rng.integers(0, height - crop + 1), rng.integers(0, width - crop + 1)))
    crops = [images[i][:, top : top + crop, left : left + crop] for i, top, left in boxes[part]]
    return torch.stack(crops), torch.as_tensor(picks[part], device=images[0].device)


def adapt(model: LoadedModel, images: list[torch.Tensor], reconstruction: torch.nn.Module, loss_fn: LWayLoss,
          config: AdaptConfig, progress: bool = True, holdout: Holdout | None = None,
          observe: Callable[[SignalPoint, torch.nn.Module], None] | None = None,
          hooks: Hooks | None = None, topology: Topology = Topology.single()) -> AdaptLog:
    """Adapt ``model.module`` in place on LR ``images`` ((3, h, w) tensors in [0, 1] on the model's device);
    with ``holdout``, train outside its strips and keep the weights of the step the signal scores best.
    ``observe(point, module)`` runs after each signal evaluation, with the weights of that step (for benchmarks
    that score them against an HR, or a UI that shows them); ``hooks`` report steps and ask to stop (apps).
    With ``config.data_parallel`` this rank trains on its slice of each batch, by the caller's ``topology``."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)  # the same on every rank: see the module docstring
    part = local_slice(config.batch, topology) if config.data_parallel else slice(None)
    module = model.module.eval()  # fine-tuning keeps inference behaviour (no dropout/BN statistics updates)
    select_trainable(module, config.trainable_fraction, list(config.trainable_patterns) or None)
    params = [p for p in module.parameters() if p.requires_grad]
    limits = holdout.limits if holdout else [tuple(img.shape[-2:]) for img in images]
    bounded = [img[:, :h, :w] for img, (h, w) in zip(images, limits, strict=True)]
    log = AdaptLog(crop=effective_crop(bounded, config.crop, model.size.multiple_of),
                   trainable=sum(p.numel() for p in params),
                   total_parameters=sum(p.numel() for p in module.parameters()))
    check_sizes(config.crop, {f"LR image {k + 1} of {len(bounded)}": tuple(img.shape[-2:])
                              for k, img in enumerate(bounded)}, smallest_side(loss_fn, model.size.multiple_of))
    if log.crop < config.crop:
        log.message = f"LR smaller than the {config.crop}px crop: using {log.crop}px crops. "
    if config.cross_scale:
        log.cross_crop = _cross_crop(bounded, config, model)
        if not log.cross_crop:
            log.message += (f"LR too small for the cross-scale term (R's output of a crop would be under "
                            f"{MIN_INPUT_SIDE}px): ran without it. ")
    reconstruction.eval().requires_grad_(False)
    if min(min(img.shape[-2:]) for img in images) < MIN_LR_SIZE:
        log.message += f"LR below the encoder's {MIN_LR_SIZE}px minimum: reflect-padded for the embedding only. "
    with torch.no_grad():
        embeddings = torch.cat([reconstruction.encoder(_at_least(img, MIN_LR_SIZE)[None]) for img in images])
        reconstruction.reconstructor.use_extension = config.extension
        styles = reconstruction.reconstructor.prepare(embeddings)  # once per run, not per step: e and R are fixed
    device = embeddings.device
    step_fn = AdaptStep(module, reconstruction.reconstructor, styles, loss_fn, params, config.lr, device,
                        config.compile, config.amp, config.anchor, config.texture, config.detail,
                        config.cross_scale if log.cross_crop else 0.0)
    if config.data_parallel:  # after the step set the memory format and kept its frozen copy of the plain module
        step_fn.module = data_parallel(module, device)
    monitor = QualityMonitor(images, holdout, reconstruction.reconstructor, styles, model.scale,
                             added_only=config.added_detail_only, explainability=config.explainability,
                             perceptual=getattr(loss_fn, "lpips", None)) \
        if holdout else None
    eval_every = config.eval_every or max(1, config.iterations // 8)
    best = [p.detach().clone() for p in params] if monitor else []  # weights of the best-scoring step
    if monitor:
        log.signal.append(monitor.start(module))
        log.best_step = 0
        if observe:
            observe(log.signal[0], module)
    good = [p.detach().clone() for p in params]  # weights whose loss was finite and not exploding
    current = [p.detach().clone() for p in params]  # weights the running step started from
    updating = False  # between the snapshot into `current` and the step's return
    bar = tqdm(range(config.iterations), desc="adapt", unit="step", disable=not progress)
    try:
        with execution_settings(device, config.deterministic):
            for step in bar:
                if hooks and hooks.stop():
                    log.status = "cancelled"
                    log.message += f"cancelled after {len(log.loss)} steps; keeping the best weights so far."
                    break
                started = time.perf_counter()
                batch = _random_crops(images, config.batch, log.crop, rng, limits, part)
                if log.cross_crop:
                    batch += _random_crops(images, config.batch, log.cross_crop, rng, limits, part)
                _copy(params, current)
                updating = True
                terms = step_fn(*batch)
                value, l1, lpips = (mean_over_ranks(terms) if config.data_parallel else terms).tolist()
                updating = False
                if not math.isfinite(value) or (log.loss and value > config.explode_factor * log.loss[0]):
                    _copy(good, params)
                    log.status = "diverged"
                    log.message += f"loss became {value:.4g} at step {step}; restored the weights of step {step - 1}."
                    break
                good, current = current, good
                log.loss.append(value)
                log.l1.append(l1)
                log.lpips.append(lpips)
                log.step_seconds.append(time.perf_counter() - started)
                bar.set_postfix(loss=f"{value:.4f}", l1=f"{l1:.4f}", lpips=f"{lpips:.4f}")
                if hooks:
                    hooks.on_step(step + 1, config.iterations, value)
                if monitor and (step + 1 == config.iterations or (step + 1) % eval_every == 0):
                    point = from_rank0(lambda: monitor.evaluate(module, step + 1)) if config.data_parallel \
                        else monitor.evaluate(module, step + 1)
                    log.signal.append(point)
                    if observe:
                        observe(point, module)
                    if _better(point, log.signal[log.best_step_index()]):
                        _copy(params, best)
                        log.best_step = point.step
                    bar.set_postfix(loss=f"{value:.4f}", signal=f"{point.value:+.4f}")
            else:
                log.status = "done"
    except KeyboardInterrupt:
        if updating:  # an interrupted update may have changed some tensors and not others
            _copy(current, params)
        log.status = "interrupted"
        log.message += f"interrupted after {len(log.loss)} steps; keeping the weights learned so far."
    finally:
        bar.close()
        if monitor:  # end with the best-scoring weights (step 0: the unadapted model), whatever stopped the run
            _copy(best, params)
        module.requires_grad_(False).to(memory_format=torch.contiguous_format)
    return log


def _better(point: SignalPoint, best: SignalPoint) -> bool:
    """Lower signal wins; a NaN never does."""
    return math.isfinite(point.value) and point.value < best.value


def _copy(sources: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
    with torch.no_grad():
        torch._foreach_copy_(targets, sources)
