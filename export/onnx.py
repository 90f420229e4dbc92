"""ONNX export of SR checkpoints, checked against PyTorch with ONNX Runtime before the file appears.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript). With torch 2.14 both it and the
legacy TorchScript exporter give correct graphs for SRVGGNetCompact and RRDBNet (max abs error vs PyTorch ~4e-6
either way), but the TorchScript path is deprecated since torch 2.9 (a DeprecationWarning on every call) and gets
no fixes, while the dynamo path is the default, is what new architectures are tested against, names the dynamic
axes after our named ``Dim`` objects (``batch``, ``height``, ``width``; output ``4*height``), and already runs
onnxscript's optimiser (constant folding, dead-node removal: RRDBNet 1096 nodes vs 1187 from TorchScript). What is
left is only Conv/LeakyReLU/Concat/Add/Mul/Resize, so no further simplifier (onnxslim, not a dependency) is run.
Its cost is export time: RRDBNet (351 convs) takes ~70 s on two busy CPU cores against ~30 s for TorchScript, once
per export. It emits opset 18 natively; lower opsets (17 by default, which TensorRT 8.6 and older ONNX Runtimes
read) go through ONNX's version converter, and the ORT check below covers that step like any other.

Nothing reaches ``out`` unless ``onnx.checker`` passes and ONNX Runtime (CPU) matches the PyTorch model on real
photo crops at two sizes (the second with batch 2, exercising every dynamic axis): the file is written to a
temporary name, verified, then renamed (``lway_engine.atomic.atomic_write``).
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lway_engine import __version__
from lway_engine.atomic import atomic_write
from lway_engine.inference.tiles import _padding
from lway_engine.media.images import LUMA
from lway_engine.models import LoadedModel, SizeRequirements, load_model

VERIFY_SIZES = ((64, 48), (40, 72))  # (height, width): non-square, both orientations
FP32_TOLERANCE = 1e-3
# ORT's CPU provider runs a float16 graph by casting around fp32 kernels, so weights and activations are rounded to
# fp16 between layers as on a GPU; against the fp32 PyTorch model this measured 6.9e-4 (compact) and 9.3e-4 (x4plus).
FP16_TOLERANCE = 5e-3
INPUT_NAME, OUTPUT_NAME = "input", "output"


class OnnxVerificationError(ValueError):
    """An ONNX file is unreadable, invalid, or disagrees with the PyTorch model it came from."""


class OnnxExportError(RuntimeError):
    """torch.onnx could not convert the network (an operation or shape logic it cannot express)."""


@dataclass(frozen=True)
class ExportReport:
    """Where the verified model went, what it says about itself, and how close it is to PyTorch."""

    path: Path
    metadata: dict[str, str]
    max_abs_error: dict[str, float]  # per verified input shape, "NxCxHxW"
    tolerance: float
    seconds: float


class _HalfPrecision(nn.Module):
    """float32 in and out, float16 inside: callers keep feeding the same tensors as to the fp32 graph."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()


def _adaptation_settings(weights: Path) -> str | None:
    """Settings from ``lway-engine adapt``'s report.json (it writes OUT/report.json and OUT/weights/*.safetensors)."""
    folders = [weights.parent] + ([weights.parent.parent] if weights.parent.name == "weights" else [])
    for report in (folder / "report.json" for folder in folders):
        if report.is_file():
            try:
                return json.dumps(json.loads(report.read_text())["settings"], sort_keys=True)
            except (ValueError, KeyError, TypeError) as exc:
                warnings.warn(f"{report}: no adaptation settings recorded ({type(exc).__name__}: {exc})")
    return None


def describe(model: LoadedModel, precision: str) -> dict[str, str]:
    """The metadata_props written into every export; ``runtime_model`` reads them back."""
    meta = {
        "scale": str(model.scale),
        "architecture": model.architecture,
        "in_channels": str(model.in_channels),
        "out_channels": str(model.out_channels),
        "min_size": str(model.size.minimum),
        "multiple_of": str(model.size.multiple_of),
        "square": str(model.size.square).lower(),
        "precision": precision,
        "source_file": model.path.name,
        "source_sha256": model.sha256,
        "lway_engine_version": __version__,
    }
    adaptation = _adaptation_settings(model.path)
    if adaptation is not None:
        meta["adaptation"] = adaptation
    return meta


def runtime_model(module: nn.Module, metadata: Mapping[str, str], path: Path, sha256: str) -> LoadedModel:
    """A LoadedModel around a runtime's module (e.g. an ONNX Runtime session), from the metadata ``describe`` wrote."""
    try:
        size = SizeRequirements(int(metadata["min_size"]), int(metadata["multiple_of"]), metadata["square"] == "true")
        return LoadedModel(module=module, architecture=metadata["architecture"], scale=int(metadata["scale"]),
                           in_channels=int(metadata["in_channels"]), out_channels=int(metadata["out_channels"]),
                           size=size, supports_half=False, path=path, sha256=sha256)
    except (KeyError, ValueError) as exc:
        raise OnnxVerificationError(f"{path.name}: no lway-engine metadata ({exc}); export it with "
                                    "`lway-engine export WEIGHTS --onnx OUT.onnx`") from exc


def _fitted(size: tuple[int, int], requirements: SizeRequirements) -> tuple[int, int]:
    """The nearest (height, width) at or above ``size`` that the model accepts (minimum, multiple, square)."""
    height, width = (max(side, requirements.minimum) for side in size)
    pad_h, pad_w = _padding(height, width, requirements)
    return height + pad_h, width + pad_w


def photo_batch(size: tuple[int, int], batch: int, channels: int) -> np.ndarray:
    """(batch, C, H, W) float32 crops of scikit-image's astronaut, each from a different place."""
    from skimage import data

    photo = data.astronaut().astype(np.float32) / 255.0
    height, width = size
    reps = (-(-height // photo.shape[0]), -(-width // photo.shape[1]), 1)
    photo = np.tile(photo, reps) if reps != (1, 1, 1) else photo  # sizes beyond 512 px (static-shape exports)
    crops = []
    for i in range(batch):
        top = (photo.shape[0] - height) * (i + 1) // (batch + 1)
        left = (photo.shape[1] - width) * (batch - i) // (batch + 1)
        crops.append(photo[top : top + height, left : left + width])
    array = np.stack(crops)
    if channels == 1:
        array = (array @ LUMA)[..., None]
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2))


def _onnx_session(path: Path) -> object:
    """A CPU ONNX Runtime session, with load failures (truncated, corrupt, unsupported op) as OnnxVerificationError."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path), full_check=True)
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnx and ORT raise their own types (DecodeError, ValidationError, Fail, ...)
        raise OnnxVerificationError(f"{path.name}: not a valid ONNX model ({type(exc).__name__}: {exc})") from exc


def verify_onnx(path: Path, model: LoadedModel, sizes: Sequence[tuple[int, int]] = VERIFY_SIZES,
                tolerance: float = FP32_TOLERANCE) -> dict[str, float]:
    """Max abs error of ONNX Runtime (CPU) vs ``model`` on photo crops; raises when any exceeds ``tolerance``.

    The i-th size (raised to what the model accepts) is run with batch i + 1, so two sizes also check that the
    batch axis is really dynamic.
    """
    session = _onnx_session(path)
    device = next(model.module.parameters()).device
    errors: dict[str, float] = {}
    for i, size in enumerate(sizes):
        x = photo_batch(_fitted(size, model.size), i + 1, model.in_channels)
        with torch.inference_mode():
            expected = model.module(torch.from_numpy(x).to(device)).float().cpu().numpy()
        try:
            (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
        except Exception as exc:
            raise OnnxVerificationError(f"{path.name}: ONNX Runtime failed on input {x.shape}: {exc}") from exc
        label = "x".join(map(str, x.shape))
        if actual.shape != expected.shape:
            raise OnnxVerificationError(f"{path.name}: output {actual.shape} for input {label}; PyTorch gives "
                                        f"{expected.shape}")
        errors[label] = float(np.abs(actual.astype(np.float32) - expected).max())
        if not errors[label] <= tolerance:  # also catches NaN
            raise OnnxVerificationError(f"{path.name}: ONNX Runtime differs from PyTorch by {errors[label]:.3g} "
                                        f"(max abs) on input {label}; tolerance {tolerance:g}")
    return errors


def export_onnx(weights: str | Path, out: Path, opset: int = 17, fp16: bool = False,
                static_shape: tuple[int, int] | None = None,
                verify_sizes: Sequence[tuple[int, int]] = VERIFY_SIZES) -> ExportReport:
    """Export a checkpoint (or registry name) to ``out`` and verify it; raises without touching ``out`` on failure.

    Batch, height and width are dynamic unless ``static_shape`` (height, width) fixes the spatial size (batch stays
    dynamic; verification then runs at that size only). ``fp16`` stores weights and activations in float16 but keeps
    float32 input and output, so callers feed both graphs alike.
    """
    import onnx
    from torch.export import Dim

    started = time.perf_counter()
    out = Path(out)
    model = load_model(weights)
    if fp16 and not model.supports_half:
        raise ValueError(f"{model.architecture} does not support fp16 inference; export without --fp16")
    if static_shape is not None and _fitted(static_shape, model.size) != tuple(static_shape):
        raise ValueError(f"static shape {static_shape} does not fit this model ({model.size}); the nearest that "
                         f"does is {_fitted(static_shape, model.size)}")
    network = _HalfPrecision(copy.deepcopy(model.module)).eval() if fp16 else model.module
    metadata = describe(model, "fp16" if fp16 else "fp32")
    height, width = static_shape or _fitted((64, 64), model.size)
    example = torch.rand(2, model.in_channels, height, width)  # batch 2: torch.export specialises dims of size 1
    spatial = {} if static_shape else {2: Dim("height", min=model.size.minimum),
                                       3: Dim("width", min=model.size.minimum)}
    tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    errors: dict[str, float] = {}

    def write(tmp: Path) -> None:
        try:
            torch.onnx.export(network, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, dynamo=True, external_data=False, verbose=False,
                              dynamic_shapes=({0: Dim("batch"), **spatial},))
        except Exception as exc:  # torch.export and onnxscript raise many types
            raise OnnxExportError(f"torch.onnx cannot export {model.architecture} ({model.path.name}) at opset "
                                  f"{opset}: {type(exc).__name__}: {exc}") from exc
        proto = onnx.load(str(tmp))
        reached = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
        if reached != opset:  # torch.onnx logs a failed down-conversion and keeps its own opset 18
            raise OnnxExportError(f"torch.onnx could not convert {model.architecture} to opset {opset} (ONNX's "
                                  f"version converter lacks one of its operators there); it stayed at opset "
                                  f"{reached}. Opsets 17 (the default) and 18 are known to work")
        onnx.helper.set_model_props(proto, metadata)
        onnx.save(proto, str(tmp))

    def check(tmp: Path) -> None:
        errors.update(verify_onnx(tmp, model, [static_shape] * 2 if static_shape else verify_sizes, tolerance))

    atomic_write(out, write, check, suffix=".onnx")
    return ExportReport(out, metadata, errors, tolerance, time.perf_counter() - started)
