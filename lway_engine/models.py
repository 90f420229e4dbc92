"""Load any super-resolution checkpoint spandrel understands, as a plain trainable ``nn.Module``.

spandrel's ``ImageModelDescriptor`` is an inference wrapper (it runs under ``torch.inference_mode``), which the
adaptation loop cannot train through; we keep its detection and hyper-parameter inference and hand back the bare
network plus what callers need to feed it: scale, channels and size requirements.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lway_engine.weights import REGISTRY, fetch
from lway_engine.weights.cache import sha256_file

SUPPORTED_SUFFIXES = (".pth", ".ckpt", ".safetensors")
MIN_INPUT_SIDE = 8  # below this an SR network sees mostly padding; also the floor for adaptation crops


class ModelLoadError(ValueError):
    """The file is missing, not a checkpoint, or not an architecture spandrel supports."""


@dataclass(frozen=True)
class SizeRequirements:
    """Input constraints: each side >= ``minimum`` and a multiple of ``multiple_of`` (padded to it), or square."""

    minimum: int
    multiple_of: int
    square: bool

    def __str__(self) -> str:
        return (f"sides of at least {self.minimum} px" + f", multiples of {self.multiple_of}" * (self.multiple_of > 1)
                + ", square" * self.square)


@dataclass
class LoadedModel:
    """A loaded SR network and the facts needed to run, tile and adapt it."""

    module: nn.Module
    architecture: str
    scale: int
    in_channels: int
    out_channels: int
    size: SizeRequirements
    supports_half: bool
    path: Path
    sha256: str


class _CallFnModule(nn.Module):
    """A network whose spandrel descriptor runs it through a custom call (input scaling, extra arguments)."""

    def __init__(self, model: nn.Module, call_fn: object) -> None:
        super().__init__()
        self.model = model
        self.call_fn = call_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.call_fn(self.model, x)


def _with_call_fn(descriptor: object) -> nn.Module:
    """The bare network, wrapped only when spandrel would call it differently from ``model(x)``.

    spandrel keeps the custom call in a private attribute; the default is its anonymous ``model(image)`` lambda.
    """
    call_fn = getattr(descriptor, "_call_fn", None)
    if call_fn is None or getattr(call_fn, "__name__", "") == "<lambda>":
        return descriptor.model
    return _CallFnModule(descriptor.model, call_fn)


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A registry name is fetched into the cache; anything else must be an existing checkpoint file."""
    if str(name_or_path) in REGISTRY and REGISTRY[str(name_or_path)].kind == "sr-model":
        return fetch(str(name_or_path))
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(n for n, e in REGISTRY.items() if e.kind == "sr-model")
        raise ModelLoadError(f"{name_or_path}: no such file, and not a known model name ({known})")
    return path


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a registry model or checkpoint file; pickles are read with spandrel's restricted unpickler."""
    import spandrel

    path = resolve_model_path(name_or_path)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ModelLoadError(f"{path}: unsupported file type {path.suffix!r}; expected one of {SUPPORTED_SUFFIXES}")
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_file(path)
    except spandrel.UnsupportedModelError as exc:
        raise ModelLoadError(f"{path}: not a super-resolution architecture spandrel supports") from exc
    except Exception as exc:  # truncated zip, bad pickle, forbidden global, corrupt safetensors header, ...
        raise ModelLoadError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelLoadError(f"{path}: {descriptor.architecture.name} is not an image-to-image model")
    req = descriptor.size_requirements
    module = _with_call_fn(descriptor).to(device).float().eval()
    return LoadedModel(
        module=module,
        architecture=descriptor.architecture.id,
        scale=descriptor.scale,
        in_channels=descriptor.input_channels,
        out_channels=descriptor.output_channels,
        size=SizeRequirements(max(req.minimum, MIN_INPUT_SIDE), req.multiple_of, req.square),
        supports_half=descriptor.supports_half,
        path=path,
        sha256=sha256_file(path),
    )
