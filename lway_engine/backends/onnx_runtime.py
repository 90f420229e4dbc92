"""ONNX Runtime behind ``module(x)``: the providers for a device and the session an .onnx file opens in.

On the CPU, the 3x3 convolutions run through lway-engine's Winograd custom op (``lway_engine.export.ort_winograd``)
unless ``cpu_kernels`` is False.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lway_engine.backends.base import ArtefactError, check_static_shape, cuda_index
from lway_engine.export.onnx import runtime_model
from lway_engine.export.ort_winograd import RewriteReport, cpu_session_source
from lway_engine.models import LoadedModel
from lway_engine.weights.cache import lway_home, sha256_file


def onnx_providers(device: str) -> list[tuple[str, dict]]:
    """ONNX Runtime providers for ``device``: on a GPU TensorRT, CUDA, then CPU, keeping only those this build has.

    ORT drops a listed GPU provider whose libraries fail to load (and logs why), so the session's
    ``get_providers()`` says what really runs.
    """
    import onnxruntime as ort

    if device == "cpu":
        return [("CPUExecutionProvider", {})]
    index = cuda_index(device)
    wanted = [
        ("TensorrtExecutionProvider", {"device_id": index, "trt_engine_cache_enable": True,
                                       "trt_engine_cache_path": str(lway_home() / "tensorrt" / "onnxruntime")}),
        ("CUDAExecutionProvider", {"device_id": index}),
        ("CPUExecutionProvider", {}),
    ]
    available = set(ort.get_available_providers())
    return [(name, options) for name, options in wanted if name in available]


class _OnnxRuntimeNetwork(nn.Module):
    """An ONNX Runtime session behind ``module(x)``: takes and returns CPU float tensors."""

    def __init__(self, session: object, path: Path) -> None:
        super().__init__()
        self.session = session
        self.name = path.name
        (graph_input,) = session.get_inputs()
        self.input_name, self.output_name = graph_input.name, session.get_outputs()[0].name
        self.declared = [d if isinstance(d, int) else None for d in graph_input.shape]
        self.dtype = np.float16 if graph_input.type == "tensor(float16)" else np.float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_static_shape(self.declared, tuple(x.shape), self.name)
        (y,) = self.session.run([self.output_name], {self.input_name: x.cpu().numpy().astype(self.dtype)})
        return torch.from_numpy(y).float()


def onnx_model(path: Path, device: str, cpu_kernels: bool) -> tuple[LoadedModel, list[str], RewriteReport | None]:
    """The session behind an .onnx file; on the CPU its 3x3 convolutions run through lway's Winograd kernel
    (``lway_engine.export.ort_winograd``) unless ``cpu_kernels`` is False."""
    import onnxruntime as ort

    options, source, report = ort.SessionOptions(), str(path), None
    try:
        if device == "cpu" and cpu_kernels:
            source, report = cpu_session_source(path, options)
        session = ort.InferenceSession(source, options, providers=onnx_providers(device))
    except Exception as exc:  # onnx/ORT raise DecodeError, InvalidProtobuf, Fail, NoSuchFile, ... for bad files
        raise ArtefactError(f"{path.name}: ONNX Runtime cannot load it ({type(exc).__name__}: {exc})") from exc
    metadata = session.get_modelmeta().custom_metadata_map
    model = runtime_model(_OnnxRuntimeNetwork(session, path), metadata, path, sha256_file(path))
    return model, session.get_providers(), report
