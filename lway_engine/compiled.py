"""``torch.compile`` plumbing shared by adaptation and inference: availability, the artefact cache, the fallback.

Compilation is an optimisation, never a requirement: where inductor cannot work (no C++ compiler for its CPU
backend, no Triton for CUDA) or compiling raises, the eager code runs instead, after one warning that says why.

Compiled artefacts (inductor's FX graph cache, AOTAutograd's cache, Triton kernels) go to
``$LWAY_HOME/torch-compile`` unless ``TORCHINDUCTOR_CACHE_DIR`` is set, so a second run with the same model and
crop size loads its kernels instead of compiling them again.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

import torch
from torch import nn

from lway_engine.weights.cache import lway_home

P = ParamSpec("P")
R = TypeVar("R")


class CompileFallbackWarning(RuntimeWarning):
    """``torch.compile`` is unavailable or failed; the eager code runs instead."""


def use_compile_cache() -> str:
    """Point inductor's on-disk caches at ``$LWAY_HOME/torch-compile`` (unless the user chose a folder); returns it."""
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(lway_home() / "torch-compile"))


def compile_unavailable(device: torch.device) -> str | None:
    """Why inductor cannot compile for ``device`` on this machine, or None if it can."""
    if device.type == "cpu":
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except Exception as exc:  # InvalidCxxCompiler, or whatever the search raises on this platform
            return f"inductor's CPU backend needs a C++ compiler ({type(exc).__name__}: {exc})"
    elif device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "inductor's CUDA backend needs Triton, which is not installed for this torch"
    return None


class EagerFallback(Generic[P, R]):
    """Calls ``compiled``; the first time it raises, warns once and calls ``eager`` from then on.

    The exception is not re-raised: if the eager code fails the same way, the real error surfaces from there.
    """

    def __init__(self, compiled: Callable[P, R] | None, eager: Callable[P, R], what: str) -> None:
        self.compiled, self.eager, self.what = compiled, eager, what

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # compile errors come in many types (BackendCompilerFailed, InductorError, ...)
                warnings.warn(f"torch.compile failed for {self.what}; running it eagerly instead "
                              f"({type(exc).__name__}: {str(exc)[:500]})", CompileFallbackWarning, stacklevel=2)
                self.compiled = None
        return self.eager(*args, **kwargs)


def try_compile(fn: Callable[P, R], device: torch.device, what: str, **options: object) -> Callable[P, R] | None:
    """``torch.compile(fn, **options)`` (compiled lazily, on the first call), or None with a warning if inductor
    cannot work here. Pair it with :class:`EagerFallback` for the failures that only show when compiling."""
    use_compile_cache()  # first: probing the compiler already fixes inductor's cache folder
    reason = compile_unavailable(device)
    if reason is not None:
        warnings.warn(f"not compiling {what}: {reason}; running it eagerly", CompileFallbackWarning, stacklevel=2)
        return None
    return torch.compile(fn, **options)


class DynamicSizeNetwork(nn.Module):
    """An SR network compiled once for every input height and width (and so every image and tile size).

    The first call marks H and W dynamic before dynamo sees them, so it compiles one graph with symbolic sizes
    instead of a static one per size (dynamo's default would compile static, then recompile dynamic on the second
    size). ``maybe_mark_dynamic`` rather than ``mark_dynamic``: a network that needs a fixed size still compiles.
    """

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.module = module
        self._run = EagerFallback(try_compile(module, device, "inference"), module, "inference")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.maybe_mark_dynamic(x, 2)
        torch._dynamo.maybe_mark_dynamic(x, 3)
        return self._run(x)
