"""The reconstructor's 3x3 convolution blocks through the C++ op ``lway::conv3x3_fused`` (csrc/conv3x3.cpp).

Each block of R is ``conv -> bias -> leaky ReLU -> residual add``, with StyleGAN2 modulation. The op computes a
block in one call: on the CPU with a Winograd F(4x4, 3x3) kernel (4x fewer multiply-adds than a direct 3x3
convolution) whose epilogue applies bias, activation and residual on the tile still in registers. Modulation is
passed as per-sample input and output channel scales, so the batch shares one weight (no grouped convolution).

This module registers what the op needs from Python (fake kernels for torch.compile, the autograd formula for
the gradient to the block's input) and provides :func:`conv3x3_reference`, the plain-PyTorch definition the op is
tested against. Only the gradient to the activations is provided: in adaptation R is frozen and only its input
(the SR output) needs a gradient; pre-training, which trains R's weights, uses the reference path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lway_engine.ext import extension_available
from lway_engine.hardware.selfcheck import fast_path_ok

_OP = "lway::conv3x3_fused"
_WINOGRAD_POINTS, _LANES = 36, 16  # csrc/winograd.h: transform points, output channels per packed block


def _channels(scale: Tensor | None) -> Tensor | float:
    return 1.0 if scale is None else scale[:, :, None, None]


def conv3x3_reference(x: Tensor, weight: Tensor, in_scale: Tensor | None, out_scale: Tensor | None,
                      bias: Tensor | None, residual: Tensor | None, act: bool, negative_slope: float,
                      act_gain: float, res_gain: float) -> Tensor:
    """``res_gain * (residual + act(out_scale * conv3x3(in_scale * x, weight) + bias))``: the op's definition."""
    z = F.conv2d(x * _channels(in_scale), weight, None, 1, 1) * _channels(out_scale)
    if bias is not None:
        z = z + bias[None, :, None, None]
    if act:
        z = torch.where(z > 0, z, z * negative_slope) * act_gain
    return ((residual + z) if residual is not None else z) * res_gain


@dataclass(frozen=True)
class PackedConv:
    """A frozen 3x3 convolution prepared for the op: its weight, bias and the Winograd forms of it and its adjoint.

    ``packed`` and ``packed_adjoint`` are None where the op runs without them (CUDA, or a CPU without AVX2).
    """

    weight: Tensor
    bias: Tensor | None
    packed: Tensor | None
    packed_adjoint: Tensor | None

    @staticmethod
    def of(weight: Tensor, bias: Tensor | None) -> PackedConv:
        weight, bias = weight.detach(), None if bias is None else bias.detach()
        if weight.device.type != "cpu":
            return PackedConv(weight, bias, None, None)
        packed = torch.ops.lway.conv3x3_pack(weight)
        if packed.numel() == 0:  # the Winograd kernel is not available for this dtype or processor
            return PackedConv(weight, bias, None, None)
        return PackedConv(weight, bias, packed, torch.ops.lway.conv3x3_pack(_adjoint(weight)))


def _adjoint(weight: Tensor) -> Tensor:
    """The kernel whose padded 3x3 convolution is the transpose of ``weight``'s: swap in/out, rotate 180 degrees."""
    return weight.transpose(0, 1).flip(2, 3).contiguous()


def op_available(device: torch.device) -> bool:
    """Whether ``lway::conv3x3_fused`` has a kernel for ``device`` (CPU always, CUDA if built with nvcc)."""
    if not extension_available():
        return False
    key = "CUDA" if device.type == "cuda" else "CPU" if device.type == "cpu" else None
    return key is not None and torch._C._dispatch_has_kernel_for_dispatch_key(_OP, key)


def _self_check_outputs(device: torch.device, block: Any) -> list[Tensor]:
    """A fixed modulated residual block (2 x 16 ch x 13 x 11: odd sizes hit the tile edges) through ``block``:
    the output and the gradients to the input and the residual."""
    generator = torch.Generator().manual_seed(0)

    def draw(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator).to(device)

    x, weight, bias, residual = draw(2, 16, 13, 11), draw(16, 16, 3, 3) * 0.1, draw(16), draw(2, 16, 13, 11)
    in_scale, out_scale, grad = draw(2, 16).abs() + 0.5, draw(2, 16).abs() + 0.5, draw(2, 16, 13, 11)
    x.requires_grad_(True)
    residual.requires_grad_(True)
    y = block(x, weight, bias, in_scale, out_scale, residual)
    grad_x, grad_residual = torch.autograd.grad(y, (x, residual), grad)
    return [y, grad_x, grad_residual]


def op_verified(device: torch.device) -> bool:
    """Whether the op agrees with :func:`conv3x3_reference` on ``device`` (checked once per process and device;
    see ``lway_engine.hardware.selfcheck``): R uses the op only where this holds."""
    def fast(dev: torch.device) -> list[Tensor]:
        return _self_check_outputs(dev, lambda x, w, b, i, o, r: conv3x3_block(x, PackedConv.of(w, b), i, o, r))

    def reference(dev: torch.device) -> list[Tensor]:
        return _self_check_outputs(dev, lambda x, w, b, i, o, r: conv3x3_reference(x, w, i, o, b, r, True, 0.2,
                                                                                     2**0.5, 1.0))

    return fast_path_ok("lway::conv3x3_fused (the reconstructor's fused block)", device, fast, reference, 1e-4)


def conv3x3_block(x: Tensor, conv: PackedConv, in_scale: Tensor | None = None, out_scale: Tensor | None = None,
                  residual: Tensor | None = None, act: bool = True, negative_slope: float = 0.2,
                  act_gain: float = 2**0.5, res_gain: float = 1.0) -> Tensor:
    """One block through the op; differentiable with respect to ``x`` and ``residual`` only."""
    y, _ = torch.ops.lway.conv3x3_fused(x, conv.weight, conv.packed, conv.packed_adjoint, in_scale, out_scale,
                                        conv.bias, residual, act, negative_slope, act_gain, res_gain)
    return y


def _channels_last(n: int, c: int, h: int, w: int, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    return like.new_empty((n, c, h, w), dtype=dtype or like.dtype).contiguous(memory_format=torch.channels_last)


def _fake_pack(weight: Tensor) -> Tensor:
    k, c = weight.shape[:2]
    winograd = weight.dtype == torch.float32 and torch.backends.cpu.get_cpu_capability() != "DEFAULT"
    return weight.new_empty((_WINOGRAD_POINTS * -(-k // _LANES) * c * _LANES if winograd else 0,))


def _fake_fused(x: Tensor, weight: Tensor, packed: Tensor | None, packed_adjoint: Tensor | None,
                in_scale: Tensor | None, out_scale: Tensor | None, bias: Tensor | None, residual: Tensor | None,
                act: bool, negative_slope: float, act_gain: float, res_gain: float) -> tuple[Tensor, Tensor]:
    torch._check(x.dim() == 4 and weight.dim() == 4 and weight.shape[1] == x.shape[1],
                 lambda: f"{_OP}: x {tuple(x.shape)} and weight {tuple(weight.shape)} do not match")
    n, _, h, w = x.shape
    k = weight.shape[0]
    mask = _channels_last(n, k, h, w, x, torch.bool) if act else x.new_empty((0,), dtype=torch.bool)
    return _channels_last(n, k, h, w, x), mask


def _fake_act_backward(grad_y: Tensor, mask: Tensor | None, out_scale: Tensor | None, negative_slope: float,
                       act_gain: float) -> Tensor:
    return _channels_last(*grad_y.shape, grad_y)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    x, weight, packed, packed_adjoint, in_scale, out_scale, bias, residual, act, slope, act_gain, res_gain = inputs
    ctx.act, ctx.slope, ctx.act_gain, ctx.res_gain = act, slope, act_gain, res_gain
    ctx.has_residual = residual is not None
    # The reconstructor's blocks add their own input: the two gradients to it are then summed inside the backward
    # convolution's epilogue instead of by autograd (one pass over the activations less).
    ctx.residual_is_x = residual is x
    ctx.save_for_backward(weight, packed_adjoint, in_scale, out_scale, output[1] if act else None)


def _backward(ctx: Any, grad_y: Tensor, _grad_mask: Tensor | None) -> tuple[Tensor | None, ...]:
    frozen = (1, 2, 3, 4, 5, 6)  # weight, packed forms, scales, bias
    if any(ctx.needs_input_grad[i] for i in frozen):
        raise RuntimeError(f"{_OP} computes gradients for x and residual only; R's weights and styles must be "
                           "frozen (requires_grad=False). Training R uses the PyTorch reference path.")
    weight, packed_adjoint, in_scale, out_scale, mask = ctx.saved_tensors
    g = grad_y
    if ctx.act or out_scale is not None:
        g = torch.ops.lway.conv3x3_act_backward(grad_y, mask, out_scale, ctx.slope, ctx.act_gain)
    fold = ctx.residual_is_x and ctx.needs_input_grad[0]
    grad_x = grad_residual = None
    if ctx.needs_input_grad[0]:  # res_gain * ([grad_y] + in_scale * conv3x3(g, weight^T))
        grad_x, _ = torch.ops.lway.conv3x3_fused(g, _adjoint(weight), packed_adjoint, None, None, in_scale, None,
                                                 grad_y if fold else None, False, 0.0, 1.0, ctx.res_gain)
    if ctx.has_residual and ctx.needs_input_grad[7] and not fold:
        grad_residual = grad_y * ctx.res_gain
    return grad_x, None, None, None, None, None, None, grad_residual, None, None, None, None


if extension_available():
    torch.library.register_fake("lway::conv3x3_pack", _fake_pack)
    torch.library.register_fake(_OP, _fake_fused)
    torch.library.register_fake("lway::conv3x3_act_backward", _fake_act_backward)
    torch.library.register_autograd(_OP, _backward, setup_context=_setup_context)
