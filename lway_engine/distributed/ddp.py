"""DistributedDataParallel over the trainable subset of a module that is being adapted or trained."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lway_engine.distributed.group import active


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` wrapped in DDP when a process group is running, else ``module`` itself.

    Wrap it once its trainable parameters are chosen and its memory format is set: DDP syncs the gradients of the
    parameters that require grad at construction, lays its buckets out like them, and broadcasts rank 0's weights
    so every rank starts alike."""
    if not active():
        return module
    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)
