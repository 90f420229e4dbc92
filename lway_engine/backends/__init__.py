"""Inference backends for exported artefacts, each wrapped as the ``module`` of a ``LoadedModel`` so that
``Upscaler`` tiles, pads and converts images the same way whatever runs the network.

- ``onnx_runtime``: .onnx in ONNX Runtime (CPU with lway's Winograd op, CUDA, TensorRT providers);
- ``openvino_runtime``: .onnx in OpenVINO on the CPU (optional extra; bf16 on CPUs with AMX / AVX512_BF16);
- ``openvino_convert``: a PyTorch checkpoint converted for it, verified and cached (where it beats PyTorch);
- ``tensorrt_engine``: a serialised TensorRT .engine on its GPU.
"""

from lway_engine.backends.base import ArtefactError, cuda_index
from lway_engine.backends.onnx_runtime import onnx_model, onnx_providers
from lway_engine.backends.openvino_runtime import OpenVinoUnavailable, openvino_installed, openvino_model
from lway_engine.backends.tensorrt_engine import engine_model

__all__ = ["ArtefactError", "OpenVinoUnavailable", "cuda_index", "engine_model", "onnx_model", "onnx_providers",
           "openvino_installed", "openvino_model"]
