"""Fast paths that prove themselves at first use, per device, before they touch a user's model.

A user's GPU (or CPU) may meet a compiled kernel no one has run on it: a CUDA op built for another architecture, a
Triton kernel miscompiled by a new driver. So the first time a process wants a fast path on a device, it runs a
small fixed input through the fast path and through the PyTorch reference (outputs and gradients). If they disagree
beyond tolerance, or the fast path raises, one warning names the path, the device and the error, and the caller
uses the reference for the rest of the process. The verdict is cached per (path, device): later calls cost a dict
lookup, and code being traced by ``torch.compile`` only reads verdicts (callers check eagerly before compiling).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Outputs = Callable[[torch.device], Sequence[Tensor]]

_verdicts: dict[tuple[str, str], bool] = {}


class FastPathMismatchWarning(RuntimeWarning):
    """A fast path disagreed with its PyTorch reference on this device; the reference is used instead."""


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _max_error(fast: Sequence[Tensor], reference: Sequence[Tensor]) -> float:
    """Largest absolute difference relative to the reference's scale, over all outputs."""
    worst = 0.0
    for f, r in zip(fast, reference, strict=True):
        scale = float(r.detach().abs().max().clamp_min(1e-6))
        worst = max(worst, float((f.detach().double() - r.detach().double()).abs().max()) / scale)
    return worst


def fast_path_ok(name: str, device: torch.device, fast: Outputs, reference: Outputs, tolerance: float) -> bool:
    """Whether ``name``'s fast path may run on ``device``: checked once per process and device (module doc).

    ``fast`` and ``reference`` compute the same outputs (and gradients) of a fixed small input on ``device``;
    ``tolerance`` bounds the largest difference relative to the reference's largest magnitude.
    """
    key = (name, str(torch.device(device)))
    if key in _verdicts:
        return _verdicts[key]
    if torch.compiler.is_compiling():
        return True  # never reached in our code paths, which check before compiling; tracing cannot run kernels
    try:
        with torch.inference_mode(False), torch.enable_grad():  # callers may be under no_grad (R.prepare is)
            expected = reference(device)
            error = _max_error(fast(device), expected)
        problem = None if error <= tolerance else f"max relative error {error:.2e} > {tolerance:.0e}"
    except Exception as exc:  # a kernel that cannot run here (no image for this GPU, launch failure, ...)
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        warnings.warn(f"{name} failed its self-check on {_device_name(torch.device(device))} ({problem}); the PyTorch "
                      "reference is used instead for the rest of this process. Please report this with the output "
                      "of `lway-engine info`.", FastPathMismatchWarning, stacklevel=3)
    _verdicts[key] = problem is None
    return _verdicts[key]


def forget_verdicts() -> None:
    """Clear the cached verdicts (tests, or after reloading an extension)."""
    _verdicts.clear()
