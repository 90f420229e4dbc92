"""lway::conv3x3_fused (csrc/conv3x3.cpp, Winograd on CPU) and the reconstructor's fused path, against PyTorch.

Tolerances: the op's float32 Winograd arithmetic differs from a direct convolution by a few 1e-6 of the output's
scale. Outputs are compared elementwise to 1e-5 of that scale. Input gradients are compared by relative error
norm (1e-5): a pre-activation within rounding of zero may take the other side of the leaky ReLU's kink in either
implementation, which changes that one element's gradient (any two float32 implementations disagree there) but
not the gradient as a whole.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from lway_engine.ext import extension_available
from lway_engine.hardware.selfcheck import FastPathMismatchWarning, forget_verdicts
from lway_engine.reconstruction import LWayReconstruction, ReconstructionConfig
from lway_engine.reconstruction import fused as fused_module
from lway_engine.reconstruction.fused import (
    PackedConv,
    conv3x3_block,
    conv3x3_reference,
    op_available,
    op_verified,
)

pytestmark = pytest.mark.skipif(not extension_available(), reason="lway_engine._C is not built")

SLOPE, GAIN = 0.2, 2**0.5
# (N, C, H, W, K): sizes that are not multiples of the 4x4 tile or of the 16-channel blocks, and R's own shapes.
SHAPES = [(2, 64, 13, 11, 64), (3, 48, 17, 9, 64), (2, 64, 5, 7, 3), (1, 5, 6, 6, 7), (3, 16, 1, 2, 16)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _max_rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.detach().double(), ref.detach().double()
    return float((a - ref).abs().max() / ref.abs().max())


def _norm_rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref.double()).norm() / ref.double().norm())


def _args(n: int, c: int, k: int, per_sample: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = n if per_sample else 1
    weight = torch.randn(k, c, 3, 3) / (3 * c**0.5)
    return weight, torch.randn(k), torch.rand(rows, c) + 0.5, torch.rand(rows, k) + 0.5


@pytest.mark.parametrize("per_sample", [True, False], ids=["per-sample", "shared"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_block_matches_reference(shape: tuple[int, ...], per_sample: bool) -> None:
    n, c, h, w, k = shape
    weight, bias, in_scale, out_scale = _args(n, c, k, per_sample)
    conv = PackedConv.of(weight, bias)
    x = torch.randn(n, c, h, w, requires_grad=True)
    residual = x if c == k else None
    grad = torch.randn(n, k, h, w)
    y = conv3x3_block(x, conv, in_scale, out_scale, residual, res_gain=0.7)
    (gx,) = torch.autograd.grad(y, x, grad)

    x64 = x.detach().double().requires_grad_()
    ref = conv3x3_reference(x64, weight.double(), in_scale.double(), out_scale.double(), bias.double(),
                            x64 if residual is not None else None, True, SLOPE, GAIN, 0.7)
    (ref_gx,) = torch.autograd.grad(ref, x64, grad.double())
    assert y.shape == ref.shape and y.is_contiguous(memory_format=torch.channels_last)
    assert _max_rel(y, ref) < 1e-5
    assert _norm_rel(gx, ref_gx) < 1e-5


@pytest.mark.parametrize("act", [True, False])
def test_float64_runs_the_composite_definition(act: bool) -> None:
    n, c, h, w, k = 2, 8, 9, 7, 5
    weight, bias, in_scale, out_scale = (t.double() for t in _args(n, c, k, True))
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    y, mask = torch.ops.lway.conv3x3_fused(x, weight, None, None, in_scale, out_scale, bias, None, act, SLOPE, GAIN,
                                           1.0)
    ref = conv3x3_reference(x, weight, in_scale, out_scale, bias, None, act, SLOPE, GAIN, 1.0)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    assert mask.numel() == (y.numel() if act else 0)


def test_opcheck() -> None:
    n, c, h, w, k = 2, 6, 5, 7, 6
    weight, bias, in_scale, out_scale = _args(n, c, k, True)
    conv = PackedConv.of(weight, bias)
    x = torch.randn(n, c, h, w, requires_grad=True)
    for args in [
        (x, weight, conv.packed, conv.packed_adjoint, in_scale, out_scale, bias, x, True, SLOPE, GAIN, 0.7),
        (x, weight, None, None, None, None, None, None, False, 0.0, 1.0, 1.0),
    ]:
        torch.library.opcheck(torch.ops.lway.conv3x3_fused.default, args)
    grad, mask = torch.randn(n, k, h, w), torch.rand(n, k, h, w) > 0.5
    torch.library.opcheck(torch.ops.lway.conv3x3_act_backward.default, (grad, mask, out_scale, SLOPE, GAIN))
    torch.library.opcheck(torch.ops.lway.conv3x3_act_backward.default, (grad, None, None, SLOPE, GAIN))
    torch.library.opcheck(torch.ops.lway.conv3x3_pack.default, (weight,))


def test_gradients_to_frozen_inputs_are_refused() -> None:
    weight, bias, in_scale, out_scale = _args(1, 4, 4, True)
    x = torch.randn(1, 4, 6, 6, requires_grad=True)
    y = conv3x3_block(x, PackedConv(weight.requires_grad_(), bias, None, None), in_scale, out_scale)
    with pytest.raises(RuntimeError, match="gradients for x and residual only"):
        y.sum().backward()


def test_clear_errors() -> None:
    with pytest.raises(RuntimeError, match=r"expected weight of shape \(K, 4, 3, 3\)"):
        torch.ops.lway.conv3x3_fused(torch.randn(1, 4, 5, 5), torch.randn(2, 3, 3, 3), None, None, None, None, None,
                                     None, False, 0.0, 1.0, 1.0)
    with pytest.raises(RuntimeError, match=r"expected in_scale of shape \[2, 4\]"):
        torch.ops.lway.conv3x3_fused(torch.randn(2, 4, 5, 5), torch.randn(2, 4, 3, 3), None, None,
                                     torch.randn(3, 4), None, None, None, False, 0.0, 1.0, 1.0)


# The reconstructor: the fused path (frozen R, the default) against the PyTorch path on the same weights.

SMALL = ReconstructionConfig(scale=4, embed_dim=32, encoder_width=16, reconstructor_width=16, num_blocks=2)


def _frozen_reconstructor(config: ReconstructionConfig) -> torch.nn.Module:
    r = LWayReconstruction(config).reconstructor
    with torch.no_grad():
        r.conv_out.weight.normal_(std=0.1)  # trained-like: the residual branch contributes
    return r.requires_grad_(False)


@pytest.mark.parametrize("embeddings", [3, 1], ids=["per-image", "shared"])
@pytest.mark.parametrize("config", [SMALL, ReconstructionConfig()], ids=["small", "default"])
def test_reconstructor_fused_matches_pytorch_path(config: ReconstructionConfig, embeddings: int) -> None:
    r = _frozen_reconstructor(config)
    hr = torch.rand(3, 3, 4 * 13, 4 * 11, requires_grad=True)  # odd LR size: 13 x 11
    e = torch.randn(embeddings, config.embed_dim)
    grad = torch.randn(3, 3, 13, 11)
    results = {}
    for use in (True, False):
        r.use_extension = use
        styles = r.prepare(e)
        assert (styles.convs is not None) == use
        out = r(hr, styles=styles)
        results[use] = (out.detach(), *torch.autograd.grad(out, hr, grad))
    assert _max_rel(results[True][0], results[False][0]) < 1e-5
    assert _norm_rel(results[True][1], results[False][1]) < 1e-5


def test_reconstructor_uses_pytorch_path_when_trainable_or_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    r = LWayReconstruction(SMALL).reconstructor  # trainable: pre-training needs the weights' gradients
    e = torch.randn(2, SMALL.embed_dim)
    assert r.prepare(e).convs is None
    r.requires_grad_(False)
    assert r.prepare(e).convs is not None
    monkeypatch.setattr(fused_module, "extension_available", lambda: False)
    assert not op_available(torch.device("cpu")) and r.prepare(e).convs is None
    assert not op_available(torch.device("meta"))


def test_reconstructor_fused_path_compiles_without_graph_breaks() -> None:
    r = _frozen_reconstructor(SMALL)
    hr = torch.rand(2, 3, 48, 40, requires_grad=True)
    styles = r.prepare(torch.randn(2, SMALL.embed_dim))
    compiled = torch.compile(lambda x: r(x, styles=styles), backend="aot_eager", fullgraph=True)
    out = compiled(hr)
    (grad,) = torch.autograd.grad(out.sum(), hr)
    ref = r(hr, styles=styles)
    (ref_grad,) = torch.autograd.grad(ref.sum(), hr)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad, ref_grad)


@pytest.mark.skipif(not (torch.cuda.is_available() and op_available(torch.device("cuda"))),
                    reason="needs a GPU and the extension built with its CUDA kernels")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_kernels_match_reference(dtype: torch.dtype) -> None:
    n, c, h, w, k = 3, 64, 37, 29, 64
    weight, bias, in_scale, out_scale = (t.cuda().to(dtype) for t in _args(n, c, k, True))
    x = torch.randn(n, c, h, w, device="cuda", dtype=dtype, requires_grad=True)
    grad = torch.randn(n, k, h, w, device="cuda", dtype=dtype)
    y = conv3x3_block(x, PackedConv.of(weight, bias), in_scale, out_scale, x, res_gain=0.7)
    (gx,) = torch.autograd.grad(y, x, grad)
    x64 = x.detach().double().requires_grad_()
    ref = conv3x3_reference(x64, weight.double(), in_scale.double(), out_scale.double(), bias.double(), x64, True,
                            SLOPE, GAIN, 0.7)
    (ref_gx,) = torch.autograd.grad(ref, x64, grad.double())
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # cuDNN may use TF32 off by default; bf16 has 8 mantissa bits
    assert _max_rel(y, ref) < tol and _norm_rel(gx, ref_gx) < tol


def test_self_check_passes_here_and_r_uses_the_op() -> None:
    forget_verdicts()
    with torch.no_grad():  # where R.prepare runs: the check still computes its gradients
        assert op_verified(torch.device("cpu"))
    r = LWayReconstruction(SMALL).reconstructor.requires_grad_(False)
    assert r.prepare(torch.randn(2, SMALL.embed_dim)).convs is not None


def test_self_check_mismatch_warns_once_and_r_takes_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fast path that is off by 1e-3 of its output's scale, as a miscompiled kernel would be.
    def skewed(x, conv, in_scale=None, out_scale=None, residual=None, **kwargs):
        y = conv3x3_block(x, conv, in_scale, out_scale, residual, **kwargs)
        return y + 1e-3 * y.detach().abs().max()

    forget_verdicts()
    monkeypatch.setattr(fused_module, "conv3x3_block", skewed)
    model = LWayReconstruction(SMALL).requires_grad_(False)
    with torch.no_grad():
        model.reconstructor.conv_out.weight.normal_(std=0.1)
    r, e, hr = model.reconstructor, torch.randn(2, SMALL.embed_dim), torch.rand(2, 3, 64, 64)
    with pytest.warns(FastPathMismatchWarning, match=r"conv3x3_fused .* self-check on cpu \(max relative error"):
        styles = r.prepare(e)
    assert styles.convs is None  # the reference path for the rest of the process
    r.use_extension = False
    torch.testing.assert_close(r(hr, styles=styles), r(hr, e))
    r.use_extension = True
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathMismatchWarning)  # warned once: the verdict is cached
        assert r.prepare(e).convs is None
    forget_verdicts()
