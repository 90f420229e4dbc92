"""OpenVINO behind ``module(x)``: an exported .onnx (or a converted checkpoint, ``openvino_convert``) compiled for
the CPU, in bf16 where the CPU has it.

Why a second ONNX backend: on a Xeon with AMX, OpenVINO's bf16 inference ran x4plus 5x faster than ONNX Runtime
with our Winograd op (0.59 vs 2.79 s at 128 px), within 57 dB of float32, and faster than PyTorch's own bf16. It is
an optional extra (``pip install 'lway-engine[openvino]'``); ``Upscaler(..., backend="auto")`` picks it where it is
installed and the CPU has native bf16, ONNX Runtime (or PyTorch, for checkpoints) elsewhere.
"""

from __future__ import annotations

import threading
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
    """An OpenVINO model behind ``module(x)``: takes and returns CPU float tensors of any H x W.

    Its precision follows torch's CPU autocast at call time, as a PyTorch checkpoint's does: ``upscale_images``
    turns autocast on for 8-bit images only, so 16-bit ones run in float32 here too. Each precision is compiled on
    first use (``bf16`` False: float32 only), with as many threads as torch uses (``OMP_NUM_THREADS``, torchrun).
    One infer request per precision serves every caller, so calls from several threads take turns (a lock): sharing
    it unguarded handed threads each other's outputs. OpenVINO already spreads one call over the threads.
    """

    follows_autocast = True  # upscale_images: this module's precision follows autocast although it has no parameters

    def __init__(self, model: object, name: str, bf16: bool) -> None:
        super().__init__()
        self.model, self.name, self.bf16 = model, name, bf16
        self.declared = [d.get_length() if d.is_static else None for d in model.input(0).get_partial_shape()]
        self._compiled: dict[bool, tuple[object, object]] = {}
        self._lock = threading.Lock()

    def _request(self, bf16: bool) -> tuple[object, object]:
        if bf16 not in self._compiled:
            import openvino as ov

            config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
                      "INFERENCE_NUM_THREADS": torch.get_num_threads()}
            compiled = ov.Core().compile_model(self.model, "CPU", config)
            self._compiled[bf16] = compiled, compiled.create_infer_request()  # one request reused per precision
        return self._compiled[bf16]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_static_shape(self.declared, tuple(x.shape), self.name)
        bf16 = self.bf16 and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        with self._lock:  # the request's output buffer is copied out before the next caller runs it
            compiled, request = self._request(bf16)
            result = request.infer({0: np.ascontiguousarray(x.detach().cpu().float().numpy())})
            return torch.from_numpy(np.array(result[compiled.output(0)], dtype=np.float32))


def _metadata(path: Path) -> dict[str, str]:
    """The lway-engine metadata ``export`` wrote into the .onnx (read without loading external weights)."""
    import onnx

    return {prop.key: prop.value for prop in onnx.load_model(str(path), load_external_data=False).metadata_props}


def openvino_core() -> object:
    """OpenVINO's Core, or OpenVinoUnavailable naming the install command."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise OpenVinoUnavailable(f"OpenVINO is not installed; install it with: {INSTALL_HINT}") from exc
    return ov.Core()


def openvino_network(model: object, name: str, bf16: bool) -> _OpenVinoNetwork:
    """An OpenVINO model (``ov.Model``) as a module; its main precision is compiled now, so a graph the CPU plugin
    cannot compile fails here rather than on the first image."""
    network = _OpenVinoNetwork(model, name, bf16)
    network._request(bf16)
    return network


def openvino_model(path: Path, bf16: bool) -> LoadedModel:
    """``path`` (.onnx) read by OpenVINO for its CPU plugin; 8-bit images run at bf16 inference precision when
    ``bf16`` (see ``_OpenVinoNetwork``)."""
    core = openvino_core()
    try:
        metadata = _metadata(path)
        network = openvino_network(core.read_model(str(path)), path.name, bf16)
    except Exception as exc:  # onnx's DecodeError, OpenVINO's RuntimeError for graphs it cannot read
        raise ArtefactError(f"{path.name}: OpenVINO cannot load it ({type(exc).__name__}: {exc})") from exc
    return runtime_model(network, metadata, path, sha256_file(path))
