"""TensorRT engines from exported ONNX files (TensorRT 10 Python API), cached so identical requests never rebuild.

An engine is only valid for the TensorRT version and GPU it was built on, its optimisation profile (the input
shapes it accepts) and its precision flags; the cache key is all of those plus the ONNX file's sha256. Builds reuse
a timing cache per (TensorRT version, GPU), which turns most of a rebuild's kernel timing into look-ups.

The key and the profile are pure functions (tested without TensorRT); everything that needs ``tensorrt`` imports
it through ``import_tensorrt``, which names the install command when it is missing.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lway_engine.atomic import atomic_write

Shape = tuple[int, int, int, int]  # (N, C, H, W)
PRECISIONS = {"fp16": ("FP16", "TF32"), "bf16": ("BF16", "TF32"), "tf32": ("TF32",)}  # TensorRT BuilderFlag names
DEFAULT_SIDE = 512 + 2 * 64  # the largest tile Upscaler feeds with its defaults (tile 512, tile_pad 64)
INSTALL_HINT = "pip install 'lway-engine[trt]'  (or: pip install tensorrt)"


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or the CUDA GPU it needs) is not available here."""


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the ONNX file or build an engine from it."""


class ShapeOutsideProfile(ValueError):
    """An input shape the artefact was not built for."""


@dataclass(frozen=True)
class ShapeProfile:
    """The (N, C, H, W) input shapes an engine accepts (``min``..``max``) and the one it is tuned for (``opt``)."""

    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))

    def __str__(self) -> str:
        return ", ".join(f"{name} {'x'.join(map(str, s))}" for name, s in
                         (("min", self.min), ("opt", self.opt), ("max", self.max)))

    def check(self, shape: Sequence[int], artefact: str) -> None:
        """Raise ``ShapeOutsideProfile`` naming the profile when ``shape`` is outside it."""
        if not self.contains(shape):
            raise ShapeOutsideProfile(
                f"input {'x'.join(map(str, shape))} is outside the profile of {artefact} ({self}); rebuild with "
                "--trt-min/--trt-max covering it, or pick --tile/--tile-pad so tiles (tile + 2*tile_pad) fit")


def import_tensorrt() -> object:
    """The ``tensorrt`` module, or ``TensorRTUnavailable`` with the command that installs it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(f"TensorRT is not installed; install it with: {INSTALL_HINT}") from exc
    return tensorrt


def _nhw(name: str, request: Sequence[int]) -> tuple[int, int, int]:
    """A requested (H, W) or (N, H, W) as (N, H, W), batch 1 by default."""
    nhw = tuple(request) if len(request) != 2 else (1, *request)
    if len(nhw) != 3 or min(nhw) < 1:
        raise ValueError(f"--trt-{name} {'x'.join(map(str, request))}: give HxW or NxHxW, all >= 1")
    return nhw


def optimisation_profile(declared: Sequence[int | None], minimum: Sequence[int] | None = None,
                         opt: Sequence[int] | None = None, maximum: Sequence[int] | None = None,
                         min_side: int = 8, default_side: int = DEFAULT_SIDE) -> ShapeProfile:
    """min/opt/max shapes for the ONNX input ``declared`` as (N, C, H, W), None for a dynamic axis.

    Requests are (H, W) or (N, H, W); channels always come from the model. Defaults fit what Upscaler feeds:
    min is 1 x ``min_side`` (the model's minimum), max covers ``default_side`` (its largest default tile) and opt,
    and opt is max, the shape most tiles have. Static axes of the ONNX input are fixed; a request that contradicts
    one is an error.
    """
    if len(declared) != 4 or not isinstance(declared[1], int):
        raise ValueError(f"expected an (N, C, H, W) input with fixed channels, the model declares {list(declared)}")
    requested = {name: _nhw(name, r) for name, r in (("min", minimum), ("opt", opt), ("max", maximum)) if r is not None}
    largest = tuple(max(a, b) for a, b in zip((1, default_side, default_side), requested.get("opt", (1, 1, 1))))
    nhw = {"min": requested.get("min", (1, min_side, min_side)), "max": requested.get("max", largest)}
    nhw["opt"] = requested.get("opt", nhw["max"])
    shapes: dict[str, Shape] = {}
    for name, (n, h, w) in nhw.items():
        shape = [n, declared[1], h, w]
        for axis in (0, 2, 3):
            fixed = declared[axis]
            if isinstance(fixed, int) and shape[axis] != fixed:
                if name in requested:
                    raise ValueError(f"--trt-{name} {'x'.join(map(str, nhw[name]))} conflicts with the model's static "
                                     f"input {'x'.join('?' if d is None else str(d) for d in declared)}")
                shape[axis] = fixed
        shapes[name] = tuple(shape)
    profile = ShapeProfile(shapes["min"], shapes["opt"], shapes["max"])
    if not (profile.contains(profile.opt) and all(lo <= hi for lo, hi in zip(profile.min, profile.max))):
        raise ValueError(f"profile must satisfy min <= opt <= max on every axis: {profile}")
    if min(profile.min[2:]) < min_side:
        raise ValueError(f"profile min {profile.min} is below this model's minimum side {min_side}")
    return profile


def engine_key(onnx_sha256: str, profile: ShapeProfile, precision: str, trt_version: str, gpu_name: str) -> str:
    """Hex digest naming a cached engine: everything an engine depends on, and nothing else."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    facts = {"onnx": onnx_sha256, "min": profile.min, "opt": profile.opt, "max": profile.max,
             "precision": precision, "tensorrt": trt_version, "gpu": gpu_name}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class EngineReport:
    """The engine file, its cache key and profile, and whether this call built it (False: cache hit)."""

    path: Path
    key: str
    profile: ShapeProfile
    precision: str
    built: bool
    seconds: float


def _onnx_input(onnx_path: Path) -> tuple[str, list[int | None], int]:
    """(input name, declared shape with None for dynamic axes, model minimum side from lway metadata or 8)."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {i.name for i in proto.graph.initializer}
    (graph_input,) = [i for i in proto.graph.input if i.name not in initializers]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]
    meta = {p.key: p.value for p in proto.metadata_props}
    return graph_input.name, dims, int(meta.get("min_size", 8))


def _build(trt: object, onnx_path: Path, input_name: str, profile: ShapeProfile, precision: str,
           timing_cache: Path, workspace_gib: float | None) -> bytes:
    """One TensorRT 10 build: parse, set precision flags, profile and timing cache, serialise."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    for flag in PRECISIONS[precision]:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    trt_profile = builder.create_optimization_profile()
    trt_profile.set_shape(input_name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(trt_profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path.name} ({precision}, {profile}); "
                               "its log above says why")
    atomic_write(timing_cache, lambda tmp: tmp.write_bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


def build_engine(onnx_path: Path, dest: Path | None = None, precision: str = "fp16",
                 minimum: Sequence[int] | None = None, opt: Sequence[int] | None = None,
                 maximum: Sequence[int] | None = None, cache_dir: Path | None = None,
                 workspace_gib: float | None = None) -> EngineReport:
    """Build (or take from the cache) an engine for ``onnx_path`` on the current CUDA GPU; copy it to ``dest``.

    ``minimum``/``opt``/``maximum`` are (H, W) or (N, H, W), see ``optimisation_profile``. The cache lives in
    ``cache_dir`` (default ``$LWAY_HOME/tensorrt``); concurrent builds of one key wait on a file lock.
    """
    import torch
    from filelock import FileLock

    from lway_engine.weights.cache import lway_home, sha256_file

    started = time.perf_counter()
    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("TensorRT builds engines for a CUDA GPU, and torch sees none here")
    onnx_path = Path(onnx_path)
    input_name, declared, min_side = _onnx_input(onnx_path)
    profile = optimisation_profile(declared, minimum, opt, maximum, min_side=min_side)
    gpu = torch.cuda.get_device_name()
    key = engine_key(sha256_file(onnx_path), profile, precision, trt.__version__, gpu)
    cache_dir = Path(cache_dir) if cache_dir else lway_home() / "tensorrt"
    cached = cache_dir / "engines" / f"{key}.engine"
    timing_cache = cache_dir / f"timing-trt{trt.__version__}-{re.sub(r'[^A-Za-z0-9]+', '_', gpu)}.cache"
    cached.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cached) + ".lock"):
        built = not cached.is_file()
        if built:
            engine = _build(trt, onnx_path, input_name, profile, precision, timing_cache, workspace_gib)
            atomic_write(cached, lambda tmp: tmp.write_bytes(engine))
    if dest is not None:
        atomic_write(Path(dest), lambda tmp: shutil.copyfile(cached, tmp))
    return EngineReport(Path(dest) if dest is not None else cached, key, profile, precision, built,
                        time.perf_counter() - started)
