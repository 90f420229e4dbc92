"""Deployment throughput: PyTorch eager vs torch.compile vs ONNX Runtime, for Real-ESRGAN x4plus and an adapted copy.

    .venv/bin/python bench/deploy.py --quick --sizes 128       # CPU, a few minutes per size on 2 cores
    .venv/bin/python bench/deploy.py --device cuda              # adds ORT's CUDA and TensorRT providers

Each backend runs the whole LR image (no tiling), batch 1, in float32 except the bf16 rows (on CPUs with AMX or
AVX512_BF16: PyTorch autocast + channels-last, and OpenVINO at bf16 inference precision; "max|diff|" says how far
they land from eager float32). On the CPU two rows time ``Upscaler`` itself on the checkpoint, image in and out:
``upscaler-auto`` (the backend it picks here, in brackets; OpenVINO on a native-bf16 CPU with the extra installed)
and ``upscaler-pytorch``. Backends are timed side by side: every
repeat runs each backend once, in turn, so drifting machine load hits all of them alike; the table reports the
median. Every backend takes and returns NumPy arrays, as an embedding app would, so GPU rows include the host-device
copies. On the CPU, ONNX Runtime runs twice: with its own kernels, and as ``Upscaler`` opens a model there by default
(``+lway-winograd``: 3x3 convolutions through lway-engine's Winograd custom op, same .onnx file). The adapted copy
is x4plus with seeded 1% weight noise saved in the checkpoint's own layout, exported like any adapted weights: it
shows adapted models deploy at the same speed.
Exports are reused across runs when the ONNX metadata names the same weights sha256.
Prints a table and writes bench/results/deploy_<device>.json with the processor's ISA flags.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from lway_engine.adapted_weights import OriginalLayout
from lway_engine.backends import onnx_providers, openvino_installed, openvino_model
from lway_engine.export.onnx import export_onnx
from lway_engine.export.ort_winograd import cpu_session_source
from lway_engine.hardware import cpu_features
from lway_engine.models import LoadedModel, load_model
from lway_engine.weights.cache import lway_home, sha256_file
from results_dir import results_dir

Runner = Callable[[np.ndarray], np.ndarray]


def adapted_copy(model: LoadedModel, folder: Path) -> Path:
    """x4plus with seeded 1% (of each tensor's std) noise, written as ``lway-engine adapt`` writes its weights."""
    module = copy.deepcopy(model.module)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator).to(p.device) * 0.01 * p.std())
    return OriginalLayout(model.module, model.path).save(module, folder / "weights" / "adapted.safetensors")[0]


def exported(weights: Path, dest: Path) -> Path:
    """``dest`` exported from ``weights``, reusing an earlier export of the same bytes."""
    if dest.is_file():
        session = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
        if session.get_modelmeta().custom_metadata_map.get("source_sha256") == sha256_file(weights):
            return dest
    return export_onnx(weights, dest, verify_sizes=[(32, 32)]).path


def torch_runner(module: torch.nn.Module, device: torch.device) -> Runner:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x).to(device)).cpu().numpy()  # .cpu() waits for the GPU

    return run


def torch_bf16_runner(module: torch.nn.Module, device: torch.device) -> Runner:
    """bf16 autocast with channels-last weights and input: what ``Upscaler`` runs on a CPU with native bf16."""
    module = copy.deepcopy(module).to(memory_format=torch.channels_last)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16):
            tensor = torch.from_numpy(x).to(device).contiguous(memory_format=torch.channels_last)
            return module(tensor).float().cpu().numpy()

    return run


def openvino_runner(path: Path, bf16: bool) -> Runner:
    """The .onnx compiled by OpenVINO for the CPU, as ``Upscaler(..., backend="openvino")`` opens it."""
    module = openvino_model(path, bf16).module

    def run(x: np.ndarray) -> np.ndarray:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):  # the network's precision follows autocast
            return module(torch.from_numpy(x)).numpy()

    return run


def upscaler_runner(weights: Path, device: torch.device, backend: str) -> tuple[str, Runner]:
    """``Upscaler(weights, backend=backend)`` as an app or ``lway-engine upscale`` opens the checkpoint (``auto``:
    the backend it picks for this processor, named in the row), untiled; uint8-exact image in, float image out."""
    from lway_engine.inference.upscaler import Upscaler
    from lway_engine.media.images import Image

    upscaler = Upscaler(weights, device=str(device), tile=0, backend=backend)

    def run(x: np.ndarray) -> np.ndarray:
        return upscaler.upscale(Image(x[0].transpose(1, 2, 0), None, 8)).pixels.transpose(2, 0, 1)[None]

    return f"upscaler-{backend}" + (f" ({upscaler.backend})" if backend == "auto" else ""), run


def ort_runner(path: Path, provider: tuple[str, dict], cpu_kernels: bool = False) -> Runner:
    """A session on ``provider``; with ``cpu_kernels``, the graph as ``Upscaler`` opens it on the CPU (3x3
    convolutions through lway-engine's Winograd op, export/ort_winograd.py)."""
    options, source = ort.SessionOptions(), str(path)
    if cpu_kernels:
        source, report = cpu_session_source(path, options)
        if report is None:
            raise RuntimeError("lway-engine's ONNX Runtime CPU kernels are not available here")
    session = ort.InferenceSession(source, options, providers=[provider])  # ORT adds its CPU provider as fallback
    if session.get_providers()[0] != provider[0]:
        raise RuntimeError(f"{provider[0]} did not load (ONNX Runtime fell back to {session.get_providers()})")
    return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]


def time_once(run: Runner, x: np.ndarray) -> float:
    """Seconds for one call, NumPy in to NumPy out."""
    started = time.perf_counter()
    run(x)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="LR sides to time")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per backend and size")
    parser.add_argument("--quick", action="store_true", help="3 repeats (overrides --repeats)")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile (minutes on 2 cores)")
    parser.add_argument("--base-only", action="store_true", help="x4plus only, not its adapted copy")
    parser.add_argument("--workdir", type=Path, default=None, help="exports and adapted weights (default: "
                        "$LWAY_HOME/bench-deploy, reused across runs)")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    device = torch.device(args.device)
    workdir = args.workdir or lway_home() / "bench-deploy"

    base = load_model("realesrgan-x4plus", device=device)
    weights = {"x4plus": base.path}
    if not args.base_only:
        weights["x4plus-adapted"] = adapted_copy(base, workdir / "adapted")
    from skimage import data

    photo = data.astronaut().astype(np.float32) / 255.0
    rows = []
    for name, path in weights.items():
        model = load_model(path, device=device)
        onnx_path = exported(path, workdir / f"{name}.onnx")
        providers = onnx_providers(args.device)
        if device.type == "cuda":
            providers = [p for p in providers if p[0] != "CPUExecutionProvider"]
        backends: dict[str, Runner] = {"pytorch-eager": torch_runner(model.module, device)}
        if device.type == "cpu" and cpu_features().fast_bf16:
            backends["pytorch-eager-bf16"] = torch_bf16_runner(model.module, device)
        if device.type == "cpu":  # what users get from a checkpoint: the auto choice, beside PyTorch's own path
            for backend in ("auto", "pytorch"):
                label, run = upscaler_runner(path, device, backend)
                backends[label] = run
        if not args.no_compile:
            backends["torch.compile"] = torch_runner(torch.compile(model.module, dynamic=False), device)
        if device.type == "cpu" and openvino_installed():
            backends["openvino-fp32"] = openvino_runner(onnx_path, bf16=False)
            if cpu_features().fast_bf16:
                backends["openvino-bf16"] = openvino_runner(onnx_path, bf16=True)
        for provider in providers:
            label = "onnxruntime-" + provider[0].removesuffix("ExecutionProvider").lower()
            variants = [(label, False)] + ([(label + "+lway-winograd", True)] if device.type == "cpu" else [])
            for variant, cpu_kernels in variants:
                try:
                    backends[variant] = ort_runner(onnx_path, provider, cpu_kernels)
                except RuntimeError as exc:
                    print(f"skipping {variant}: {exc}")
        for size in args.sizes:
            top = (photo.shape[0] - size) // 2
            x = np.ascontiguousarray(photo[top : top + size, top : top + size].transpose(2, 0, 1))[None]
            reference = None
            live = dict(backends)
            for label, run in list(live.items()):  # warm-up: compilation, cuDNN/TensorRT tuning, first allocations
                try:
                    started = time.perf_counter()
                    y = run(x)
                    print(f"{name} {size}px {label}: first call {time.perf_counter() - started:.1f} s", flush=True)
                except Exception as exc:  # e.g. torch.compile without a working C++ toolchain
                    print(f"{name} {size}px {label}: failed ({type(exc).__name__}: {exc}); left out")
                    del live[label]
                    continue
                reference = y if reference is None else reference
                rows.append({"model": name, "size": size, "backend": label,  # on [0, 1]: what an image keeps
                             "max_abs_diff_vs_eager": float(np.abs(np.clip(y, 0, 1) - np.clip(reference, 0, 1)).max())})
            times: dict[str, list[float]] = {label: [] for label in live}
            for _ in range(repeats):
                for label, run in live.items():
                    times[label].append(time_once(run, x))
            for row in rows:
                if row["model"] == name and row["size"] == size and row["backend"] in times:
                    median = statistics.median(times[row["backend"]])
                    row.update(median_s=median, images_per_s=1 / median, runs_s=times[row["backend"]])

    header = f"{'model':<16} {'LR':>5} {'backend':<28} {'img/s':>8} {'median s':>9} {'max|diff| vs eager':>19}"
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        if "median_s" in row:
            print(f"{row['model']:<16} {row['size']:>5} {row['backend']:<28} {row['images_per_s']:>8.3f} "
                  f"{row['median_s']:>9.3f} {row['max_abs_diff_vs_eager']:>19.2e}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    kind = device.type if device.type == "cuda" else f"cpu_{cpu_features().kind}"
    out = results_dir() / f"deploy_{kind}.json"
    out.write_text(json.dumps({
        "device": name, "torch": torch.__version__, "onnxruntime": ort.__version__,
        "torch_threads": torch.get_num_threads(), "cpu": cpu_features().as_dict(),
        "openvino": importlib.metadata.version("openvino") if openvino_installed() else None, "repeats": repeats,
        "batch": 1, "rows": rows}, indent=1))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
