"""The fused HF weight map + weighted L1 (``lway_engine.kernels``) against the float64 PyTorch reference.

Three layers: the ``lway::`` ops on CPU (which run the reference maths, so what is tested is the op plumbing:
opcheck, autograd, torch.compile without graph breaks); the Triton kernels themselves on CPU tensors under the
Triton interpreter, in a subprocess because ``TRITON_INTERPRET`` must be set before ``@triton.jit`` runs; and the
same checks on CUDA where a GPU is present. Inputs are fresh random draws each run: a failing test prints its seed,
and ``LWAY_TEST_SEED=<seed>`` replays it.

This file is also the interpreter's script: ``TRITON_INTERPRET=1 python tests/test_kernels.py SEED`` runs every
interpreter case and prints ``{case: error or ""}`` as JSON.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lway_engine.adaptation.hf_weight import hf_weight_map, weighted_l1

Shape = tuple[int, int, int, int]

# Odd and even sizes, batch 1 and 6, 1 and 3 channels, and 1-pixel rows/columns (a block made of padding only).
SHAPES: list[Shape] = [(2, 3, 9, 13), (1, 1, 9, 13), (6, 3, 6, 10), (2, 3, 1, 5), (1, 3, 7, 1)]
LAYOUTS = ["contiguous", "channels_last", "sliced"]


def _seed_from_env() -> int:
    return int(os.environ.get("LWAY_TEST_SEED", secrets.randbelow(2**31)))


@pytest.fixture
def seed() -> int:
    value = _seed_from_env()
    print(f"seed {value}: rerun with LWAY_TEST_SEED={value}")  # pytest shows this for failing tests only
    torch.manual_seed(value)
    return value


def _images(shape: Shape, layout: str = "contiguous", dtype: torch.dtype = torch.float32,
            device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(x_hat, x) with values outside [0, 1] too (the loss must not assume image range), in the given layout.

    x_hat equals x on about a fifth of the pixels: |.| has no slope there and the gradient must be 0 (sign(0)).
    """
    x = torch.randn(shape, dtype=torch.float64) * 0.7 + 0.5
    x_hat = torch.where(torch.rand(shape) < 0.2, x, torch.randn(shape, dtype=torch.float64) * 0.7 + 0.5)
    pair = [x_hat, x]
    if layout == "channels_last":
        pair = [t.to(memory_format=torch.channels_last) for t in pair]
    elif layout == "sliced":
        pair = [torch.repeat_interleave(t, 2, dim=-1)[..., ::2] for t in pair]
    return tuple(t.to(device=device, dtype=dtype) for t in pair)  # type: ignore[return-value]


def _reference(x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, W) of the float64 reference; differentiable with respect to x_hat."""
    w = hf_weight_map(x.double())
    return weighted_l1(x_hat.double(), x.double(), w), w


def _reference_grad(x_hat: torch.Tensor, x: torch.Tensor, grad_loss: float,
                    grad_w_x_hat: torch.Tensor | None) -> torch.Tensor:
    """float64 d/dx_hat of ``grad_loss * L1 + sum(grad_w_x_hat * W*x_hat)``, by autograd of the reference."""
    x_hat = x_hat.detach().double().requires_grad_()
    loss, w = _reference(x_hat, x)
    total = grad_loss * loss
    if grad_w_x_hat is not None:
        total = total + (grad_w_x_hat.double() * w * x_hat).sum()
    (grad,) = torch.autograd.grad(total, x_hat)
    return grad


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str, dtype: torch.dtype = torch.float32) -> None:
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-3}
    assert torch.isfinite(actual).all(), f"{what}: not finite"
    torch.testing.assert_close(actual.double().cpu(), expected.double().cpu(), **tol, msg=lambda m: f"{what}: {m}")


# ---------------------------------------------------------------------------------------------------------------
# The ops on CPU (reference maths inside)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_ops_match_float64_reference(shape: Shape, layout: str, seed: int) -> None:
    from lway_engine.kernels import hf_weight, hf_weighted_l1, hf_weighted_l1_products

    x_hat, x = _images(shape, layout)
    ref_loss, ref_w = _reference(x_hat, x)
    loss, w = hf_weighted_l1(x_hat, x)
    assert loss.shape == () and w.shape == (shape[0], 1, *shape[2:]) and w.is_contiguous()
    _close(loss, ref_loss, "loss")
    _close(w, ref_w, "W")
    _close(hf_weight(x), ref_w, "hf_weight")
    loss, w, w_x_hat, w_x = hf_weighted_l1_products(x_hat, x)
    _close(loss, ref_loss, "products loss")
    _close(w_x_hat, ref_w * x_hat.double(), "W*x_hat")
    _close(w_x, ref_w * x.double(), "W*x")


@pytest.mark.parametrize("with_products", [False, True])
def test_gradient_matches_autograd_of_reference(with_products: bool, seed: int) -> None:
    from lway_engine.kernels import hf_weighted_l1, hf_weighted_l1_products

    x_hat, x = _images((2, 3, 9, 13), "channels_last")
    x_hat.requires_grad_()
    grad_w_x_hat = torch.randn(x.shape) if with_products else None
    if with_products:
        loss, _, w_x_hat, _ = hf_weighted_l1_products(x_hat, x)
        total = 1.7 * loss + (grad_w_x_hat * w_x_hat).sum()
    else:
        total = 1.7 * hf_weighted_l1(x_hat, x)[0]
    (grad,) = torch.autograd.grad(total, x_hat)
    _close(grad, _reference_grad(x_hat, x, 1.7, grad_w_x_hat), "grad x_hat")


def test_constant_image_gets_zero_weight(seed: int) -> None:
    from lway_engine.kernels import hf_weighted_l1

    x = torch.full((2, 3, 7, 9), 0.3)
    x_hat = torch.rand(x.shape, requires_grad=True)
    loss, w = hf_weighted_l1(x_hat, x)
    loss.backward()
    assert torch.equal(w, torch.zeros_like(w)) and float(loss.detach()) == 0.0
    assert torch.equal(x_hat.grad, torch.zeros_like(x_hat))


def test_only_x_hat_gets_a_gradient(seed: int) -> None:
    from lway_engine.kernels import hf_weighted_l1_products

    x_hat, x = (t.requires_grad_() for t in _images((1, 3, 4, 6)))
    loss, w, w_x_hat, w_x = hf_weighted_l1_products(x_hat, x)
    assert loss.requires_grad and w_x_hat.requires_grad
    assert not w.requires_grad and not w_x.requires_grad
    (loss + w_x_hat.sum()).backward()
    assert x_hat.grad is not None and x.grad is None


@pytest.mark.parametrize("op", ["hf_weight", "hf_weighted_l1", "hf_weighted_l1_products",
                                "hf_weighted_l1_backward", "hf_weighted_l1_backward_products"])
def test_opcheck(op: str, seed: int) -> None:
    import lway_engine.kernels  # noqa: F401  (registers the ops)

    x_hat, x = _images((2, 3, 5, 7), "channels_last")
    if op == "hf_weight":
        args: tuple = (x,)
    elif op.startswith("hf_weighted_l1_backward"):
        grad_w_x_hat = torch.randn(x.shape) if op.endswith("products") else None
        args = (torch.tensor(1.3), grad_w_x_hat, x_hat, x, hf_weight_map(x))
        op = "hf_weighted_l1_backward"
    else:
        args = (x_hat.requires_grad_(), x)
    torch.library.opcheck(getattr(torch.ops.lway, op).default, args)


@pytest.mark.parametrize("bad", ["shape", "dtype", "dims"])
def test_rejects_mismatched_inputs(bad: str) -> None:
    from lway_engine.kernels import hf_weighted_l1

    x = torch.rand(1, 3, 4, 4)
    x_hat = {"shape": torch.rand(1, 3, 4, 5), "dtype": x.double(), "dims": x[0]}[bad]
    with pytest.raises(RuntimeError, match="lway::hf_weighted_l1"):
        hf_weighted_l1(x_hat, x if bad != "dims" else x[0])


def _lway_like_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The LWay loss's use of the ops, with a stand-in for LPIPS on (W*x_hat, W*x)."""
    from lway_engine.kernels import hf_weighted_l1_products

    l1, _, w_x_hat, w_x = hf_weighted_l1_products(x_hat, x)
    return l1 + (w_x_hat - w_x).square().mean()


def test_compiles_without_graph_breaks(seed: int) -> None:
    x_hat, x = _images((2, 3, 9, 13))
    torch._dynamo.reset()
    explained = torch._dynamo.explain(_lway_like_loss)(x_hat.requires_grad_(), x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons


def test_loss_self_check_accepts_the_op_and_rejects_a_skewed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # On the CPU the ops run the reference maths, so this tests the first-use self-check itself: a fast path off by
    # 1e-3 of its loss is caught, warned about once, and refused for the rest of the process on that device.
    import lway_engine.kernels.hf_l1 as hf_l1
    from lway_engine.hardware.selfcheck import FastPathMismatchWarning, forget_verdicts

    forget_verdicts()
    assert hf_l1.fused_loss_verified(torch.device("cpu"))
    original = hf_l1.hf_weighted_l1_products

    def skewed(x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        loss, *rest = original(x_hat, x)
        return (loss * 1.001, *rest)

    forget_verdicts()
    monkeypatch.setattr(hf_l1, "hf_weighted_l1_products", skewed)
    with pytest.warns(FastPathMismatchWarning, match=r"fused Triton LWay loss .* self-check on cpu"):
        assert not hf_l1.fused_loss_verified(torch.device("cpu"))
    assert not hf_l1.fused_loss_verified(torch.device("cpu"))  # cached: no second warning, same verdict
    forget_verdicts()


def _assert_matches_eager(compiled: Callable[..., torch.Tensor], x_hat: torch.Tensor, x: torch.Tensor) -> None:
    """The compiled loss and its gradient equal the eager ones."""
    loss = compiled(x_hat, x)
    (grad,) = torch.autograd.grad(loss, x_hat)
    ref_loss = _lway_like_loss(x_hat, x)
    (ref_grad,) = torch.autograd.grad(ref_loss, x_hat)
    _close(loss, ref_loss, "compiled loss")
    _close(grad, ref_grad, "compiled grad")


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_forward_and_backward_match_eager(backend: str, seed: int) -> None:
    x_hat, x = _images((2, 3, 9, 13))
    x_hat.requires_grad_()
    torch._dynamo.reset()
    compiled = torch.compile(_lway_like_loss, backend=backend, fullgraph=True)  # any graph break is an error
    _assert_matches_eager(compiled, x_hat, x)


# ---------------------------------------------------------------------------------------------------------------
# The Triton kernels under the interpreter (CPU tensors, in a subprocess)

# name -> (shape, layout, values, dtype, tiles): "small" tiles make tiny images span several programs (and several
# rounds of the partial-sum loops); "default" are the GPU tiles.
INTERPRETER_CASES: dict[str, tuple[Shape, str, str, str, str]] = {
    "odd 2x3x9x13": ((2, 3, 9, 13), "contiguous", "random", "float32", "small"),
    "batch 1, 1 channel": ((1, 1, 9, 13), "contiguous", "random", "float32", "small"),
    "batch 6, even": ((6, 3, 6, 10), "contiguous", "random", "float32", "small"),
    "1-pixel rows and columns": ((2, 3, 1, 5), "contiguous", "random", "float32", "small"),
    "channels_last": ((2, 3, 9, 13), "channels_last", "random", "float32", "small"),
    "sliced": ((1, 3, 7, 11), "sliced", "random", "float32", "small"),
    "constant image": ((2, 3, 9, 13), "contiguous", "constant", "float32", "small"),
    "default tiles": ((2, 3, 19, 37), "contiguous", "random", "float32", "default"),
    "float16": ((1, 3, 9, 13), "contiguous", "random", "float16", "small"),
}


def _run_interpreter_case(shape: Shape, layout: str, values: str, dtype_name: str, tiles_name: str) -> None:
    """Every launcher of ``hf_l1_triton`` on one input, against the float64 reference (raises on mismatch)."""
    from lway_engine.kernels import hf_l1_triton as kt

    dtype = getattr(torch, dtype_name)
    tiles = kt.Tiles(block_rows=2, block_cols=4, pixel_rows=4, pixel_cols=8, pixels=16, partials=2,
                     num_warps=1) if tiles_name == "small" else kt.DEFAULT_TILES
    x_hat, x = _images(shape, layout, dtype)
    if values == "constant":
        x = torch.full(shape, -1.25, dtype=dtype)
    ref_loss, ref_w = _reference(x_hat, x)
    _close(kt.weight_map(x, tiles), ref_w, "weight_map", dtype)
    loss, w = kt.forward(x_hat, x, products=False, tiles=tiles)
    _close(loss, ref_loss, "forward loss", dtype)
    _close(w, ref_w, "forward W", dtype)
    loss, w, w_x_hat, w_x = kt.forward(x_hat, x, products=True, tiles=tiles)
    _close(loss, ref_loss, "products loss", dtype)
    _close(w_x_hat, ref_w * x_hat.double(), "W*x_hat", dtype)
    _close(w_x, ref_w * x.double(), "W*x", dtype)
    grad_w_x_hat = torch.randn(shape, dtype=dtype).transpose(-1, -2).contiguous().transpose(-1, -2)
    for extra in (None, grad_w_x_hat):
        grad = kt.backward(torch.tensor(1.7, dtype=dtype), extra, x_hat, x, w, tiles)
        _close(grad, _reference_grad(x_hat, x, 1.7, extra), f"backward (products: {extra is not None})", dtype)
    if values == "constant":
        assert torch.equal(w, torch.zeros_like(w)) and float(loss) == 0.0, "constant image: W or loss not 0"


def _run_interpreter_cases(seed: int) -> dict[str, str]:
    results = {}
    for name, case in INTERPRETER_CASES.items():
        torch.manual_seed(seed)
        try:
            _run_interpreter_case(*case)
            results[name] = ""
        except Exception as exc:  # noqa: BLE001  (reported per case to the parent test)
            results[name] = f"{type(exc).__name__}: {exc}"
    return results


@pytest.fixture(scope="module")
def interpreted() -> tuple[int, dict[str, str]]:
    """Runs all interpreter cases in one subprocess (one interpreter start-up), returning (seed, results)."""
    seed = _seed_from_env()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(seed)], check=False,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "TRITON_INTERPRET": "1"})
    assert done.returncode == 0, f"seed {seed}: interpreter script failed\n{done.stdout}\n{done.stderr}"
    return seed, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", list(INTERPRETER_CASES))
def test_triton_kernels_under_interpreter(case: str, interpreted: tuple[int, dict[str, str]]) -> None:
    seed, results = interpreted
    assert results[case] == "", f"seed {seed} (LWAY_TEST_SEED={seed} replays it): {results[case]}"


# ---------------------------------------------------------------------------------------------------------------
# The Triton path on a GPU (skipped without one)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("shape", [*SHAPES, (2, 3, 67, 131), (3, 1, 300, 257)], ids=str)
def test_cuda_matches_float64_reference(shape: Shape, dtype: torch.dtype, seed: int) -> None:
    from lway_engine.kernels import hf_weight, hf_weighted_l1_products

    x_hat, x = _images(shape, "channels_last", dtype, "cuda")
    x_hat.requires_grad_()
    ref_loss, ref_w = _reference(x_hat, x)
    loss, w, w_x_hat, w_x = hf_weighted_l1_products(x_hat, x)
    _close(loss, ref_loss, "loss", dtype)
    _close(w, ref_w, "W", dtype)
    _close(hf_weight(x), ref_w, "hf_weight", dtype)
    _close(w_x_hat, ref_w * x_hat.double(), "W*x_hat", dtype)
    _close(w_x, ref_w * x.double(), "W*x", dtype)
    grad_w_x_hat = torch.randn(shape, device="cuda", dtype=dtype)
    (grad,) = torch.autograd.grad(1.7 * loss + (grad_w_x_hat * w_x_hat).sum(), x_hat)
    _close(grad, _reference_grad(x_hat, x, 1.7, grad_w_x_hat), "grad x_hat", dtype)


@cuda
def test_cuda_is_deterministic(seed: int) -> None:
    from lway_engine.kernels import hf_weighted_l1

    x_hat, x = _images((4, 3, 255, 257), device="cuda")
    x_hat.requires_grad_()
    runs = []
    for _ in range(2):
        loss, w = hf_weighted_l1(x_hat, x)
        runs.append((loss, w, *torch.autograd.grad(loss, x_hat)))
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


@cuda
def test_cuda_compiles_without_graph_breaks(seed: int) -> None:
    x_hat, x = _images((2, 3, 33, 47), device="cuda")
    x_hat.requires_grad_()
    torch._dynamo.reset()
    explained = torch._dynamo.explain(_lway_like_loss)(x_hat, x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    torch._dynamo.reset()
    compiled: Callable[..., torch.Tensor] = torch.compile(_lway_like_loss, fullgraph=True)
    _assert_matches_eager(compiled, x_hat, x)


@cuda
def test_cuda_lway_loss_uses_the_fused_op_and_matches_cpu(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    import lway_engine.kernels
    from lway_engine.adaptation.loss import LWayLoss

    class SquaredError(torch.nn.Module):  # stands in for LPIPS: any differentiable function of (W*x_hat, W*x)
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (a - b).square().mean(dim=(1, 2, 3))

    calls = []
    fused = lway_engine.kernels.hf_weighted_l1_products
    monkeypatch.setattr(lway_engine.kernels, "hf_weighted_l1_products", lambda *a: calls.append(1) or fused(*a))
    loss_fn = LWayLoss(SquaredError())
    x_hat, x = _images((2, 3, 33, 47))
    results = []
    for device in ("cpu", "cuda"):
        leaf = x_hat.to(device).requires_grad_()
        terms = loss_fn(leaf, x.to(device))
        terms.total.backward()
        results.append((terms.total.detach(), leaf.grad))
    assert len(calls) == 1, "the CUDA loss did not use the fused op (or the CPU one did)"
    _close(results[1][0], results[0][0], "LWayLoss total")
    _close(results[1][1], results[0][1], "LWayLoss grad x_hat")


if __name__ == "__main__":  # the interpreter subprocess (see the module docstring)
    if os.environ.get("TRITON_INTERPRET") != "1":
        sys.exit("run with TRITON_INTERPRET=1: the kernels must be defined in interpreter mode")
    print(json.dumps(_run_interpreter_cases(int(sys.argv[1]))))
