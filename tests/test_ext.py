"""The C++ extension (lway_engine._C) and its ops, tested on the installed package against the PyTorch reference."""

from __future__ import annotations

import importlib.util
import sys
import warnings

import pytest
import torch

from lway_engine import ext

SLOPE, SCALE = ext.DEFAULT_NEGATIVE_SLOPE, ext.DEFAULT_SCALE

# Odd sizes everywhere (no multiple of a vector width); the last shape is large enough to run multi-threaded.
SHAPES = [(3, 5), (2, 7, 13), (3, 5, 7, 9), (2, 3, 1, 5, 3), (0, 4, 3), (4, 17, 65, 63)]


def _make(shape: tuple[int, ...], layout: str = "contiguous") -> torch.Tensor:
    if layout == "permuted":  # same logical shape, dims in reversed order in memory
        return torch.randn(shape[::-1]).permute(*range(len(shape) - 1, -1, -1))
    if layout == "sliced":  # every other element of a larger tensor along the last dim
        return torch.randn(*shape[:-1], 2 * shape[-1])[..., ::2]
    return torch.randn(shape)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_extension_is_built_for_this_torch() -> None:
    assert ext.extension_available(), "lway_engine._C did not load; reinstall with pip install --no-build-isolation ."
    info = ext.build_info()
    assert info is not None
    assert info["torch_version"] == torch.__version__
    assert info["cxx11_abi"] == torch._C._GLIBCXX_USE_CXX11_ABI
    assert isinstance(info["openmp"], bool) and info["compiler"]


@pytest.mark.parametrize("layout", ["contiguous", "permuted", "sliced"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_reference(shape: tuple[int, ...], layout: str) -> None:
    x = _make(shape, layout=layout)
    bias = torch.randn(2 * shape[1])[::2]  # a non-contiguous bias too
    assert layout == "contiguous" or x.numel() == 0 or not x.is_contiguous()
    out = ext.bias_leaky_relu(x, bias)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, ext.bias_leaky_relu_reference(x, bias), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("negative_slope", "scale"), [(0.0, 1.0), (0.01, 0.5), (1.0, 3.0)])
def test_forward_other_parameters(negative_slope: float, scale: float) -> None:
    x, bias = torch.randn(2, 5, 11), torch.randn(5)
    torch.testing.assert_close(
        ext.bias_leaky_relu(x, bias, negative_slope, scale),
        ext.bias_leaky_relu_reference(x, bias, negative_slope, scale),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_dtypes_round_once_from_float(dtype: torch.dtype) -> None:
    # Reduced precision is computed in float and rounded once, i.e. exactly the float32 reference, cast.
    x, bias = torch.randn(3, 7, 5, 9, dtype=dtype), torch.randn(7, dtype=dtype)
    grad = torch.randn(x.shape, dtype=dtype)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    x_ref = x.to(compute).requires_grad_()
    ref = ext.bias_leaky_relu_reference(x_ref, bias.to(compute))
    ref.backward(grad.to(compute))

    out = ext.bias_leaky_relu(x, bias)
    torch.testing.assert_close(out, ref.detach().to(dtype), rtol=0, atol=0)
    grad_x = torch.ops.lway.bias_leaky_relu_backward(grad, out, SLOPE, SCALE)
    torch.testing.assert_close(grad_x, x_ref.grad.to(dtype), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(3, 5), (2, 7, 13), (3, 5, 7, 9), (4, 17, 65, 63)], ids=str)
def test_gradients_match_reference_autograd(shape: tuple[int, ...]) -> None:
    x = _make(shape, layout="permuted").requires_grad_()
    bias = torch.randn(shape[1], requires_grad=True)
    grad = _make(shape, layout="sliced")

    grads = torch.autograd.grad(ext.bias_leaky_relu(x, bias), (x, bias), grad)
    ref_grads = torch.autograd.grad(ext.bias_leaky_relu_reference(x, bias), (x, bias), grad)
    torch.testing.assert_close(grads[0], ref_grads[0], rtol=1e-6, atol=1e-6)
    # The bias gradient is a reduction: summation order differs from autograd's, so allow float32 rounding.
    torch.testing.assert_close(grads[1], ref_grads[1], rtol=1e-5, atol=1e-4)


def test_only_bias_requires_grad() -> None:
    x, bias = torch.randn(2, 3, 4), torch.randn(3, requires_grad=True)
    (grad_bias,) = torch.autograd.grad(ext.bias_leaky_relu(x, bias).sum(), bias)
    (ref_grad_bias,) = torch.autograd.grad(ext.bias_leaky_relu_reference(x, bias).sum(), bias)
    torch.testing.assert_close(grad_bias, ref_grad_bias)


def test_gradcheck_and_gradgradcheck_float64() -> None:
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ext.bias_leaky_relu, (x, bias))
    assert torch.autograd.gradgradcheck(ext.bias_leaky_relu, (x, bias))


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4, 5)], ids=str)
def test_opcheck(shape: tuple[int, ...]) -> None:
    x = _make(shape, layout="permuted").requires_grad_()
    bias = torch.randn(shape[1], requires_grad=True)
    torch.library.opcheck(torch.ops.lway.bias_leaky_relu.default, (x, bias, SLOPE, SCALE))

    out = ext.bias_leaky_relu(x, bias).detach()
    grad = torch.randn(shape, requires_grad=True)
    torch.library.opcheck(torch.ops.lway.bias_leaky_relu_backward.default, (grad, out, SLOPE, SCALE))


def test_torch_compile_fullgraph() -> None:
    def block(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.conv2d(x, weight, padding=1)
        return ext.bias_leaky_relu(y, bias).mean()

    x = torch.randn(2, 3, 9, 11)
    weight = torch.randn(5, 3, 3, 3, requires_grad=True)
    bias = torch.randn(5, requires_grad=True)

    torch._dynamo.reset()
    compiled = torch.compile(block, fullgraph=True)  # fullgraph: any graph break is an error
    loss = compiled(x, weight, bias)
    grads = torch.autograd.grad(loss, (weight, bias))
    ref_loss = block(x, weight, bias)
    ref_grads = torch.autograd.grad(ref_loss, (weight, bias))
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grads, ref_grads)


@pytest.mark.parametrize(
    ("x", "bias", "kwargs", "message"),
    [
        (torch.randn(2, 3, 4), torch.randn(4), {}, r"expected bias of shape \(C,\) = \(3,\)"),
        (torch.randn(2, 3, 4), torch.randn(1, 3), {}, r"expected bias of shape \(C,\) = \(3,\)"),
        (torch.randn(6), torch.randn(6), {}, r"expected x of shape \(N, C, \*\)"),
        (torch.randn(2, 3), torch.randn(3), {"negative_slope": -0.1}, "requires scale > 0 and negative_slope >= 0"),
        (torch.randn(2, 3), torch.randn(3), {"scale": 0.0}, "requires scale > 0 and negative_slope >= 0"),
    ],
    ids=["bias-too-long", "bias-2d", "x-1d", "negative-slope", "zero-scale"],
)
def test_clear_errors(x: torch.Tensor, bias: torch.Tensor, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        ext.bias_leaky_relu(x, bias, **kwargs)


def test_op_rejects_mixed_dtypes_and_the_wrapper_casts_the_bias() -> None:
    x, bias = torch.randn(2, 3, 5), torch.randn(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="bias has dtype Double but x has dtype Float"):
        torch.ops.lway.bias_leaky_relu(x, bias, 0.2, 1.0)
    # Under autocast the activations are bf16 while the bias parameter stays float32: the wrapper casts the bias,
    # and its gradient comes back in float32.
    bias = torch.randn(3, requires_grad=True)
    out = ext.bias_leaky_relu(x.bfloat16(), bias)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ext.bias_leaky_relu_reference(x, bias), rtol=1e-2, atol=1e-2)
    out.float().sum().backward()
    assert bias.grad is not None and bias.grad.dtype == torch.float32


def test_backward_op_rejects_mismatched_shapes() -> None:
    with pytest.raises(RuntimeError, match="grad_out has shape"):
        torch.ops.lway.bias_leaky_relu_backward(torch.randn(2, 3), torch.randn(2, 4), SLOPE, SCALE)


def test_fallback_without_extension_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh copy of lway_engine.ext, loaded while `import lway_engine._C` fails (None in sys.modules makes the
    # import raise ImportError, as a missing .so does). The real module and its op registrations stay untouched.
    monkeypatch.setitem(sys.modules, "lway_engine._C", None)
    spec = importlib.util.spec_from_file_location("lway_engine_ext_without_c", ext.__file__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    x = torch.randn(2, 5, 7, 3, requires_grad=True)
    bias = torch.randn(5, requires_grad=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec.loader.exec_module(fresh)
        outs = [fresh.bias_leaky_relu(x, bias) for _ in range(3)]
        outs.append(fresh.bias_leaky_relu(x, bias, 0.0, 1.0))

    ours = [w for w in caught if issubclass(w.category, fresh.ExtensionUnavailableWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "pure-PyTorch fallback" in str(ours[0].message)
    assert "pip install --no-build-isolation ." in str(ours[0].message)
    assert not fresh.extension_available() and fresh.build_info() is None

    ref = ext.bias_leaky_relu_reference(x, bias)
    for out in outs[:3]:
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(outs[3], torch.relu(x + bias.view(1, -1, 1, 1)))
    grads = torch.autograd.grad(outs[0].sum(), (x, bias))
    ref_grads = torch.autograd.grad(ext.bias_leaky_relu(x, bias).sum(), (x, bias))
    torch.testing.assert_close(grads, ref_grads, rtol=1e-5, atol=1e-5)
