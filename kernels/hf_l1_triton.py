"""Triton kernels of the fused HF weight map + weighted L1, and the functions that launch them.

The reference (``lway_engine.adaptation.hf_weight``) is a few dozen eager kernels, most of them reading or writing
a full image-sized tensor. The mean detail of each image is needed before any weight is known, so two passes
over the LR image are the minimum; here the whole forward is three launches and the backward one:

1. ``_haar_magnitude_kernel`` (2x2-block space): reads x once, writes the per-block magnitude m (1/(4C) of x) and
   one partial sum of m per program.
2. ``_weight_l1_kernel`` (pixel space): sums its image's partials in a fixed order (every program gets the same
   mean), gathers m, writes W and, optionally, W*x_hat and W*x (the LPIPS inputs), reading x_hat and x once;
   one partial sum of |W*(x_hat - x)| per program.
3. ``_mean_kernel``: one program sums those partials in a fixed order and divides by N.

No atomics anywhere, so results are bitwise reproducible. ``backward`` is one pass that writes
``grad_loss * W * sign(x_hat - x) / N`` (plus ``W * grad(W*x_hat)`` when the products were used).

The launchers call the kernels through ``torch.library.wrap_triton`` so that ``torch.compile`` sees through the
``lway::`` ops built on them (``hf_l1.py``); they are also callable directly, e.g. on CPU tensors under
``TRITON_INTERPRET=1``, which is how the tests run these kernels without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.library import wrap_triton

from lway_engine.adaptation.hf_weight import EPS, TAU


@dataclass(frozen=True)
class Tiles:
    """Tile sizes, all powers of two. The defaults suit a GPU; tests shrink them so tiny images span many tiles."""

    block_rows: int = 16  # pass 1: 2x2 blocks per program
    block_cols: int = 32
    pixel_rows: int = 16  # pass 2: pixels per program
    pixel_cols: int = 64
    pixels: int = 1024  # backward: pixels per program, all channels
    partials: int = 256  # chunk of per-program partial sums read at once
    num_warps: int = 4


DEFAULT_TILES = Tiles()


@triton.jit
def _haar_magnitude_kernel(x_ptr, m_ptr, m_partial_ptr, C, H, W, Hb, Wb,
                           BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr):
    pid_col, pid_row, img = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    i = pid_row * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)[:, None]
    j = pid_col * BLOCK_COLS + tl.arange(0, BLOCK_COLS)[None, :]
    inside = (i < Hb) & (j < Wb)
    # Replicate padding: the last block of an odd size reads its last row/column twice.
    top, bottom = 2 * i * W, tl.minimum(2 * i + 1, H - 1) * W
    left, right = 2 * j, tl.minimum(2 * j + 1, W - 1)
    plane = H * W
    energy = tl.zeros((BLOCK_ROWS, BLOCK_COLS), dtype=tl.float32)
    for c in range(C):
        channel = x_ptr + (img * C + c) * plane
        p00 = tl.load(channel + top + left, mask=inside, other=0.0).to(tl.float32)
        p01 = tl.load(channel + top + right, mask=inside, other=0.0).to(tl.float32)
        p10 = tl.load(channel + bottom + left, mask=inside, other=0.0).to(tl.float32)
        p11 = tl.load(channel + bottom + right, mask=inside, other=0.0).to(tl.float32)
        lh = (p00 - p01 + p10 - p11) * 0.5
        hl = (p00 + p01 - p10 - p11) * 0.5
        hh = (p00 - p01 - p10 + p11) * 0.5
        energy += lh * lh + hl * hl + hh * hh
    m = tl.sqrt(energy / C)
    tl.store(m_ptr + img * Hb * Wb + i * Wb + j, m, mask=inside)
    n_tiles = tl.num_programs(0) * tl.num_programs(1)
    tl.store(m_partial_ptr + img * n_tiles + pid_row * tl.num_programs(0) + pid_col, tl.sum(m))  # m = 0 outside


@triton.jit
def _weight_l1_kernel(x_hat_ptr, x_ptr, m_ptr, m_partial_ptr, w_ptr, w_x_hat_ptr, w_x_ptr, l1_partial_ptr,
                      C, H, W, Hb, Wb, n_m_partials, tau, eps,
                      ROWS: tl.constexpr, COLS: tl.constexpr, PARTIALS: tl.constexpr,
                      L1: tl.constexpr, PRODUCTS: tl.constexpr):
    pid_col, pid_row, img = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    # The image's mean magnitude from pass 1's partials, summed in the same order by every program.
    total = tl.zeros((PARTIALS,), dtype=tl.float32)
    for start in range(0, n_m_partials, PARTIALS):
        k = start + tl.arange(0, PARTIALS)
        total += tl.load(m_partial_ptr + img * n_m_partials + k, mask=k < n_m_partials, other=0.0)
    scale = tau * (tl.sum(total) / (Hb * Wb)) + eps
    r = pid_row * ROWS + tl.arange(0, ROWS)[:, None]
    col = pid_col * COLS + tl.arange(0, COLS)[None, :]
    inside = (r < H) & (col < W)
    m = tl.load(m_ptr + img * Hb * Wb + (r // 2) * Wb + col // 2, mask=inside, other=0.0)
    w = tl.minimum(m / scale, 1.0)  # 0 outside the image, so the sums below need no masking
    plane = H * W
    pixel = r * W + col
    tl.store(w_ptr + img * plane + pixel, w, mask=inside)
    if L1:
        abs_sum = tl.zeros((ROWS, COLS), dtype=tl.float32)
        for c in range(C):
            offset = (img * C + c) * plane + pixel
            x_hat = tl.load(x_hat_ptr + offset, mask=inside, other=0.0).to(tl.float32)
            x = tl.load(x_ptr + offset, mask=inside, other=0.0).to(tl.float32)
            abs_sum += tl.abs(w * (x_hat - x))
            if PRODUCTS:
                tl.store(w_x_hat_ptr + offset, w * x_hat, mask=inside)
                tl.store(w_x_ptr + offset, w * x, mask=inside)
        tile = (img * tl.num_programs(1) + pid_row) * tl.num_programs(0) + pid_col
        tl.store(l1_partial_ptr + tile, tl.sum(abs_sum))


@triton.jit
def _mean_kernel(partial_ptr, out_ptr, n_partials, n_elements, PARTIALS: tl.constexpr):
    total = tl.zeros((PARTIALS,), dtype=tl.float32)
    for start in range(0, n_partials, PARTIALS):
        k = start + tl.arange(0, PARTIALS)
        total += tl.load(partial_ptr + k, mask=k < n_partials, other=0.0)
    tl.store(out_ptr, tl.sum(total) / n_elements)


@triton.jit
def _backward_kernel(grad_loss_ptr, grad_w_x_hat_ptr, x_hat_ptr, x_ptr, w_ptr, grad_x_hat_ptr,
                     C, plane, n_elements, BLOCK: tl.constexpr, PRODUCTS: tl.constexpr):
    pid, img = tl.program_id(0), tl.program_id(1).to(tl.int64)
    pixel = pid * BLOCK + tl.arange(0, BLOCK)
    inside = pixel < plane
    w = tl.load(w_ptr + img * plane + pixel, mask=inside, other=0.0).to(tl.float32)
    w_grad = w * (tl.load(grad_loss_ptr).to(tl.float32) / n_elements)
    for c in range(C):
        offset = (img * C + c) * plane + pixel
        diff = (tl.load(x_hat_ptr + offset, mask=inside, other=0.0).to(tl.float32)
                - tl.load(x_ptr + offset, mask=inside, other=0.0).to(tl.float32))
        grad = tl.where(diff > 0, w_grad, tl.where(diff < 0, -w_grad, 0.0))
        if PRODUCTS:
            grad += w * tl.load(grad_w_x_hat_ptr + offset, mask=inside, other=0.0).to(tl.float32)
        tl.store(grad_x_hat_ptr + offset, grad, mask=inside)


def _magnitude(x: Tensor, tiles: Tiles) -> tuple[Tensor, Tensor]:
    """Pass 1 on a contiguous x: m (B, ceil(H/2), ceil(W/2)) and its per-program partial sums (B, n)."""
    batch, channels, height, width = x.shape
    hb, wb = (height + 1) // 2, (width + 1) // 2
    grid = (triton.cdiv(wb, tiles.block_cols), triton.cdiv(hb, tiles.block_rows), batch)
    m = torch.empty((batch, hb, wb), device=x.device, dtype=torch.float32)
    m_partial = torch.empty((batch, grid[0] * grid[1]), device=x.device, dtype=torch.float32)
    wrap_triton(_haar_magnitude_kernel)[grid](
        x, m, m_partial, channels, height, width, hb, wb,
        BLOCK_ROWS=tiles.block_rows, BLOCK_COLS=tiles.block_cols, num_warps=tiles.num_warps,
    )
    return m, m_partial


def weight_map(x: Tensor, tiles: Tiles = DEFAULT_TILES) -> Tensor:
    """W (B, 1, H, W) in x's dtype, from an LR batch x (B, C, H, W) with H, W >= 1."""
    x = x.contiguous()
    batch, channels, height, width = x.shape
    m, m_partial = _magnitude(x, tiles)
    w = torch.empty((batch, 1, height, width), device=x.device, dtype=x.dtype)
    grid = (triton.cdiv(width, tiles.pixel_cols), triton.cdiv(height, tiles.pixel_rows), batch)
    # Pointers a constexpr branch never touches get a read-only tensor: torch.compile then sees no extra writes.
    wrap_triton(_weight_l1_kernel)[grid](
        x, x, m, m_partial, w, x, x, m_partial, channels, height, width, m.shape[1], m.shape[2],
        m_partial.shape[1], TAU, EPS, ROWS=tiles.pixel_rows, COLS=tiles.pixel_cols, PARTIALS=tiles.partials, L1=False,
        PRODUCTS=False, num_warps=tiles.num_warps,
    )
    return w


def forward(x_hat: Tensor, x: Tensor, products: bool, tiles: Tiles = DEFAULT_TILES) -> tuple[Tensor, ...]:
    """``(loss, W)``, or ``(loss, W, W*x_hat, W*x)`` if ``products``, for same-shape (B, C, H, W) batches."""
    x_hat, x = x_hat.contiguous(), x.contiguous()
    batch, channels, height, width = x.shape
    m, m_partial = _magnitude(x, tiles)
    w = torch.empty((batch, 1, height, width), device=x.device, dtype=x.dtype)
    w_x_hat = torch.empty_like(x_hat) if products else x  # x: never written when not products
    w_x = torch.empty_like(x) if products else x
    grid = (triton.cdiv(width, tiles.pixel_cols), triton.cdiv(height, tiles.pixel_rows), batch)
    l1_partial = torch.empty(grid[0] * grid[1] * grid[2], device=x.device, dtype=torch.float32)
    wrap_triton(_weight_l1_kernel)[grid](
        x_hat, x, m, m_partial, w, w_x_hat, w_x, l1_partial, channels, height, width, m.shape[1], m.shape[2],
        m_partial.shape[1], TAU, EPS, ROWS=tiles.pixel_rows, COLS=tiles.pixel_cols, PARTIALS=tiles.partials,
        L1=True, PRODUCTS=products, num_warps=tiles.num_warps,
    )
    loss = torch.empty((), device=x.device, dtype=x_hat.dtype)
    wrap_triton(_mean_kernel)[(1,)](l1_partial, loss, l1_partial.numel(), x.numel(), PARTIALS=tiles.partials)
    return (loss, w, w_x_hat, w_x) if products else (loss, w)


def backward(grad_loss: Tensor, grad_w_x_hat: Tensor | None, x_hat: Tensor, x: Tensor, w: Tensor,
             tiles: Tiles = DEFAULT_TILES) -> Tensor:
    """Gradient of the loss (and of W*x_hat, if given) with respect to x_hat; contiguous, x_hat's dtype."""
    x_hat, x, w = x_hat.contiguous(), x.contiguous(), w.contiguous()
    products = grad_w_x_hat is not None
    grad_w_x_hat = grad_w_x_hat.contiguous() if products else x_hat  # not read when not products
    batch, channels, height, width = x_hat.shape
    grad_x_hat = torch.empty_like(x_hat)
    grid = (triton.cdiv(height * width, tiles.pixels), batch)
    wrap_triton(_backward_kernel)[grid](
        grad_loss, grad_w_x_hat, x_hat, x, w, grad_x_hat, channels, height * width, x_hat.numel(),
        BLOCK=tiles.pixels, PRODUCTS=products, num_warps=tiles.num_warps,
    )
    return grad_x_hat
