"""The LWay self-supervised loss: L1 + LPIPS between W*LR_hat and W*LR (paper, Sec. 3.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lway_engine.adaptation.hf_weight import hf_weight_map, weighted_l1
from lway_engine.metrics.lpips_net import LPIPS


@dataclass
class LossTerms:
    """The loss and its parts, all 0-d tensors; ``l1`` and ``lpips`` are detached, for logging.

    Tensors rather than floats: reading a value forces a device sync and would break a ``torch.compile`` graph, so
    the caller reads all three at once, after the step.
    """

    total: torch.Tensor
    l1: torch.Tensor
    lpips: torch.Tensor


class LWayLoss(nn.Module):
    """``L1(W*x_hat, W*x) + lpips_weight * LPIPS(W*x_hat, W*x)``; ``hf_weight=False`` sets W = 1 (ablation)."""

    def __init__(self, lpips: LPIPS | None = None, hf_weight: bool = True, lpips_weight: float = 1.0) -> None:
        super().__init__()
        self.lpips = lpips if lpips is not None else LPIPS("alex")
        self.hf_weight = hf_weight
        self.lpips_weight = lpips_weight

    def uses_fused_kernel(self, device: torch.device) -> bool:
        """Whether the fused Triton op serves this device: CUDA, and it passed its first-use self-check there.
        Called eagerly before a step is compiled (``AdaptStep``), so traced code only reads the cached verdict."""
        if not (self.hf_weight and device.type == "cuda"):
            return False
        # Imported here: kernels/ is lway_engine.kernels only once installed, and CPU runs never need it.
        from lway_engine.kernels import fused_loss_verified

        return fused_loss_verified(device)

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> LossTerms:
        if self.uses_fused_kernel(x.device):  # fused Triton op: W, L1 and the LPIPS inputs in a few passes
            from lway_engine.kernels import hf_weighted_l1_products

            l1, _, w_x_hat, w_x = hf_weighted_l1_products(x_hat, x)
        else:
            w = hf_weight_map(x) if self.hf_weight else torch.ones_like(x[:, :1])
            l1, w_x_hat, w_x = weighted_l1(x_hat, x, w), w * x_hat, w * x
        perceptual = self.lpips(w_x_hat, w_x).mean()
        total = l1 + self.lpips_weight * perceptual
        return LossTerms(total, l1.detach(), perceptual.detach())
