"""What the reconstruction branch costs, in multiply-accumulates per LR pixel, for checking the adaptation budget.

Counts come from the convolutions' shapes (``torch.utils.flop_counter``), not from timing, so they are exact and
machine-independent. Per-image work (E's MLP, the styles' affine maps and demodulation) is left out: it does not
grow with the image and, during adaptation, runs once per image rather than once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from lway_engine.reconstruction.model import LWayReconstruction

_CONV_OPS = (torch.ops.aten.convolution, torch.ops.aten.convolution_backward)


@dataclass(frozen=True)
class ReconstructionCost:
    """MACs per LR pixel: E (once per image), R forward and R backward to its HR input (both every step)."""

    encoder: float
    reconstructor_forward: float
    reconstructor_backward: float


def _conv_macs(run: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return sum(n for op, n in counter.get_flop_counts()["Global"].items() if op in _CONV_OPS) // 2


def macs_per_lr_pixel(model: LWayReconstruction, lr_size: int = 64) -> ReconstructionCost:
    """Count the convolutions on an ``lr_size``-square LR image (a multiple of 16 keeps E's strided maps exact)."""
    param = next(model.parameters())
    lr = torch.zeros(1, 3, lr_size, lr_size, device=param.device, dtype=param.dtype)
    hr_size = lr_size * model.config.scale
    hr = torch.zeros(1, 3, hr_size, hr_size, device=param.device, dtype=param.dtype, requires_grad=True)
    with torch.no_grad():
        encoder = _conv_macs(lambda: model.encoder(lr))
        use_extension, model.reconstructor.use_extension = model.reconstructor.use_extension, False  # aten convs
        styles = model.reconstructor.prepare(model.encoder(lr))
        model.reconstructor.use_extension = use_extension
    out: list[torch.Tensor] = []
    forward = _conv_macs(lambda: out.append(model.reconstructor(hr, styles=styles)))
    backward = _conv_macs(lambda: torch.autograd.grad(out[0].sum(), hr))  # gradient to the HR only, as in step 2
    pixels = lr_size * lr_size
    return ReconstructionCost(encoder / pixels, forward / pixels, backward / pixels)
