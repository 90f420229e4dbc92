"""``lway-engine adapt``: adapt an SR model on LR images and write everything a user needs to judge the result.

Outputs in OUTDIR: ``sr_before/`` and ``sr_after/`` (the model's results before and after adaptation),
``compare/<name>.png`` (LR enlarged | before | after), ``weights/`` (adapted weights in the input checkpoint's own
layout), ``report.json``, ``report.md`` and ``signal.png`` (the decision and why, loss and no-HR signal curves per
candidate; ``report.py``). The adaptation itself is ``Adapter``'s (``adapter.py``, the public API): with
``config.select`` (the default) ``select.py`` picks the candidate and the step, or keeps the unadapted weights when
no candidate beats them; per image in per-image mode.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from lway_engine.adaptation.adapter import Adapter
from lway_engine.adaptation.loop import AdaptConfig, AdaptLog
from lway_engine.adaptation.report import write_report
from lway_engine.adaptation.select import Decision
from lway_engine.adaptation.step import amp_dtype
from lway_engine.compiled import DynamicSizeNetwork
from lway_engine.media.images import Image, read_image, write_image
from lway_engine.models import LoadedModel
from lway_engine.reconstruction import LWayReconstruction
from lway_engine.upscale import UpscaleOptions, upscale_image

DEFAULT_RECONSTRUCTOR = Path(__file__).resolve().parent.parent / "assets" / "lway-er-x4.safetensors"


def _compare(lr: Image, before: Image, after: Image, scale: int) -> Image:
    enlarged = np.repeat(np.repeat(lr.rgb(), scale, axis=0), scale, axis=1)
    return Image(np.concatenate([enlarged, before.rgb(), after.rgb()], axis=1), None, 8)


def run_adaptation(model: LoadedModel, inputs: list[Path], outdir: Path, reconstruction: LWayReconstruction,
                   config: AdaptConfig, per_image: bool, progress: bool = True) -> dict[str, AdaptLog]:
    """Adapt over the whole set (one model) or per image (one model each) through ``Adapter``, then write all
    outputs. With ``config.compile`` the before/after inference is compiled too, once for all image and tile sizes.
    """
    started = time.perf_counter()
    device = next(model.module.parameters()).device
    amp_dtype(config.amp, device)  # an impossible --amp fails here, before any work
    images = {p.stem: read_image(p) for p in inputs}
    if len(images) != len(inputs):
        raise ValueError("two inputs share a file name; adapt them in separate runs")
    adapter = Adapter(model, reconstruction, progress_bar=progress, **asdict(config))
    options = UpscaleOptions(tile=512)
    runner = replace(model, module=DynamicSizeNetwork(model.module, device)) if config.compile else model
    before = {name: upscale_image(runner, img, options) for name, img in images.items()}
    groups = {name: [name] for name in images} if per_image else {"all": list(images)}
    runs: dict[str, AdaptLog] = {}
    decisions: dict[str, Decision] = {}
    after: dict[str, Image] = {}
    try:
        for run_name, names in groups.items():
            result = adapter.adapt([images[n] for n in names])
            runs[run_name], decisions[run_name] = result.log, result.decision
            result.save(outdir / "weights" / f"{'adapted' if run_name == 'all' else run_name}.safetensors")
            for n in names:  # model.module holds the result's weights until the next group starts
                after[n] = upscale_image(runner, images[n], options)
            if result.log.status == "interrupted":
                break
    finally:
        for name, img in after.items():
            write_image(outdir / "sr_before" / f"{name}.png", before[name])
            write_image(outdir / "sr_after" / f"{name}.png", img)
            write_image(outdir / "compare" / f"{name}.png", _compare(images[name], before[name], img, model.scale))
        settings = {**asdict(config), "model": str(model.path), "architecture": model.architecture,
                    "mode": "per-image" if per_image else "whole-set", "images": len(images),
                    "device": str(device)}
        write_report(outdir, settings, runs, decisions, time.perf_counter() - started)
    return runs
