"""Degrade image files: folders expanded, one LR PNG per HR input, per-file seeds independent of the batch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import torch

from lway_engine.degradations.pipelines import PIPELINES, degrade
from lway_engine.media.images import READ_SUFFIXES, Image, image_size, read_image, write_image


def expand_inputs(inputs: Iterable[Path]) -> list[Path]:
    """Files as given; folders replaced by their image files (by suffix, sorted, not recursive)."""
    files: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in READ_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def file_seed(seed: int, name: str) -> int:
    """Seed for one file from the run's seed and the file's name, so adding, removing or reordering other
    inputs never changes this file's degradation."""
    digest = hashlib.sha256(f"{int(seed)}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def output_path(outdir: Path, source: Path) -> Path:
    return Path(outdir) / f"{source.stem}.png"


def degrade_files(inputs: list[Path], outdir: Path, pipeline: str, seed: int, scale: int = 4) -> list[Path]:
    """Write ``outdir/<stem>.png`` = ``degrade(HR, pipeline, file_seed(seed, name), scale)`` for every input.

    Colour only: alpha is dropped and greyscale is replicated to RGB; outputs are 8-bit PNGs. Raises before
    writing anything if the pipeline is unknown, there are no images, two inputs share a stem, an output would
    overwrite an input, or an input is smaller than ``scale``; an unreadable image raises ``ImageReadError`` naming
    it, also before anything is written (sizes come from the headers).
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; valid: {', '.join(PIPELINES)}")
    files = expand_inputs(inputs)
    if not files:
        raise ValueError(f"no image files in {', '.join(map(str, inputs))} (folders are read one level deep)")
    for source in files:
        height, width = image_size(source)
        if min(height, width) < scale:
            raise ValueError(f"{source.name}: {width}x{height} px is smaller than the scale factor {scale}")
    outputs = [output_path(outdir, f) for f in files]
    seen: dict[Path, Path] = {}
    for source, target in zip(files, outputs):
        if target in seen:
            raise ValueError(f"{source} and {seen[target]} would both be written to {target}")
        seen[target] = source
    sources = {f.resolve() for f in files}
    clash = [t for t in outputs if t.resolve() in sources]
    if clash:
        raise ValueError(f"refusing to overwrite input {clash[0]}; choose another output folder")
    for source, target in zip(files, outputs):
        hr = torch.from_numpy(read_image(source).rgb()).permute(2, 0, 1)
        lr = degrade(hr, pipeline, file_seed(seed, source.name), scale)
        write_image(target, Image(lr.permute(1, 2, 0).numpy().astype("float32"), None, 8))
    return outputs
