"""A PyTorch checkpoint run by OpenVINO: converted once, verified against PyTorch, cached as OpenVINO IR.

Why: on a Xeon with AMX, OpenVINO's bf16 inference ran x4plus 1.2-1.5x faster than PyTorch's own bf16 autocast
(1.01 vs 1.23 s at 128 px, 4.2 vs 5.4 s at 256, 13.6 vs 20.4 s at 448; bench/deploy.py), the gap growing with the
image: its graph compiler fuses the convolution, LeakyReLU and residual adds that eager PyTorch runs one by one
(torch.compile with freezing closed only 6% of it, TorchScript's oneDNN fusion failed on RRDBNet). So where
``Upscaler(checkpoint, backend="auto")`` runs on such a CPU with OpenVINO installed, the checkpoint goes through here.

Converting RRDBNet (``openvino.convert_model``, TorchScript tracing) takes about 20 s, so the IR is cached under
``$LWAY_HOME/openvino``, keyed by the checkpoint's SHA-256 and the OpenVINO and lway-engine versions; an adapted
checkpoint is another file, so another entry. Nothing enters the cache unless OpenVINO's float32 output matches
PyTorch's on a photo crop (the tolerance ``export`` applies to ONNX); an entry that no longer loads is converted
again. Entries appear by an atomic rename of their folder, so concurrent processes (torchrun ranks) never read a
half-written one.

Every adapted checkpoint adds an entry (about 67 MB for x4plus), so the cache is bounded: after each conversion the
least recently used entries go until it fits ``$LWAY_OPENVINO_CACHE_MB`` (default 4096), and staging folders a
killed process left behind are swept after a day. A hit marks its entry used; an evicted entry is only a 20 s
conversion away.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from lway_engine import __version__
from lway_engine.backends.openvino_runtime import openvino_core, openvino_network
from lway_engine.export.onnx import FP32_TOLERANCE, photo_batch
from lway_engine.models import LoadedModel
from lway_engine.weights.cache import lway_home

VERIFY_SIDE = 40  # LR pixels: big enough for every receptive field to see an edge, small enough to run in a second
CACHE_LIMIT_MB = 4096  # default bound of $LWAY_HOME/openvino: about 60 x4plus entries
STALE_STAGING_S = 24 * 3600  # a conversion takes seconds; a staging folder this old belongs to a killed process


class OpenVinoConversionError(RuntimeError):
    """OpenVINO could not convert the checkpoint, or its output differs from PyTorch's."""


def cache_dir(model: LoadedModel) -> Path:
    """Where ``model``'s IR lives: one folder per (weights, OpenVINO version, lway-engine version)."""
    version = importlib.metadata.version("openvino")
    return lway_home() / "openvino" / f"{model.sha256[:20]}-ov{version}-lway{__version__}"


def _convert(model: LoadedModel, folder: Path) -> None:
    """Trace ``model`` into OpenVINO IR in ``folder`` (float32 weights; batch, height and width dynamic)."""
    import openvino as ov

    module = model.module.eval()
    example = torch.rand(1, model.in_channels, *_side(model))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer notes: nothing a user can act on
        converted = ov.convert_model(module, example_input=example,
                                     input=[ov.PartialShape([-1, model.in_channels, -1, -1])])
    ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)  # fp16 storage would cost accuracy


def _side(model: LoadedModel) -> tuple[int, int]:
    """The smallest square of at least VERIFY_SIDE pixels that the model accepts."""
    side = max(VERIFY_SIDE, model.size.minimum)
    side += -side % model.size.multiple_of
    return side, side


def _verify(model: LoadedModel, network: torch.nn.Module) -> float:
    """Max abs difference of OpenVINO float32 from PyTorch on a photo crop; raises above FP32_TOLERANCE."""
    x = torch.from_numpy(photo_batch(_side(model), 1, model.in_channels))
    parameter = next(model.module.parameters())
    with torch.inference_mode():
        expected = model.module(x.to(parameter.device, parameter.dtype)).float().cpu()
    error = float((network(x) - expected).abs().max())
    if not error <= FP32_TOLERANCE:  # also catches NaN
        raise OpenVinoConversionError(f"{model.path.name}: OpenVINO's output differs from PyTorch's by {error:.3g} "
                                      f"(max abs); tolerance {FP32_TOLERANCE:g}")
    return error


def _load(model: LoadedModel, folder: Path, bf16: bool) -> torch.nn.Module:
    return openvino_network(openvino_core().read_model(str(folder / "model.xml")), model.path.name, bf16)


def openvino_checkpoint(model: LoadedModel, bf16: bool) -> LoadedModel:
    """``model`` (a CPU PyTorch checkpoint) with its network run by OpenVINO from the cache, converting on a miss.

    8-bit images run at bf16 inference precision when ``bf16`` (see ``_OpenVinoNetwork``). Raises
    OpenVinoUnavailable when OpenVINO is missing, OpenVinoConversionError when it cannot run this network.
    """
    folder = cache_dir(model)
    openvino_core()  # OpenVinoUnavailable before any work
    if folder.is_dir():
        try:
            loaded = replace(model, module=_load(model, folder, bf16), supports_half=False)
            os.utime(folder)  # recently used: the last to be evicted
            return loaded
        except Exception:  # a damaged entry (truncated .bin, disk full when it was written): convert again
            shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", suffix=".part", dir=folder.parent))
    try:
        try:
            _convert(model, staging)
            network = _load(model, staging, bf16)
        except Exception as exc:  # torch tracing and OpenVINO's frontends raise many types
            raise OpenVinoConversionError(f"OpenVINO cannot convert {model.architecture} ({model.path.name}): "
                                          f"{type(exc).__name__}: {exc}") from exc
        _verify(model, network)
        try:
            os.replace(staging, folder)
        except OSError:  # another process finished the same entry first: theirs is identical
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    evict(folder.parent, keep=folder, limit=cache_limit())
    # reopened from its final place: OpenVINO maps the weights file, which must outlive this call
    return replace(model, module=_load(model, folder, bf16), supports_half=False)


def cache_limit() -> int:
    """The cache's bound in bytes, from ``$LWAY_OPENVINO_CACHE_MB`` (a positive number) or CACHE_LIMIT_MB."""
    raw = os.environ.get("LWAY_OPENVINO_CACHE_MB", "")
    try:
        megabytes = float(raw) if raw else CACHE_LIMIT_MB
    except ValueError:
        megabytes = math.nan
    if not megabytes > 0:
        raise ValueError(f"LWAY_OPENVINO_CACHE_MB must be a positive number of megabytes, not {raw!r}")
    return int(megabytes * 2**20)


def evict(parent: Path, keep: Path, limit: int) -> list[Path]:
    """Remove the least recently used entries under ``parent`` (by their folder's mtime) until the rest fit in
    ``limit`` bytes, never ``keep``, and staging folders older than STALE_STAGING_S; returns what went."""
    def size(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    removed, entries = [], []
    for folder in (p for p in parent.iterdir() if p.is_dir()):
        if folder.name.endswith(".part"):
            if time.time() - folder.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        else:
            entries.append((folder.stat().st_mtime, folder, size(folder)))
    total = sum(bytes_ for _, _, bytes_ in entries)
    for _, folder, bytes_ in sorted(entries, key=lambda entry: entry[0]):
        if total <= limit:
            break
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            total -= bytes_
    return removed


def conversion_cost_note(model: LoadedModel) -> str | None:
    """A line for the console when ``model`` has no cached IR yet (the first run pays the conversion)."""
    if cache_dir(model).is_dir():
        return None
    return (f"converting {model.architecture} ({model.path.name}) for OpenVINO: once, about 20 s for RRDBNet, "
            f"cached in {cache_dir(model).parent}")

