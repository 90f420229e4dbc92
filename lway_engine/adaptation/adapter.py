"""``lway_engine.Adapter``: adaptation as a Python API, for apps that embed it (ComfyUI/chaiNNer nodes, notebooks).

The same pipeline as ``lway-engine adapt`` (selection by the no-HR signal by default, the unadapted weights kept
when adaptation would not help), without files: images go in as NumPy arrays, PIL images or paths; the result holds
the adapted module, the decision and the report as data, and hands out an ``Upscaler`` on the adapted weights or
saves them in the input checkpoint's own layout. ``cancel()`` from another thread stops a run at its next step and
keeps the best weights found so far.

    adapter = Adapter("realesrgan-x4plus")
    result = adapter.adapt(["scan1.png", "scan2.png"], progress=lambda done, total, loss: print(done, total))
    print(result.adapted, result.reason)
    result.save("adapted.safetensors")
    image = result.upscaler().upscale(read_image("scan1.png"))
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lway_engine.adaptation.gate import Reading, explainability, gate_sample
from lway_engine.adaptation.loop import AdaptConfig, AdaptLog, Hooks, adapt
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.report import report_data
from lway_engine.adaptation.select import Decision, adapt_and_select
from lway_engine.adapted_weights import OriginalLayout
from lway_engine.distributed import Topology
from lway_engine.hardware import resolve_amp
from lway_engine.media.images import Image, ImageLike, as_image, to_tensor
from lway_engine.models import LoadedModel, load_model
from lway_engine.reconstruction import LWayReconstruction, load_checkpoint

Progress = Callable[[int, int, float], None]  # (steps done, steps per run, loss)


@dataclass
class AdaptResult:
    """One adaptation: the module (adapted, or the unadapted one when that was better), why, and the report."""

    module: nn.Module
    decision: Decision
    log: AdaptLog
    report: dict
    _model: LoadedModel
    _layout: OriginalLayout

    @property
    def adapted(self) -> bool:
        return self.decision.adapted

    @property
    def reason(self) -> str:
        return self.decision.reason

    @property
    def step(self) -> int | None:
        """The step whose weights the module holds (None: a fixed schedule's end, or not adapted)."""
        return self.decision.step

    def save(self, path: str | Path) -> list[Path]:
        """Write the weights in the input checkpoint's own layout (.safetensors; plus .pth for wrapped inputs)."""
        return self._layout.save(self.module, Path(path))

    def upscaler(self, tile: int = 512, tile_pad: int = 64, precision: str = "auto") -> Any:
        """An ``Upscaler`` running these weights, without writing a file."""
        from lway_engine.inference.upscaler import Upscaler

        return Upscaler.from_model(replace(self._model, module=self.module), tile=tile, tile_pad=tile_pad,
                                   precision=precision)


class Adapter:
    """Adapts an SR model to LR images without HR. ``settings`` are ``AdaptConfig`` fields (iterations, lr,
    batch, crop, select, ...); ``amp`` defaults to bf16 on CPUs with native bf16 (``--amp auto``). ``topology``
    is this process's place under torchrun, for ``data_parallel`` runs (``adapt``'s CLI); one process by default."""

    def __init__(self, model: str | Path | LoadedModel = "realesrgan-x4plus",
                 reconstructor: str | Path | LWayReconstruction | None = None, device: str = "cpu",
                 progress_bar: bool = False, topology: Topology = Topology.single(), **settings: Any) -> None:
        from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR

        known = {f.name for f in fields(AdaptConfig)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"unknown settings {unknown}; AdaptConfig has {sorted(known)}")
        self.model = model if isinstance(model, LoadedModel) else load_model(model, device=device)
        self.device = next(self.model.module.parameters()).device
        if not isinstance(reconstructor, LWayReconstruction):
            reconstructor = load_checkpoint(reconstructor or DEFAULT_RECONSTRUCTOR, expect_scale=self.model.scale)
        self.reconstruction = reconstructor.to(self.device)
        self.progress_bar = progress_bar  # tqdm bars on the terminal (the CLI), besides the progress callback
        self.topology = topology
        settings.setdefault("amp", resolve_amp("auto", str(self.device)))
        self.config = AdaptConfig(**settings)
        self.loss = LWayLoss(hf_weight=self.config.hf_weight).to(self.device)
        self._layout = OriginalLayout(self.model.module, self.model.path)
        self._original = copy.deepcopy(self.model.module.state_dict())
        self._cancel = threading.Event()
        self._running = threading.Lock()  # one adapt() at a time: runs share the model's weights

    def cancel(self) -> None:
        """Stop the running ``adapt`` at its next step (thread-safe); it keeps the best weights so far."""
        self._cancel.set()

    def adapt(self, images: ImageLike | Sequence[ImageLike], per_image: bool = False,
              progress: Progress | None = None, set_explainability: Reading | None = None
              ) -> AdaptResult | list[AdaptResult]:
        """Adapt on ``images`` (one model for all, or with ``per_image`` one result per image, in order).

        Per image, each image's explainability gate also answers to its set's (the lower counts: one image's
        value is noisy): the set is ``images`` unless ``set_explainability`` gives it (``explainability``), as a
        caller that feeds one image at a time must."""
        if not self._running.acquire(blocking=False):
            raise RuntimeError("this Adapter is already adapting in another thread; give each thread its own Adapter")
        try:
            self._cancel.clear()  # before reading the images: a cancel() while they load stops the run
            items = [images] if isinstance(images, (str, Path, np.ndarray, Image)) or hasattr(images, "getexif") \
                else list(images)
            if not items:
                raise ValueError("give at least one image")
            tensors = [to_tensor(as_image(item).rgb())[0].to(self.device) for item in items]
            hooks = Hooks(stop=self._cancel.is_set) if progress is None else Hooks(progress, self._cancel.is_set)
            if per_image and self.config.select and set_explainability is None and len(tensors) > 1:
                set_explainability = self._explainability(tensors)
            groups = [[t] for t in tensors] if per_image else [tensors]
            results = [self._run(group, hooks, set_explainability) for group in groups]
        finally:
            self._running.release()
        return results if per_image else results[0]

    def explainability(self, images: Sequence[ImageLike]) -> Reading | None:
        """The explainability gate's reading (``gate.py``: its value and the tiles behind it) over ``images`` (up to
        8 of them, evenly spaced, are read), with the unadapted model; None when the reconstructor has no error
        model."""
        return self._explainability([to_tensor(as_image(item).rgb())[0].to(self.device)
                                     for item in gate_sample(list(images))])

    def _explainability(self, tensors: list[torch.Tensor]) -> Reading | None:
        self.model.module.load_state_dict(self._original)
        return explainability(self.model, self.reconstruction, tensors, self.loss, self.config.amp)

    def _run(self, tensors: list[torch.Tensor], hooks: Hooks, set_explainability: Reading | None = None
             ) -> AdaptResult:
        started = time.perf_counter()
        self.model.module.load_state_dict(self._original)
        if self.config.select:
            log, decision = adapt_and_select(self.model, tensors, self.reconstruction, self.loss, self.config,
                                             progress=self.progress_bar, hooks=hooks, topology=self.topology,
                                             set_explainability=set_explainability)
        else:
            log = adapt(self.model, tensors, self.reconstruction, self.loss, self.config, self.progress_bar,
                        hooks=hooks, topology=self.topology)
            steps = len(log.loss)
            decision = Decision(True, f"fixed schedule (--no-select), {steps} of {self.config.iterations} steps "
                                f"({log.status}): no held-out signal was scored", runs={"fixed": log}) if steps else \
                Decision(False, f"no step was taken ({log.status}): the unadapted weights are kept", runs={"fixed": log})
        log.message = " ".join(part for part in (log.message.strip(), decision.reason) if part)  # what the CLI prints
        settings = {**asdict(self.config), "model": str(self.model.path), "images": len(tensors)}
        report = report_data(settings, {"run": log}, {"run": decision}, time.perf_counter() - started)
        module = copy.deepcopy(self.model.module)
        return AdaptResult(module, decision, log, report, self.model, self._layout)
