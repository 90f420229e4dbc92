"""``lway-engine degrade``: make LR images from HR ones with a named, seeded degradation pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lway_engine.degradations.catalog import DESCRIPTIONS


def degrade_command(
    inputs: Annotated[list[Path], typer.Argument(help="HR image files or folders of images (not their "
                                                 "subfolders).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the LR PNGs (<stem>.png).",
                                         file_okay=False)],
    pipeline: Annotated[str, typer.Option("--pipeline", "-p", help="Degradation pipeline (see above).")],
    seed: Annotated[int, typer.Option("--seed", "-s", help="Run seed; each file's seed derives from it and the "
                                      "file name.")],
    scale: Annotated[int, typer.Option("--scale", min=1, max=16, help="Downscaling factor.")] = 4,
) -> None:
    from lway_engine.degradations.files import degrade_files
    from lway_engine.media.images import ImageReadError

    if pipeline not in DESCRIPTIONS:
        raise typer.BadParameter(f"unknown pipeline {pipeline!r}; valid: {', '.join(DESCRIPTIONS)}",
                                 param_hint="'--pipeline'")
    try:
        written = degrade_files(list(inputs), output, pipeline, seed, scale)
    except (ImageReadError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for path in written:
        typer.echo(str(path))


degrade_command.__doc__ = "\n\n".join([
    "Synthesise LR images from HR ones: reproducible (same --seed, same bytes) and independent of which other "
    "files are in the run. HR sides that are not multiples of --scale are cropped (top-left kept) first; "
    "output is exactly (H // scale) x (W // scale), 8-bit RGB PNG.",
    "Pipelines:",
    *[f"{name}: {text}" for name, text in DESCRIPTIONS.items()],
])
