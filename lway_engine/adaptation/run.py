"""``lway-engine adapt``: adapt an SR model on LR images and write everything a user needs to judge the result.

Outputs in OUTDIR: ``sr_before/`` and ``sr_after/`` (the model's results before and after adaptation),
``compare/<name>.png`` (LR enlarged | before | after), ``weights/`` (adapted weights in the input checkpoint's own
layout), ``report.json``, ``report.md`` and ``signal.png`` (the decision and why, loss and no-HR signal curves per
candidate; ``report.py``). The adaptation itself is ``Adapter``'s (``adapter.py``, the public API): with
``config.select`` (the default) ``select.py`` picks the candidate and the step, or keeps the unadapted weights when
no candidate beats them; per image in per-image mode, where ``runs/<name>.json`` marks each finished image and a
relaunch skips those.

Under torchrun (``topology`` of several ranks): per image, each rank adapts its shard of the images
(``distributed/sharding.py``) and rank 0 merges the records into the report once all ranks are done; whole set,
the ranks train one model together (DDP, ``loop.py``), each upscales its shard of the before/after images, and
rank 0 writes the weights and the report. A whole-set run that raises still gets its report (the settings, the
steps done and the error) before the exception goes on; Ctrl-C ends the loop cleanly and gets the full outputs.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from lway_engine.adaptation.adapter import Adapter
from lway_engine.adaptation.loop import AdaptConfig, AdaptLog, check_sizes, smallest_side
from lway_engine.adaptation.report import RunRecords, write_report
from lway_engine.adaptation.select import Decision
from lway_engine.adaptation.step import amp_dtype
from lway_engine.atomic import remove_stale_parts, writable_folder
from lway_engine.compiled import DynamicSizeNetwork
from lway_engine.distributed import Topology, gather_lists, local_slice, shard
from lway_engine.inference.upscale import UpscaleOptions, upscale_image
from lway_engine.media.images import Image, image_size, read_image, write_image
from lway_engine.models import LoadedModel
from lway_engine.reconstruction import LWayReconstruction

DEFAULT_RECONSTRUCTOR = Path(__file__).resolve().parent.parent / "assets" / "lway-er-x4.safetensors"
OPTIONS = UpscaleOptions(tile=512)  # the before/after inference


def _compare(lr: Image, before: Image, after: Image, scale: int) -> Image:
    enlarged = np.repeat(np.repeat(lr.rgb(), scale, axis=0), scale, axis=1)
    return Image(np.concatenate([enlarged, before.rgb(), after.rgb()], axis=1), None, 8)


def _write_outputs(outdir: Path, name: str, lr: Image, before: Image, after: Image, scale: int) -> None:
    write_image(outdir / "sr_before" / f"{name}.png", before)
    write_image(outdir / "sr_after" / f"{name}.png", after)
    write_image(outdir / "compare" / f"{name}.png", _compare(lr, before, after, scale))


def run_adaptation(model: LoadedModel, inputs: list[Path], outdir: Path, reconstruction: LWayReconstruction,
                   config: AdaptConfig, per_image: bool, progress: bool = True,
                   topology: Topology | None = None) -> dict[str, AdaptLog]:
    """Adapt over the whole set (one model) or per image (one model each) through ``Adapter``, then write all
    outputs; every rank returns the same runs. With ``config.compile`` the before/after inference is compiled too,
    once for all image and tile sizes."""
    started = time.perf_counter()
    topology = topology or Topology.single()
    device = next(model.module.parameters()).device
    amp_dtype(config.amp, device)  # an impossible --amp fails here, before any work
    writable_folder(outdir)  # and an output folder that cannot take the results, not after the adaptation
    paths = {p.stem: p for p in inputs}
    if len(paths) != len(inputs):
        raise ValueError("two inputs share a file name; adapt them in separate runs")
    if not per_image:
        local_slice(config.batch, topology)  # a batch the ranks cannot share fails here, before any work
    config = replace(config, data_parallel=topology.distributed and not per_image)
    for folder in (outdir, *(p for p in outdir.iterdir() if p.is_dir())) if outdir.is_dir() else ():
        remove_stale_parts(folder)  # temporaries of a killed earlier launch (live ranks' own are kept)
    job = {**asdict(config), "model": str(model.path)}
    adapter = Adapter(model, reconstruction, progress_bar=progress and topology.leader, topology=topology,
                      **asdict(config))
    check_sizes(config.crop, {path.name: image_size(path) for path in inputs},
                smallest_side(adapter.loss, model.size.multiple_of))  # before any work (unreadable: says why)
    runner = replace(model, module=DynamicSizeNetwork(model.module, device)) if config.compile else model
    settings = {**job, "architecture": model.architecture, "mode": "per-image" if per_image else "whole-set",
                "images": len(paths), "device": str(device), "processes": topology.world_size}
    if per_image:
        runs, decisions, skipped = _per_image(adapter, runner, paths, outdir, RunRecords(outdir / "runs", job),
                                              topology)
        settings["complete from an earlier launch"] = skipped
    else:
        steps = _Steps()
        try:
            runs, decisions = _whole_set(adapter, runner, paths, outdir, topology, steps)
        except BaseException as error:  # Ctrl-C in training ends the loop with a log (loop.py); outside it, here
            if topology.leader:
                write_report(outdir, settings, *steps.failed(error), time.perf_counter() - started)
            raise
    if topology.leader:
        write_report(outdir, settings, runs, decisions, time.perf_counter() - started)
    return runs


class _Steps:
    """The steps a whole-set run reports through ``Adapter``'s progress callback, kept outside the run so that a
    run that raises still leaves a report of how far it got."""

    def __init__(self) -> None:
        self.runs = 0  # runs started: selection runs one per candidate, each counting its steps from 1
        self.loss: list[float] = []  # the latest run's

    def __call__(self, done: int, total: int, loss: float) -> None:
        if done == 1:
            self.runs, self.loss = self.runs + 1, []
        self.loss.append(loss)

    def failed(self, error: BaseException) -> tuple[dict[str, AdaptLog], dict[str, Decision]]:
        """The run and decision a report states after ``error`` (an exception, or Ctrl-C outside the training loop:
        reading the images or writing the results): the steps done and the error, nothing adapted."""
        where = f"after {len(self.loss)} steps of run {self.runs}" if self.runs else "before the first step"
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        message = f"{status} {where}: {type(error).__name__}: {error}".rstrip(": ")
        log = AdaptLog(status=status, message=message, loss=list(self.loss))
        reason = (f"adaptation {message}. The outputs in this folder are incomplete (some may be an earlier run's)"
                  + ("; run the command again to redo them." if status == "interrupted" else "; see the traceback."))
        return {"all": log}, {"all": Decision(adapted=False, reason=reason, runs={"all": log})}


def _whole_set(adapter: Adapter, runner: LoadedModel, paths: dict[str, Path], outdir: Path, topology: Topology,
               steps: _Steps) -> tuple[dict[str, AdaptLog], dict[str, Decision]]:
    """One model on all images (trained by all ranks together); each rank upscales its shard before and after."""
    images = {name: read_image(path) for name, path in paths.items()}
    mine = shard(list(images), topology)
    before = {name: upscale_image(runner, images[name], OPTIONS) for name in mine}
    result = adapter.adapt(list(images.values()), progress=steps)  # model.module now holds its weights, every rank
    if topology.leader:
        result.save(outdir / "weights" / "adapted.safetensors")
    for name in mine:
        _write_outputs(outdir, name, images[name], before[name], upscale_image(runner, images[name], OPTIONS),
                       runner.scale)
    return {"all": result.log}, {"all": result.decision}


def _per_image(adapter: Adapter, runner: LoadedModel, paths: dict[str, Path], outdir: Path, records: RunRecords,
               topology: Topology) -> tuple[dict[str, AdaptLog], dict[str, Decision], int]:
    """One model per image, each rank its shard; images recorded complete by an earlier launch are skipped. Every
    rank returns the merged records of all images, read after all ranks are done."""
    module = adapter.model.module
    original = copy.deepcopy(module.state_dict())
    names = list(paths)
    mine = shard(names, topology)
    pending = [name for name in mine if not records.complete(name)]
    # every image's gate also answers to the whole set's (Adapter.adapt); the same value on every rank and launch
    whole_set = adapter.explainability([paths[name] for name in names]) \
        if pending and len(names) > 1 and adapter.config.select else None
    for name in pending:
        image = read_image(paths[name])
        module.load_state_dict(original)  # "before" is the unadapted model, whatever the last image left in it
        before = upscale_image(runner, image, OPTIONS)
        result = adapter.adapt(image, set_explainability=whole_set)
        result.save(outdir / "weights" / f"{name}.safetensors")
        _write_outputs(outdir, name, image, before, upscale_image(runner, image, OPTIONS), runner.scale)
        records.write(name, result.log, result.decision)
        if result.log.status == "interrupted":
            break
    skipped = sum(gather_lists([len(mine) - len(pending)]))  # also waits until every rank is done
    runs, decisions = records.load(names)
    return runs, decisions, skipped
