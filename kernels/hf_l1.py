"""The ``lway::`` custom ops of the fused HF weight map + weighted L1, with their autograd formulas.

Each op is a ``torch.library.triton_op``: on CUDA (float32, float16, bfloat16) it launches the Triton kernels of
``hf_l1_triton``; anywhere else (CPU included, and float64) it runs the PyTorch reference of
``lway_engine.adaptation.hf_weight``. Because a ``triton_op``'s body is also its fake kernel and is what
``torch.compile`` decomposes it into, the device test lives in that body: compiled code traces the reference ops on
CPU and the user-defined Triton kernels on CUDA, with no graph break.

Semantics follow the reference with x as the fixed target: no gradient flows to x, nor through W (which the
reference computes under ``no_grad``); x_hat and x must have the same shape and dtype. Triton ships for Linux only
(see pyproject); without it the ops run the reference on every device.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from torch import Tensor
from torch.library import triton_op

from lway_engine.adaptation.hf_weight import hf_weight_map, weighted_l1
from lway_engine.hardware.selfcheck import fast_path_ok

if importlib.util.find_spec("triton") is not None:
    from lway_engine.kernels.hf_l1_triton import backward as backward_triton
    from lway_engine.kernels.hf_l1_triton import forward as forward_triton
    from lway_engine.kernels.hf_l1_triton import weight_map as weight_map_triton
else:  # Triton is a Linux-only dependency: the ops run the reference
    backward_triton = forward_triton = weight_map_triton = None

__all__ = ["fused_loss_verified", "hf_weight", "hf_weighted_l1", "hf_weighted_l1_products"]

_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # the kernels accumulate in float32


def _use_triton(x: Tensor) -> bool:
    return x.device.type == "cuda" and forward_triton is not None and x.dtype in _TRITON_DTYPES and x.numel() > 0


def _check_image(x: Tensor, name: str) -> None:
    torch._check(x.dim() == 4, lambda: f"{name}: expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    torch._check(x.dtype.is_floating_point, lambda: f"{name}: expected a floating-point tensor, got {x.dtype}")


def _check_pair(x_hat: Tensor, x: Tensor, name: str) -> None:
    _check_image(x, name)
    torch._check(x_hat.shape == x.shape, lambda: f"{name}: x_hat {tuple(x_hat.shape)} != x {tuple(x.shape)}")
    torch._check(x_hat.dtype == x.dtype, lambda: f"{name}: x_hat is {x_hat.dtype}, x is {x.dtype}")


def _reference(x_hat: Tensor, x: Tensor, products: bool) -> tuple[Tensor, ...]:
    w = hf_weight_map(x).contiguous()  # the Triton path returns a contiguous W too
    loss = weighted_l1(x_hat, x, w)
    return (loss, w, w * x_hat, w * x) if products else (loss, w)


@triton_op("lway::hf_weight", mutates_args=())
def _hf_weight_op(x: Tensor) -> Tensor:
    _check_image(x, "lway::hf_weight")
    if _use_triton(x):
        return weight_map_triton(x)
    return hf_weight_map(x).contiguous()


@triton_op("lway::hf_weighted_l1", mutates_args=())
def _hf_weighted_l1_op(x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    _check_pair(x_hat, x, "lway::hf_weighted_l1")
    if _use_triton(x):
        return forward_triton(x_hat, x, products=False)
    return _reference(x_hat, x, products=False)


@triton_op("lway::hf_weighted_l1_products", mutates_args=())
def _hf_weighted_l1_products_op(x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    _check_pair(x_hat, x, "lway::hf_weighted_l1_products")
    if _use_triton(x):
        return forward_triton(x_hat, x, products=True)
    return _reference(x_hat, x, products=True)


@triton_op("lway::hf_weighted_l1_backward", mutates_args=())
def _hf_weighted_l1_backward_op(
    grad_loss: Tensor, grad_w_x_hat: Tensor | None, x_hat: Tensor, x: Tensor, w: Tensor
) -> Tensor:
    """d/dx_hat of ``grad_loss * mean|W*(x_hat - x)| + sum(grad_w_x_hat * W*x_hat)``."""
    _check_pair(x_hat, x, "lway::hf_weighted_l1_backward")
    if _use_triton(x):
        return backward_triton(grad_loss, grad_w_x_hat, x_hat, x, w)
    grad = w * torch.sign(x_hat - x) * (grad_loss / x_hat.numel())
    return grad if grad_w_x_hat is None else grad + w * grad_w_x_hat


def _setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: tuple[Tensor, ...]) -> None:
    x_hat, x = inputs
    w = output[1]
    ctx.mark_non_differentiable(*output[1::2])  # W, and W*x in the products op
    ctx.save_for_backward(x_hat, x, w)


def _backward(ctx: Any, grad_loss: Tensor, *grads: Tensor | None) -> tuple[Tensor | None, None]:
    if not ctx.needs_input_grad[0]:
        return None, None
    x_hat, x, w = ctx.saved_tensors
    grad_w_x_hat = grads[1] if len(grads) == 3 else None  # grads: W [, W*x_hat, W*x]
    return torch.ops.lway.hf_weighted_l1_backward(grad_loss, grad_w_x_hat, x_hat, x, w), None


torch.library.register_autograd("lway::hf_weighted_l1", _backward, setup_context=_setup_context)
torch.library.register_autograd("lway::hf_weighted_l1_products", _backward, setup_context=_setup_context)


def hf_weight(x: Tensor) -> Tensor:
    """W (B, 1, H, W) of the LR batch x (B, C, H, W), as ``hf_weight_map``; one fused pass pair on CUDA."""
    return torch.ops.lway.hf_weight(x.detach())


def hf_weighted_l1(x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean|W*(x_hat - x)|, W)`` with W from x; the gradient flows to x_hat only."""
    return torch.ops.lway.hf_weighted_l1(x_hat, x.detach())


def hf_weighted_l1_products(x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(mean|W*(x_hat - x)|, W, W*x_hat, W*x)``: also the LPIPS inputs of the LWay loss, from the same pass."""
    return torch.ops.lway.hf_weighted_l1_products(x_hat, x.detach())


def _self_check_outputs(device: torch.device, products: Any) -> list[Tensor]:
    """A fixed LR pair (2 x 3 x 37 x 45: odd sizes hit the block edges) through ``products``: its four outputs and
    the gradient of a weighted sum of them to x_hat."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 37, 45, generator=generator).to(device)
    x_hat = (x + 0.05 * torch.randn(2, 3, 37, 45, generator=generator).to(device)).requires_grad_(True)
    loss, w, w_x_hat, w_x = products(x_hat, x)
    (grad,) = torch.autograd.grad(loss + 0.5 * w_x_hat.square().mean(), x_hat)
    return [loss, w, w_x_hat, w_x, grad]


def fused_loss_verified(device: torch.device) -> bool:
    """Whether the Triton loss kernels agree with the PyTorch reference on ``device`` (checked once per process
    and device, see ``lway_engine.hardware.selfcheck``); the LWay loss uses them only where this holds."""
    def reference(x_hat: Tensor, x: Tensor) -> tuple[Tensor, ...]:
        return _reference(x_hat, x.detach(), products=True)

    return fast_path_ok("the fused Triton LWay loss (lway::hf_weighted_l1_products)", device,
                        lambda dev: _self_check_outputs(dev, hf_weighted_l1_products),
                        lambda dev: _self_check_outputs(dev, reference), 1e-4)
