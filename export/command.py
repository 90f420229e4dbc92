"""``lway-engine export``: a checkpoint to a verified ONNX file and, optionally, a TensorRT engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"640x640"`` -> (640, 640), ``"4x256x256"`` -> (4, 256, 256); None stays None."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) not in (2, 3):
        raise typer.BadParameter(f"{text!r}: expected HxW or NxHxW, e.g. 640x640")
    return shape


def export_command(
    weights: Annotated[str, typer.Argument(help="Checkpoint (.pth/.safetensors, e.g. adapted weights) or registry "
                                           "name.", show_default=False)],
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.", dir_okay=False, show_default=False)],
    opset: Annotated[int, typer.Option(help="ONNX opset (17 suits TensorRT >= 8.6 and ONNX Runtime >= 1.14; "
                                       "the exporter writes 18 and converts down).")] = 17,
    fp16: Annotated[bool, typer.Option("--fp16", help="float16 weights and activations (float32 input/output); "
                                       "verified with a looser tolerance.")] = False,
    static_shape: Annotated[Optional[tuple[int, int]], typer.Option(
        "--static-shape", metavar="H W", help="Fix the input height and width (batch stays dynamic).")] = None,
    trt: Annotated[bool, typer.Option("--trt", help="Also build a TensorRT engine next to the ONNX file "
                                      "(OUT.engine); needs a CUDA GPU and TensorRT.")] = False,
    trt_min: Annotated[Optional[str], typer.Option(help="Smallest input, HxW or NxHxW (default: the model's "
                                                   "minimum side).", show_default=False)] = None,
    trt_opt: Annotated[Optional[str], typer.Option(help="Input shape to tune for (default: the max, the size of "
                                                   "most tiles).", show_default=False)] = None,
    trt_max: Annotated[Optional[str], typer.Option(help="Largest input (default 640x640, the `upscale` default tile "
                                                   "512 + 2*64 pad).", show_default=False)] = None,
    precision: Annotated[str, typer.Option(help="TensorRT precision: fp16, bf16 or tf32.")] = "fp16",
) -> None:
    """Export an SR checkpoint to ONNX, verify it, and optionally build a TensorRT engine.

    The ONNX file has dynamic batch/height/width (unless --static-shape), carries the scale, architecture, source
    sha256, lway-engine version and, for adapted weights, the adaptation settings as metadata, and is only written
    once ONNX Runtime reproduces PyTorch on real photo crops at two sizes (max abs error <= 1e-3; 5e-3 with --fp16).
    Engines are cached by ONNX sha256, shape profile, precision, TensorRT version and GPU, so an identical request
    reuses the cached engine instead of rebuilding. Run the result with lway_engine.Upscaler.
    """
    from lway_engine.export.onnx import OnnxExportError, OnnxVerificationError, export_onnx
    from lway_engine.export.tensorrt import (
        PRECISIONS,
        EngineBuildError,
        TensorRTUnavailable,
        build_engine,
        import_tensorrt,
    )
    from lway_engine.models import ModelLoadError
    from lway_engine.weights import WeightsUnavailable

    if precision not in PRECISIONS:
        raise typer.BadParameter(f"choose one of {', '.join(PRECISIONS)}", param_hint="'--precision'")
    shapes = [parse_shape(text) for text in (trt_min, trt_opt, trt_max)]
    try:
        if trt:
            import_tensorrt()  # fail before a long export, not after
        report = export_onnx(weights, onnx, opset=opset, fp16=fp16, static_shape=static_shape)
        errors = ", ".join(f"{shape}: {error:.2e}" for shape, error in report.max_abs_error.items())
        typer.echo(f"{report.path}  (verified with ONNX Runtime; max abs error vs PyTorch {errors}; "
                   f"{report.seconds:.0f} s)")
        if trt:
            engine = build_engine(onnx, onnx.with_suffix(".engine"), precision, *shapes)
            typer.echo(f"{engine.path}  ({'built' if engine.built else 'from cache'}, {precision}, {engine.profile})")
    except (ModelLoadError, WeightsUnavailable, TensorRTUnavailable, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)  # what was asked cannot run here: 2, as the other commands
        raise typer.Exit(2) from None
    except (OnnxExportError, OnnxVerificationError, EngineBuildError) as exc:
        typer.echo(f"error: {exc}", err=True)  # the export itself failed
        raise typer.Exit(1) from None
