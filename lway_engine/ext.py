"""Native CPU kernels of lway-engine (``lway_engine._C``), with a pure-PyTorch fallback.

The StyleGAN2-style reconstructor applies ``leaky_relu(x + bias) * gain`` after every modulated convolution: three
memory-bound elementwise passes that ``torch.ops.lway.bias_leaky_relu`` fuses into one. Loading ``_C`` registers the
ops' CPU kernels with the dispatcher; this module adds what they need from Python: autograd formulas and fake
(meta) kernels, so the ops work under autograd (including double backward), ``torch.compile(fullgraph=True)`` and
``torch.library.opcheck``. The C++ library names this module (``m.set_python_module``) as where those live.

If ``_C`` is missing or fails to load (e.g. built against another torch), one warning is emitted at import and
the reference implementation is used instead, so everything keeps working, only slower.
"""

from __future__ import annotations

import importlib
import math
import warnings
from types import ModuleType
from typing import Any

import torch  # must be imported before _C: the extension links against the libraries torch loads
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DEFAULT_NEGATIVE_SLOPE",
    "DEFAULT_SCALE",
    "ExtensionUnavailableWarning",
    "bias_leaky_relu",
    "bias_leaky_relu_reference",
    "build_info",
    "extension_available",
]

DEFAULT_NEGATIVE_SLOPE = 0.2
# StyleGAN2's activation gain: restores the activations' second moment that leaky ReLU roughly halves.
DEFAULT_SCALE = math.sqrt(2.0)


class ExtensionUnavailableWarning(RuntimeWarning):
    """``lway_engine._C`` could not be loaded; the pure-PyTorch fallbacks are in use."""


def _load_extension() -> ModuleType | None:
    """Import ``lway_engine._C`` (which registers the ``torch.ops.lway`` CPU kernels), or warn and return None."""
    try:
        return importlib.import_module("lway_engine._C")
    except ImportError as exc:  # not built, or built against a different torch (undefined symbols)
        warnings.warn(
            f"lway_engine._C could not be loaded ({exc}); the pure-PyTorch fallback is used for the fused ops, "
            "which is slower. Rebuild the extension against the installed torch with "
            "`pip install --no-build-isolation .` from the lway-engine source tree.",
            ExtensionUnavailableWarning,
            stacklevel=2,
        )
        return None


_EXT = _load_extension()


def extension_available() -> bool:
    """Whether the compiled extension is loaded (otherwise the pure-PyTorch fallbacks are used)."""
    return _EXT is not None


def build_info() -> dict[str, Any] | None:
    """How the extension was built (compiler, OpenMP, torch version and C++ ABI), or None if it is not loaded."""
    return None if _EXT is None else _EXT.build_info()


def bias_leaky_relu_reference(
    x: Tensor, bias: Tensor, negative_slope: float = DEFAULT_NEGATIVE_SLOPE, scale: float = DEFAULT_SCALE
) -> Tensor:
    """Unfused definition of :func:`bias_leaky_relu`: the fallback, and the ground truth the kernels are tested on."""
    return F.leaky_relu(x + bias.view(1, -1, *([1] * (x.dim() - 2))), negative_slope) * scale


def bias_leaky_relu(
    x: Tensor, bias: Tensor, negative_slope: float = DEFAULT_NEGATIVE_SLOPE, scale: float = DEFAULT_SCALE
) -> Tensor:
    """``leaky_relu(x + bias.view(1, C, 1, ...), negative_slope) * scale`` for ``x`` of shape (N, C, *).

    On CPU with the extension loaded this is one fused pass (``torch.ops.lway.bias_leaky_relu``; it needs
    ``scale > 0`` and ``negative_slope >= 0``, see csrc/bias_act.cpp). Elsewhere it is the unfused reference: there
    is no GPU kernel, and on GPU ``torch.compile`` fuses the reference's elementwise chain by itself.
    """
    bias = bias.to(x.dtype)  # under autocast x arrives in bf16/fp16 while the parameter stays float32
    if _EXT is None or x.device.type != "cpu":
        return bias_leaky_relu_reference(x, bias, negative_slope, scale)
    return torch.ops.lway.bias_leaky_relu(x, bias, negative_slope, scale)


def _fake_bias_leaky_relu(x: Tensor, bias: Tensor, negative_slope: float, scale: float) -> Tensor:
    torch._check(x.dim() >= 2, lambda: f"lway::bias_leaky_relu: expected x of shape (N, C, *), got {tuple(x.shape)}")
    torch._check(
        bias.dim() == 1 and bias.shape[0] == x.shape[1],
        lambda: f"lway::bias_leaky_relu: expected bias of shape ({x.shape[1]},), got {tuple(bias.shape)}",
    )
    return x.new_empty(x.shape)  # the kernel always returns a contiguous tensor


def _fake_bias_leaky_relu_backward(grad_out: Tensor, out: Tensor, negative_slope: float, scale: float) -> Tensor:
    torch._check(
        grad_out.shape == out.shape,
        lambda: f"lway::bias_leaky_relu_backward: grad_out has shape {tuple(grad_out.shape)}, out {tuple(out.shape)}",
    )
    return out.new_empty(out.shape)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    # The output alone determines the gradient (its sign is that of x + bias; see csrc/bias_act.cpp), so neither x
    # nor bias is kept alive for backward.
    _, _, ctx.negative_slope, ctx.scale = inputs
    ctx.save_for_backward(output)


def _backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
    (out,) = ctx.saved_tensors
    grad_x = torch.ops.lway.bias_leaky_relu_backward(grad_out, out, ctx.negative_slope, ctx.scale)
    grad_bias = grad_x.sum([d for d in range(grad_x.dim()) if d != 1]) if ctx.needs_input_grad[1] else None
    return grad_x, grad_bias, None, None


def _setup_context_backward(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    _, out, ctx.negative_slope, ctx.scale = inputs
    ctx.save_for_backward(out)


def _backward_backward(ctx: Any, grad_grad_x: Tensor) -> tuple[Tensor, None, None, None]:
    # grad_x is linear in grad_out with the same per-element factor, and piecewise constant in out (zero gradient),
    # which is what double backward (e.g. an R1 penalty through the network) needs.
    (out,) = ctx.saved_tensors
    return torch.ops.lway.bias_leaky_relu_backward(grad_grad_x, out, ctx.negative_slope, ctx.scale), None, None, None


if _EXT is not None:
    torch.library.register_fake("lway::bias_leaky_relu", _fake_bias_leaky_relu)
    torch.library.register_fake("lway::bias_leaky_relu_backward", _fake_bias_leaky_relu_backward)
    torch.library.register_autograd("lway::bias_leaky_relu", _backward, setup_context=_setup_context)
    torch.library.register_autograd(
        "lway::bias_leaky_relu_backward", _backward_backward, setup_context=_setup_context_backward
    )
