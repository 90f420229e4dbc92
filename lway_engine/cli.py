"""The ``lway-engine`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    help="Self-supervised test-time adaptation of super-resolution models (LWay, CVPR 2024).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
weights_app = typer.Typer(help="List, fetch and verify pretrained weights in the cache ($LWAY_HOME).",
                          no_args_is_help=True)
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def weights_list() -> None:
    """Show every known weights entry, its sources in the order tried, and whether it is cached."""
    from lway_engine.weights import REGISTRY, cached_artefacts

    for name, entry in REGISTRY.items():
        cached = [c for c in cached_artefacts(name) if c.ok]
        status = f"cached: {cached[0].path}" if cached else "not cached"
        typer.echo(f"{name}  [{entry.kind}, {entry.license}]  {status}\n    {entry.description}")
        for i, source in enumerate(entry.sources, 1):
            typer.echo(f"    {i}. {source.label}  sha256={source.sha256}")


@weights_app.command("fetch")
def weights_fetch(
    names: Annotated[list[str], typer.Argument(help="Entries to fetch (see `weights list`).")],
    force: Annotated[bool, typer.Option(help="Produce again even if a verified copy is cached.")] = False,
) -> None:
    """Download or convert weights into the cache, checking each file's sha256 before it is used."""
    from lway_engine.weights import WeightsUnavailable, fetch

    failed = False
    for name in names:
        try:
            typer.echo(f"{name}: {fetch(name, force=force)}")
        except (KeyError, WeightsUnavailable) as exc:
            typer.echo(f"{name}: {exc.args[0]}", err=True)
            failed = True
    raise typer.Exit(1 if failed else 0)


@weights_app.command("verify")
def weights_verify(
    names: Annotated[Optional[list[str]], typer.Argument(help="Entries to check; default: all.")] = None,
) -> None:
    """Re-hash cached weights; exits 1 if any cached file is corrupt (fix with `weights fetch --force`)."""
    from lway_engine.weights import REGISTRY, verify

    corrupt = False
    for name in names or list(REGISTRY):
        results = verify(name)
        if not results:
            typer.echo(f"{name}: not cached")
        for result in results:
            typer.echo(f"{name}: {'ok' if result.ok else 'CORRUPT'}  {result.path}")
            corrupt |= not result.ok
    raise typer.Exit(1 if corrupt else 0)


@app.command()
def upscale(
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders (PNG, JPEG, WebP, TIFF).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the results.")],
    model: Annotated[str, typer.Option(help="Registry name or checkpoint path (.pth/.safetensors).")] = (
        "realesrgan-x4plus"),
    tile: Annotated[int, typer.Option(help="Tile size in input pixels; 0 runs each image whole.")] = 512,
    tile_pad: Annotated[int, typer.Option(help="Context pixels around each tile; 64 keeps Real-ESRGAN x4plus within 1/255 of untiled.")] = 64,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, cuda:1, ...")] = "cpu",
    fp16: Annotated[bool, typer.Option(help="Half precision (CUDA only).")] = False,
    ext: Annotated[str, typer.Option(help="Output format: png, tif, webp or jpg.")] = "png",
    alpha_mode: Annotated[str, typer.Option(help="Alpha channel: 'model' (through the network) or 'bicubic'.")] = (
        "model"),
) -> None:
    """Super-resolve images. Greyscale, 16-bit depth and alpha are kept; a failing file is reported and skipped,
    and the exit code is 1 if any file failed."""
    from lway_engine.models import ModelLoadError, load_model
    from lway_engine.upscale import UpscaleOptions, upscale_files
    from lway_engine.weights import WeightsUnavailable

    if ext not in ("png", "tif", "webp", "jpg") or alpha_mode not in ("model", "bicubic") or tile < 0 or tile_pad < 0:
        raise typer.BadParameter("check --ext (png|tif|webp|jpg), --alpha-mode (model|bicubic), --tile, --tile-pad")
    try:
        loaded = load_model(model, device=device)
        options = UpscaleOptions(tile=tile, tile_pad=tile_pad, fp16=fp16, suffix=f".{ext}", alpha_mode=alpha_mode)
        outcomes = upscale_files(loaded, inputs, output, options)
    except (ModelLoadError, WeightsUnavailable, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    failures = [o for o in outcomes if o.error]
    for outcome in failures:
        typer.echo(f"FAILED {outcome.source}: {outcome.error}", err=True)
    typer.echo(f"{len(outcomes) - len(failures)} of {len(outcomes)} images written to {output}")
    raise typer.Exit(1 if failures else 0)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the demo images.")] = Path("outputs/demo"),
    model: Annotated[str, typer.Option(help="Registry name or checkpoint path.")] = "realesrgan-x4plus",
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
) -> None:
    """Super-resolve scikit-image's bundled photos (downscaled 4x) and score them against bicubic."""
    from lway_engine.demo import run_demo
    from lway_engine.models import load_model

    loaded = load_model(model, device=device)
    typer.echo(f"model {model}: {loaded.architecture} x{loaded.scale} ({loaded.path})")
    rows = run_demo(loaded, output)
    typer.echo(f"\n{'photo':<10} {'PSNR-Y bicubic':>15} {'PSNR-Y model':>13} {'LPIPS bicubic':>14} {'LPIPS model':>12}")
    for r in rows:
        typer.echo(f"{r.name:<10} {r.psnr_bicubic:>15.2f} {r.psnr_model:>13.2f} {r.lpips_bicubic:>14.3f} "
                   f"{r.lpips_model:>12.3f}")
    typer.echo(f"\n(PSNR higher is better, LPIPS lower is better)\noutputs: {output.resolve()}  "
               "(<photo>_compare.png = bicubic | model | original)")
