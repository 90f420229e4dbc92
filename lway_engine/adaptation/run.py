"""``lway-engine adapt``: adapt an SR model on LR images and write everything a user needs to judge the result.

Outputs in OUTDIR: ``sr_before/`` and ``sr_after/`` (the model's results before and after adaptation),
``compare/<name>.png`` (LR enlarged | before | after), ``weights/`` (adapted weights in the input checkpoint's own
layout), ``report.json``, ``report.md`` and ``signal.png`` (the decision and why, loss and no-HR signal curves per
candidate; ``report.py``). With ``config.select`` (the default) ``select.py`` picks the candidate and the step, or
keeps the unadapted weights when no candidate beats them; per image in per-image mode.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from lway_engine.adaptation.loop import AdaptConfig, AdaptLog, adapt
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.report import write_report
from lway_engine.adaptation.select import Decision, adapt_and_select
from lway_engine.adaptation.step import amp_dtype
from lway_engine.adapted_weights import OriginalLayout
from lway_engine.compiled import DynamicSizeNetwork
from lway_engine.imageio import Image, read_image, to_tensor, write_image
from lway_engine.models import LoadedModel
from lway_engine.reconstruction import LWayReconstruction
from lway_engine.upscale import UpscaleOptions, upscale_image

DEFAULT_RECONSTRUCTOR = Path(__file__).resolve().parent.parent / "assets" / "lway-er-x4.safetensors"


def _compare(lr: Image, before: Image, after: Image, scale: int) -> Image:
    enlarged = np.repeat(np.repeat(lr.rgb(), scale, axis=0), scale, axis=1)
    return Image(np.concatenate([enlarged, before.rgb(), after.rgb()], axis=1), None, 8)


def run_adaptation(model: LoadedModel, inputs: list[Path], outdir: Path, reconstruction: LWayReconstruction,
                   config: AdaptConfig, per_image: bool, progress: bool = True) -> dict[str, AdaptLog]:
    """Adapt over the whole set (one model) or per image (one model each), then write all outputs.

    With ``config.compile`` the before/after inference is compiled too, once for all image and tile sizes.
    """
    started = time.perf_counter()
    device = next(model.module.parameters()).device
    amp_dtype(config.amp, device)  # an impossible --amp fails here, before any work
    layout = OriginalLayout(model.module, model.path)
    original = copy.deepcopy(model.module.state_dict())
    images = {p.stem: read_image(p) for p in inputs}
    if len(images) != len(inputs):
        raise ValueError("two inputs share a file name; adapt them in separate runs")
    reconstruction = reconstruction.to(device)
    loss_fn = LWayLoss(hf_weight=config.hf_weight).to(device)
    options = UpscaleOptions(tile=512)
    runner = replace(model, module=DynamicSizeNetwork(model.module, device)) if config.compile else model
    before = {name: upscale_image(runner, img, options) for name, img in images.items()}
    groups = {name: [name] for name in images} if per_image else {"all": list(images)}
    runs: dict[str, AdaptLog] = {}
    decisions: dict[str, Decision] = {}
    after: dict[str, Image] = {}
    try:
        for run_name, names in groups.items():
            model.module.load_state_dict(original)
            tensors = [to_tensor(images[n].rgb())[0].to(device) for n in names]
            if config.select:
                runs[run_name], decisions[run_name] = adapt_and_select(model, tensors, reconstruction, loss_fn,
                                                                       config, progress=progress)
                runs[run_name].message += decisions[run_name].reason
            else:
                runs[run_name] = adapt(model, tensors, reconstruction, loss_fn, config, progress)
                decisions[run_name] = Decision(True, f"fixed schedule of {config.iterations} steps (--no-select): "
                                               "no held-out signal was scored", runs={"fixed": runs[run_name]})
            weights_name = "adapted" if run_name == "all" else run_name
            layout.save(model.module, outdir / "weights" / f"{weights_name}.safetensors")
            for n in names:
                after[n] = upscale_image(runner, images[n], options)
            if runs[run_name].status == "interrupted":
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
