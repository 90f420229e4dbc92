"""OpenVINO behind ``module(x)``: an exported .onnx compiled for the CPU, in bf16 where the CPU has it.

Why a second ONNX backend: on a Xeon with AMX, OpenVINO's bf16 inference ran x4plus 5x faster than ONNX Runtime
with our Winograd op (0.38 vs 2.05 s at 128 px), within 57 dB of float32. It is an optional extra
(``pip install 'lway-engine[openvino]'``); ``Upscaler(..., backend="auto")`` picks it where it is installed and the
CPU has native bf16, ONNX Runtime elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lway_engine.backends.base import ArtefactError, check_static_shape
from lway_engine.export.onnx import runtime_model
from lway_engine.models import LoadedModel
from lway_engine.weights.cache import sha256_file

INSTALL_HINT = "pip install 'lway-engine[openvino]'"


class OpenVinoUnavailable(RuntimeError):
    """``backend="openvino"`` was asked for but the package is not installed."""


def openvino_installed() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class _OpenVinoNetwork(nn.Module):
    """A compiled OpenVINO model behind ``module(x)``: takes and returns CPU float tensors of any H x W."""

    def __init__(self, compiled: object, path: Path) -> None:
        super().__init__()
        self.compiled, self.name = compiled, path.name
        self.request = compiled.create_infer_request()  # one request reused: no per-call allocation of its state
        self.declared = [d.get_length() if d.is_static else None for d in compiled.input(0).get_partial_shape()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_static_shape(self.declared, tuple(x.shape), self.name)
        result = self.request.infer({0: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})
        return torch.from_numpy(np.array(result[self.compiled.output(0)], dtype=np.float32))


def _metadata(path: Path) -> dict[str, str]:
    """The lway-engine metadata ``export`` wrote into the .onnx (read without loading external weights)."""
    import onnx

    return {prop.key: prop.value for prop in onnx.load_model(str(path), load_external_data=False).metadata_props}


def openvino_model(path: Path, bf16: bool) -> LoadedModel:
    """``path`` (.onnx) compiled for OpenVINO's CPU plugin, at bf16 inference precision when ``bf16``."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise OpenVinoUnavailable(f"OpenVINO is not installed; install it with: {INSTALL_HINT}") from exc
    try:
        metadata = _metadata(path)
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"})
    except Exception as exc:  # onnx's DecodeError, OpenVINO's RuntimeError for graphs it cannot read
        raise ArtefactError(f"{path.name}: OpenVINO cannot load it ({type(exc).__name__}: {exc})") from exc
    return runtime_model(_OpenVinoNetwork(compiled, path), metadata, path, sha256_file(path))
