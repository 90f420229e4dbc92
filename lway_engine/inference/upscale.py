"""``lway-engine upscale``: super-resolve image files with any loaded model; one failing file never stops the rest.

Outputs are written atomically, so one that exists is complete: a killed job that is run again (by hand, or by
``torchrun --max-restarts``) skips them and does only the rest. Under torchrun each rank upscales its shard of the
files (``distributed/sharding.py``) and the outcomes are merged, so every rank reports the whole job.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lway_engine.atomic import remove_stale_parts, writable_folder
from lway_engine.distributed import Topology, gather_lists, shard
from lway_engine.media.images import (
    LUMA,
    READ_SUFFIXES,
    Image,
    ImageReadError,
    read_image,
    write_image,
)
from lway_engine.inference.tiles import upscale_tensor
from lway_engine.models import LoadedModel


class ImageTooSmall(ValueError):
    """The image is below the model's minimum input size."""


@dataclass(frozen=True)
class UpscaleOptions:
    """How to run the network: tiling, precision, output format, and what to do with alpha."""

    tile: int = 512
    tile_pad: int = 64
    fp16: bool = False
    bf16: bool = False  # autocast a PyTorch checkpoint to bfloat16 (8-bit images; 16-bit ones keep float32)
    ext: str = "png"  # output format: png, jpg, webp, tif, or auto (the input's own format)
    name_suffix: str = ""  # appended to each output's file name before the extension, e.g. "_x4"
    quality: int = 95  # JPEG / WebP quality
    outscale: float | None = None  # final size relative to the input (Lanczos from the model's output); None: scale
    alpha_mode: str = "model"  # "model": alpha goes through the network as a grey image; "bicubic": resized


@dataclass(frozen=True)
class Outcome:
    """What happened to one input file, and how long it took (read, upscale and write)."""

    source: Path
    output: Path | None
    error: str | None = None
    seconds: float = 0.0
    skipped: bool = False  # the output was already there (an earlier, interrupted run wrote it)


OUTPUT_EXTENSIONS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tif", ".tiff": "tif"}


def output_path(outdir: Path, source: Path, target: Path, options: UpscaleOptions) -> Path:
    """Where ``source`` (relative output ``target``, no extension) is written: name suffix, then extension."""
    ext = OUTPUT_EXTENSIONS.get(source.suffix.lower(), "png") if options.ext == "auto" else options.ext
    return outdir / target.with_name(target.name + options.name_suffix + "." + ext)


def resize_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W[, C]) float32 resized to ``size`` = (height, width) per plane with Lanczos-3 (Pillow, in float)."""
    from PIL import Image as PILImage

    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    height, width = size
    out = np.stack([np.asarray(PILImage.fromarray(np.ascontiguousarray(planes[..., c]), mode="F").resize(
        (width, height), PILImage.Resampling.LANCZOS)) for c in range(planes.shape[2])], axis=2)
    return out[..., 0] if pixels.ndim == 2 else out


def collect_inputs(inputs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(file, output path relative to OUTDIR, without suffix) for files and image files found under folders.

    Files keep their stem; files under a folder keep their path relative to it, so ``a/x.png`` and ``b/x.png``
    given as two folders would collide: that, and any other collision, is an error before any work starts.
    """
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in READ_SUFFIXES)
            pairs += [(p, p.relative_to(item).with_suffix("")) for p in found]
        elif item.is_file():
            pairs.append((item, Path(item.stem)))
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    seen: dict[Path, Path] = {}
    for source, target in pairs:
        if target in seen:
            raise ValueError(f"{seen[target]} and {source} would both be written to {target}; upscale them separately")
        seen[target] = source
    return pairs


def _network(model: LoadedModel, batch: np.ndarray, options: UpscaleOptions, bf16: bool, progress: bool
             ) -> np.ndarray:
    """The network on (N, H, W, 3) float RGB: (N, H * scale, W * scale, 3), tiled as ``options`` say."""
    parameter = next(model.module.parameters(), None)  # None: a runtime module (ONNX Runtime, TensorRT: upscaler.py)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = torch.float16 if options.fp16 else torch.float32
    layout = torch.channels_last if bf16 else torch.contiguous_format
    if model.in_channels == 1:
        batch = (batch @ LUMA)[..., None]
    x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
    x = x.to(device=device, dtype=dtype).contiguous(memory_format=layout)
    with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        y = upscale_tensor(model.module, x, model.scale, model.size, options.tile, options.tile_pad, progress)
    y = y.float().cpu().numpy().transpose(0, 2, 3, 1)
    return np.repeat(y, 3, axis=3) if y.shape[3] == 1 else y


def _follows_autocast(module: torch.nn.Module) -> bool:
    """PyTorch networks, and the OpenVINO runtime that mirrors them, take their precision from autocast; ONNX
    Runtime and TensorRT modules (no parameters) keep the precision they were built with."""
    return getattr(module, "follows_autocast", False) or next(module.parameters(), None) is not None


def upscale_images(model: LoadedModel, images: Sequence[Image], options: UpscaleOptions, progress: bool = False
                   ) -> list[Image]:
    """Super-resolve images of one size in one network call (per tile): a GPU's batch, e.g. video frames.
    Greyscale, bit depth and alpha are carried over to each result."""
    height, width = images[0].size
    if any(image.size != (height, width) for image in images):
        raise ValueError("images upscaled together must share one size")
    if min(height, width) < model.size.minimum:
        raise ImageTooSmall(f"image is {width}x{height}; this model needs at least "
                            f"{model.size.minimum}x{model.size.minimum}")
    # bf16 keeps 8 bits of mantissa: enough for 8-bit output (51-54 dB from float32 on photos), too coarse for 16-bit.
    bf16 = options.bf16 and _follows_autocast(model.module) and all(image.bit_depth == 8 for image in images)
    rgb = list(_network(model, np.stack([image.rgb() for image in images]), options, bf16, progress))
    alpha: list[np.ndarray | None] = [None] * len(images)
    with_alpha = [i for i, image in enumerate(images) if image.alpha is not None]
    if with_alpha and options.alpha_mode == "model":
        planes = np.stack([np.repeat(images[i].alpha[..., None], 3, axis=2) for i in with_alpha])
        for i, plane in zip(with_alpha, _network(model, planes, options, bf16, progress).mean(axis=3)):
            alpha[i] = plane
    for i in with_alpha if options.alpha_mode != "model" else ():
        a = torch.from_numpy(images[i].alpha)[None, None]
        alpha[i] = F.interpolate(a, scale_factor=model.scale, mode="bicubic", align_corners=False)[0, 0].numpy()
    if options.outscale is not None and options.outscale != model.scale:
        size = (max(1, round(height * options.outscale)), max(1, round(width * options.outscale)))
        rgb = [resize_to(r, size) for r in rgb]
        alpha = [None if a is None else resize_to(a, size) for a in alpha]
    return [image.with_rgb(r, a) for image, r, a in zip(images, rgb, alpha)]


def upscale_image(model: LoadedModel, image: Image, options: UpscaleOptions, progress: bool = False) -> Image:
    """Super-resolve one image; greyscale, bit depth and alpha are carried over to the result."""
    return upscale_images(model, [image], options, progress)[0]


def prepare_model(model: LoadedModel, options: UpscaleOptions) -> None:
    """Check the precision options against the model and its device, and convert it for ``--fp16``."""
    if options.fp16:
        parameter = next(model.module.parameters(), None)  # None: a runtime (ONNX Runtime, OpenVINO, TensorRT)
        if parameter is None or parameter.device.type != "cuda":
            raise ValueError("--fp16 runs a PyTorch model on a CUDA device (half-precision convolutions on the CPU "
                             "are slow and inexact; an exported runtime's precision is set when it is built); drop "
                             "--fp16 or pass --device cuda")
        if not model.supports_half:
            raise ValueError(f"{model.architecture} does not support fp16 inference")
        model.module.half()


def upscale_files(model: LoadedModel, inputs: Sequence[Path], outdir: Path, options: UpscaleOptions,
                  progress: bool = True, overwrite: bool = False, topology: Topology | None = None) -> list[Outcome]:
    """Upscale every input into ``outdir``; a file that fails is reported in its Outcome and the rest go on.
    Existing outputs are skipped unless ``overwrite``; under torchrun (``topology``) this rank does its shard and
    every rank returns the outcomes of all files, in input order."""
    topology = topology or Topology.single()
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f"-o {outdir} is a file; images are written into a folder")
    pairs = collect_inputs(inputs)
    if not pairs:
        raise ValueError(f"no image files ({', '.join(sorted(READ_SUFFIXES))}) in {', '.join(map(str, inputs))}")
    writable_folder(outdir)
    sources = {source.resolve() for source, _ in pairs}
    for dest in (output_path(outdir, source, target, options) for source, target in pairs):
        if dest.resolve() in sources:  # before any work: --overwrite would replace the original
            raise ValueError(f"{dest}: the output would overwrite an input; choose another output folder or a "
                             "--suffix")
    prepare_model(model, options)
    outcomes = []
    mine = shard(pairs, topology)
    for folder in {output_path(outdir, source, target, options).parent for source, target in mine}:
        remove_stale_parts(folder)  # a killed earlier run's temporaries
    bar = tqdm(mine, desc="upscale", unit="img", disable=not progress)
    for source, target in bar:
        bar.set_postfix_str(source.name)
        dest = output_path(outdir, source, target, options)
        if dest.exists() and not overwrite:
            outcomes.append(Outcome(source, dest, skipped=True))
            continue
        started = time.perf_counter()
        try:
            result = upscale_image(model, read_image(source), options, progress)
            write_image(dest, result, jpeg_quality=options.quality)
            outcomes.append(Outcome(source, dest, seconds=time.perf_counter() - started))
        except (ImageReadError, ImageTooSmall, ValueError, OSError) as exc:
            outcomes.append(Outcome(source, None, str(exc), time.perf_counter() - started))
    order = {source: i for i, (source, _) in enumerate(pairs)}
    return sorted(gather_lists(outcomes), key=lambda outcome: order[outcome.source])
