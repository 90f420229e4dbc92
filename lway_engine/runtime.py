"""``Upscaler``: the one class an application embeds to super-resolve images with any lway-engine artefact.

The backend follows the file: a checkpoint (.pth/.ckpt/.safetensors, or a registry name) runs in PyTorch, an
exported .onnx in ONNX Runtime, a .engine in TensorRT. Each backend is wrapped as the ``module`` of a
``LoadedModel``, so every one of them goes through the same ``upscale_image`` (greyscale, alpha, 16-bit) and the
same overlapping tiles (``upscale_tensor``) as ``lway-engine upscale``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lway_engine.export.onnx import runtime_model
from lway_engine.export.ort_winograd import RewriteReport, cpu_session_source
from lway_engine.export.tensorrt import ShapeOutsideProfile, ShapeProfile, import_tensorrt
from lway_engine.imageio import Image, read_image, write_image
from lway_engine.models import MIN_INPUT_SIDE, LoadedModel, SizeRequirements, load_model
from lway_engine.upscale import UpscaleOptions, upscale_image
from lway_engine.weights.cache import lway_home, sha256_file


class ArtefactError(ValueError):
    """A model file the runtime cannot load (corrupt, truncated, wrong kind, or made for another device)."""


def _cuda_index(device: str) -> int:
    """``cuda`` -> 0, ``cuda:1`` -> 1; anything else is not a GPU request."""
    kind, _, index = device.partition(":")
    if kind != "cuda":
        raise ValueError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    return int(index or 0)


def onnx_providers(device: str) -> list[tuple[str, dict]]:
    """ONNX Runtime providers for ``device``: on a GPU TensorRT, CUDA, then CPU, keeping only those this build has.

    ORT drops a listed GPU provider whose libraries fail to load (and logs why), so the session's
    ``get_providers()`` says what really runs.
    """
    import onnxruntime as ort

    if device == "cpu":
        return [("CPUExecutionProvider", {})]
    index = _cuda_index(device)
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
        if any(d is not None and d != s for d, s in zip(self.declared, x.shape)):
            declared = "x".join("?" if d is None else str(d) for d in self.declared)
            raise ShapeOutsideProfile(f"input {'x'.join(map(str, x.shape))} does not fit {self.name}, exported for "
                                      f"{declared} (static shape); re-export with dynamic shapes or match --tile")
        (y,) = self.session.run([self.output_name], {self.input_name: x.cpu().numpy().astype(self.dtype)})
        return torch.from_numpy(y).float()


def _onnx_model(path: Path, device: str, cpu_kernels: bool) -> tuple[LoadedModel, list[str], RewriteReport | None]:
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


class _TensorRTNetwork(nn.Module):
    """A deserialised TensorRT engine behind ``module(x)``; tensors move to its GPU and back to the caller's device."""

    def __init__(self, path: Path, device: torch.device) -> None:
        super().__init__()
        trt = import_tensorrt()
        self.device, self.name = device, path.name
        with torch.cuda.device(device):
            self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))  # must outlive the engine it deserialises
            self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
            if self.engine is None:
                raise ArtefactError(f"{path.name}: TensorRT {trt.__version__} cannot deserialise it (corrupt, or "
                                    "built with another TensorRT version or GPU); build it again from the .onnx")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {name: self.engine.get_tensor_mode(name) for name in names}
        self.input_name = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)
        dtypes = {trt.float32: torch.float32, trt.float16: torch.float16, trt.bfloat16: torch.bfloat16}
        self.input_dtype = dtypes[self.engine.get_tensor_dtype(self.input_name)]
        self.output_dtype = dtypes[self.engine.get_tensor_dtype(self.output_name)]
        shapes = self.engine.get_tensor_profile_shape(self.input_name, 0)
        self.profile = ShapeProfile(*(tuple(int(d) for d in s) for s in shapes))
        self.context.set_input_shape(self.input_name, self.profile.opt)
        out = tuple(self.context.get_tensor_shape(self.output_name))
        self.scale = out[2] // self.profile.opt[2]
        self.out_channels = out[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.profile.check(tuple(x.shape), self.name)
        with torch.cuda.device(self.device):
            source = x.to(self.device, self.input_dtype).contiguous()
            self.context.set_input_shape(self.input_name, tuple(source.shape))
            y = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.output_dtype,
                            device=self.device)
            self.context.set_tensor_address(self.input_name, source.data_ptr())
            self.context.set_tensor_address(self.output_name, y.data_ptr())
            if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
                raise RuntimeError(f"{self.name}: TensorRT execution failed; its log above says why")
            return y.float().to(x.device)  # same stream, so ordered after the engine; a CPU x waits for it


def _engine_model(path: Path, device: str) -> LoadedModel:
    import_tensorrt()  # the missing-package message comes before any device complaint
    if device == "cpu":
        raise ValueError(f"{path.name}: TensorRT engines run on a CUDA GPU; pass device='cuda'")
    network = _TensorRTNetwork(path, torch.device("cuda", _cuda_index(device)))
    minimum = max(MIN_INPUT_SIDE, *network.profile.min[2:])
    return LoadedModel(module=network, architecture="tensorrt", scale=network.scale,
                       in_channels=network.profile.min[1], out_channels=network.out_channels,
                       size=SizeRequirements(minimum, 1, False), supports_half=False, path=path,
                       sha256=sha256_file(path))


class Upscaler:
    """Super-resolve images with a checkpoint, an ONNX file or a TensorRT engine, chosen by the file's suffix.

    ``tile``/``tile_pad`` as in ``lway-engine upscale`` (0 runs images whole). ``device`` is ``cpu``, ``cuda`` or
    ``cuda:N``; for ONNX, ``cuda`` means TensorRT, CUDA and CPU providers in that order (``providers`` lists those
    that loaded). Shapes outside an engine's or static ONNX export's profile raise ``ShapeOutsideProfile``, images
    below the model's minimum ``ImageTooSmall``. On the CPU an ONNX model's 3x3 convolutions run through
    lway-engine's Winograd kernel (``cpu_kernels_report`` says how many; ``cpu_kernels=False`` keeps ORT's own).
    """

    def __init__(self, path: str | Path, device: str = "cpu", tile: int = 512, tile_pad: int = 64,
                 cpu_kernels: bool = True) -> None:
        suffix = Path(path).suffix.lower()
        self.providers: list[str] = []
        self.cpu_kernels_report: RewriteReport | None = None
        if suffix in (".onnx", ".engine") and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
        if suffix == ".onnx":
            self.backend = "onnxruntime"
            self.model, self.providers, self.cpu_kernels_report = _onnx_model(Path(path), device, cpu_kernels)
        elif suffix == ".engine":
            self.backend = "tensorrt"
            self.model = _engine_model(Path(path), device)
        else:
            self.backend = "pytorch"
            self.model = load_model(path, device=device)
        self.options = UpscaleOptions(tile=tile, tile_pad=tile_pad)

    @property
    def scale(self) -> int:
        return self.model.scale

    def upscale(self, image: Image) -> Image:
        """The super-resolved image, of the same kind (greyscale/colour, bit depth, alpha) as ``image``."""
        return upscale_image(self.model, image, self.options)

    def upscale_file(self, src: str | Path, dest: str | Path) -> None:
        """Read ``src``, upscale, write ``dest`` atomically (format from its suffix)."""
        write_image(dest, self.upscale(read_image(src)))
