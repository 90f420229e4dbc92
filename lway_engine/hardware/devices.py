"""Whether a ``--device`` names a device this machine can run on, checked when a command starts."""

from __future__ import annotations


def check_device(device: str) -> None:
    """Raise ``ValueError`` with one line for a device string torch cannot parse, or one this machine lacks (no CUDA
    GPU, an index past the last), instead of the traceback of the first tensor moved there mid-command."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if parsed.type == "cpu":
        return
    backend = getattr(torch, parsed.type, None)
    if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
        raise ValueError(f"--device {device}: no usable {parsed.type} device on this machine (its driver or this "
                         "PyTorch build lacks it); use --device cpu")
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if parsed.index is not None and parsed.index >= count:
        raise ValueError(f"--device {device}: this machine shows {count} {parsed.type} device(s), numbered from 0")
