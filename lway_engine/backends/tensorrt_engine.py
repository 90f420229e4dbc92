"""A serialised TensorRT engine (.engine) behind ``module(x)``, on the CUDA device it was built for."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lway_engine.backends.base import ArtefactError, cuda_index
from lway_engine.export.tensorrt import ShapeProfile, import_tensorrt
from lway_engine.models import MIN_INPUT_SIDE, LoadedModel, SizeRequirements
from lway_engine.weights.cache import sha256_file


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


def engine_model(path: Path, device: str) -> LoadedModel:
    import_tensorrt()  # the missing-package message comes before any device complaint
    if device == "cpu":
        raise ValueError(f"{path.name}: TensorRT engines run on a CUDA GPU; pass device='cuda'")
    network = _TensorRTNetwork(path, torch.device("cuda", cuda_index(device)))
    minimum = max(MIN_INPUT_SIDE, *network.profile.min[2:])
    return LoadedModel(module=network, architecture="tensorrt", scale=network.scale,
                       in_channels=network.profile.min[1], out_channels=network.out_channels,
                       size=SizeRequirements(minimum, 1, False), supports_half=False, path=path,
                       sha256=sha256_file(path))
