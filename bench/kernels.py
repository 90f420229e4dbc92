"""Fused HF weight map + weighted L1 (lway_engine.kernels) vs the eager reference vs torch.compile(reference).

Times forward + backward (gradient to x_hat) of two ops: ``l1`` -> (loss, W), and ``l1+products`` -> (loss, W,
W*x_hat, W*x), the form the LWay loss uses (its LPIPS term reads W*x_hat and W*x). Each time is the median of many
runs measured with CUDA events. Effective bandwidth counts the minimum traffic of the maths (inputs read once,
outputs written once, forward and backward) and is compared with a measured device-to-device copy.

Run: .venv/bin/python bench/kernels.py   -> prints a table, writes bench/results/kernels_<device>.json
The Triton kernels run on CUDA only: without a CUDA device this says so and exits 0, measuring nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
import triton

from lway_engine.adaptation.hf_weight import hf_weight_map, weighted_l1
from lway_engine.hardware import cpu_features
from lway_engine.kernels import hf_weighted_l1, hf_weighted_l1_products
from results_dir import results_dir

SHAPES = [(6, 3, 128, 128), (16, 3, 512, 512)]
Op = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


def reference_l1(x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = hf_weight_map(x)
    return weighted_l1(x_hat, x, w), w


def reference_products(x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = hf_weight_map(x)
    return weighted_l1(x_hat, x, w), w, w * x_hat, w * x


def min_bytes(shape: tuple[int, int, int, int], products: bool, itemsize: int) -> int:
    """Forward reads x_hat, x and writes W (+ W*x_hat, W*x); backward reads them back (+ the grad of W*x_hat)."""
    n = shape[0] * shape[1] * shape[2] * shape[3]
    pixels = n // shape[1]
    forward = 2 * n + pixels + (2 * n if products else 0)
    backward = 2 * n + pixels + n + (n if products else 0)
    return (forward + backward) * itemsize


def median_ms(step: Callable[[], None], runs: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        step()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
    for start, end in events:
        start.record()
        step()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in events)


def copy_bandwidth_gbs(runs: int) -> float:
    """Device-to-device copy of 512 MiB: bytes read + written per second."""
    src = torch.empty(2**27, device="cuda", dtype=torch.float32)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), runs)
    return 2 * src.numel() * src.element_size() / ms / 1e6


def fwd_bwd(op: Op, x_hat: torch.Tensor, x: torch.Tensor, grad_w_x_hat: torch.Tensor | None) -> Callable[[], None]:
    """One forward + backward; the gradients of the outputs are given directly, so no extra kernels are timed."""
    one = torch.ones((), device=x.device, dtype=x.dtype)

    def step() -> None:
        x_hat.grad = None
        out = op(x_hat, x)
        if grad_w_x_hat is None:
            out[0].backward(one)
        else:
            torch.autograd.backward([out[0], out[2]], [one, grad_w_x_hat])

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per measurement (median reported)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench/kernels.py: no CUDA device here. The fused kernels are Triton GPU kernels (on CPU the op runs "
              "the PyTorch reference), so there is nothing to measure; no results written.")
        return

    device = torch.cuda.get_device_name()
    copy_gbs = copy_bandwidth_gbs(args.runs)
    ops: dict[str, dict[str, Op]] = {
        "l1": {"fused": hf_weighted_l1, "eager reference": reference_l1,
               "compiled reference": torch.compile(reference_l1, fullgraph=True)},
        "l1+products": {"fused": hf_weighted_l1_products, "eager reference": reference_products,
                        "compiled reference": torch.compile(reference_products, fullgraph=True)},
    }
    rows = []
    for shape in SHAPES:
        torch.manual_seed(0)
        x = torch.rand(shape, device="cuda")
        x_hat = (x + 0.1 * torch.randn_like(x)).requires_grad_()
        grad_w_x_hat = torch.randn_like(x)
        for op_name, variants in ops.items():
            products = op_name == "l1+products"
            with torch.no_grad():
                expected = variants["eager reference"](x_hat, x)
            for variant, op in variants.items():
                with torch.no_grad():
                    for got, want in zip(op(x_hat, x), expected, strict=True):  # never time a wrong result
                        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
                ms = median_ms(fwd_bwd(op, x_hat, x, grad_w_x_hat if products else None), args.runs)
                gbs = min_bytes(shape, products, x.element_size()) / ms / 1e6
                rows.append({"shape": list(shape), "op": op_name, "variant": variant, "median_ms": ms,
                             "effective_gbs": gbs, "fraction_of_copy": gbs / copy_gbs})

    print(f"{device}: device-to-device copy {copy_gbs:.0f} GB/s; forward + backward, float32, median of {args.runs}")
    print(f"{'shape':<18} {'op':<12} {'variant':<20} {'ms':>8} {'GB/s':>7} {'of copy':>8} {'vs eager':>9}")
    for row in rows:
        eager = next(r for r in rows if r["shape"] == row["shape"] and r["op"] == row["op"]
                     and r["variant"] == "eager reference")
        print(f"{'x'.join(map(str, row['shape'])):<18} {row['op']:<12} {row['variant']:<20} {row['median_ms']:>8.3f} "
              f"{row['effective_gbs']:>7.0f} {row['fraction_of_copy']:>8.0%} "
              f"{eager['median_ms'] / row['median_ms']:>8.2f}x")
    slug = re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")
    out = results_dir() / f"kernels_{slug}.json"
    out.write_text(json.dumps({"device": device, "cpu": cpu_features().as_dict(), "torch": torch.__version__,
                               "triton": triton.__version__, "runs": args.runs, "copy_gbs": copy_gbs,
                               "rows": rows}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
