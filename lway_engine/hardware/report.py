"""``lway-engine info``: versions, devices, instruction sets and which fast paths this installation uses.

A user reporting "adapt is slow" or "export fails" can paste one block that answers the first questions: is the C++
extension loaded, does ONNX Runtime get our Winograd op, is TensorRT importable, and does this CPU run bf16.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

import torch

from lway_engine.hardware.cpu import cpu_features
from lway_engine.hardware.precision import inference_bf16, resolve_amp

_PACKAGES = ("lway-engine", "torch", "torchvision", "triton", "onnxruntime-gpu", "onnxruntime", "onnx", "tensorrt",
             "openvino", "lpips", "spandrel", "numpy", "pillow", "typer")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _fast_paths() -> dict[str, Any]:
    """Each optional accelerated path and whether it is active here (with the reason when it is not)."""
    from lway_engine.export.ort_winograd import cpu_supported, library_path
    from lway_engine.ext import build_info, extension_available
    from lway_engine.inference.upscaler import choose_backend

    try:
        import tensorrt  # noqa: F401

        trt: Any = True
    except ImportError:
        trt = "not installed (pip install 'lway-engine[trt]' on a CUDA machine)"
    winograd: Any = library_path() is not None and cpu_supported()
    if not winograd:
        winograd = "library not built" if library_path() is None else "this CPU lacks AVX2+FMA"
    return {
        "cpp_extension": True if extension_available() else "not loaded: the PyTorch fallbacks are used",
        "cpp_extension_build": build_info(),
        "ort_winograd_op": winograd,
        "cuda": torch.cuda.is_available() or "no CUDA device",
        "triton_kernels": torch.cuda.is_available() and _version("triton") is not None or "need a CUDA device",
        "tensorrt": trt,
        "adapt_amp_auto_cpu": resolve_amp("auto", "cpu") or "fp32",
        "upscale_checkpoint_cpu": "bf16" if inference_bf16("auto", "cpu") else "fp32",
        "checkpoint_backend_auto_cpu": choose_backend("auto", "cpu", "checkpoint"),
        "onnx_backend_auto_cpu": choose_backend("auto", "cpu", "onnx"),
    }


def system_report() -> dict[str, Any]:
    """Everything ``info`` prints, as data (also what benchmarks can record)."""
    devices = [{"name": torch.cuda.get_device_name(i),
                "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
               for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in _PACKAGES},
        "cpu": {**cpu_features().as_dict(), "torch_capability": torch.backends.cpu.get_cpu_capability(),
                "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "cuda_devices": devices,
        "fast_paths": _fast_paths(),
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned ``key: value`` lines in sections, for a terminal or a bug report."""
    def value(v: Any) -> str:
        return "yes" if v is True else "no" if v is False else "-" if v is None else str(v)

    cpu = report["cpu"]
    flags = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if cpu[name]]
    lines = [f"python        {report['python']} on {report['platform']}",
             f"cpu           {cpu['model']} ({cpu['machine']}), {cpu['logical_cores']} logical cores, "
             f"torch uses {cpu['torch_threads']} threads",
             f"isa           {' '.join(flags) or 'none of avx2/avx512'} (torch dispatch: {cpu['torch_capability']}); "
             f"native bf16: {value(cpu['fast_bf16'])}"]
    lines += [f"gpu           {d['name']} (sm {d['capability']}, {d['memory_gib']} GiB)"
              for d in report["cuda_devices"]]
    lines.append("versions")
    lines += [f"  {name:<16}{version}" for name, version in report["versions"].items() if version]
    lines.append("fast paths")
    shown = {name: v for name, v in report["fast_paths"].items() if name != "cpp_extension_build"}
    width = max(map(len, shown)) + 2  # the longest name still gets a gap before its value
    lines += [f"  {name:<{width}}{value(v)}" for name, v in shown.items()]
    return "\n".join(lines)
