"""LR reconstructor R: (HR, degradation embedding) -> LR (paper Sec. 3.1, ``I_LR_hat = R(I_HR, e)``).

R runs forward and backward in every adaptation step, so it works entirely at LR resolution: a lossless
pixel-unshuffle moves the HR there as ``3 * scale**2`` channels, and a few modulated convolutions predict a
correction to the area-downsampled HR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lway_engine.reconstruction.colour_fit import fit_colour
from lway_engine.reconstruction.fused import PackedConv, conv3x3_block, op_available, op_verified
from lway_engine.reconstruction.layers import ConvAct
from lway_engine.reconstruction.modulated import ModulatedConv2d

_RESIDUAL_GAIN = math.sqrt(0.5)  # keeps x + f(x) at the scale of x (as StyleGAN2's residual blocks do)


@dataclass(frozen=True)
class Styles:
    """What R's forward needs from ``e`` (B, embed_dim), from :meth:`Reconstructor.prepare`: per block, the input
    styles (B, width) and output demodulation (B, width); and, for the fused path, R's convolutions packed once.

    During adaptation ``e`` and R are fixed, so this is computed once for every image and indexed per step.
    """

    style: tuple[Tensor, ...]
    demod: tuple[Tensor, ...]
    convs: tuple[PackedConv, ...] | None = None  # conv_in, blocks..., conv_out; None: the PyTorch path
    colour: Tensor | None = None  # (B, COLOUR_PARAMS) for R's colour head; None: R has none
    blur: Tensor | None = None  # (B, K + s - 1, K + s - 1): R's blur kernel folded with the area downsample

    def select(self, index: Tensor) -> Styles:
        """The styles of the embeddings at ``index`` (e.g. the source image of each crop in a batch)."""
        return replace(self, style=tuple(s[index] for s in self.style), demod=tuple(d[index] for d in self.demod),
                       colour=None if self.colour is None else self.colour[index],
                       blur=None if self.blur is None else self.blur[index])


COLOUR_PARAMS = 9 + 3 + 6  # 3x3 matrix (minus identity), offset, two curve coefficients per channel


def apply_colour(x: Tensor, params: Tensor) -> Tensor:
    """R's global tone and colour map ``y = (I + A) x + b + c1 x(1-x) + c2 x(1-x)(2x-1)`` per pixel, channels
    mixed by A; ``params`` (B, COLOUR_PARAMS) from the embedding, all zero = the identity.

    Why: fading, colour casts, white-balance and exposure errors change every pixel's colour by one smooth map per
    image. The modulated blocks are demodulated, so they cannot scale their output by the embedding; this head
    can, and it applies to R's whole output so the detail is scaled with the tones as the degradation scales it.
    """
    matrix, offset, curve = params[:, :9].view(-1, 3, 3), params[:, 9:12], params[:, 12:].view(-1, 3, 2)
    bump = x * (1 - x)
    mixed = x + torch.einsum("bij,bjhw->bihw", matrix, x)
    return mixed + offset[:, :, None, None] + curve[:, :, 0, None, None] * bump \
        + curve[:, :, 1, None, None] * bump * (2 * x - 1)


BLUR_COMPONENTS = 32  # the mean departure from a delta and 31 principal shapes: 95% of the optics kernels' variance
BLUR_SAMPLES = 2000


def blur_basis(size: int, components: int = BLUR_COMPONENTS) -> Tensor:
    """(up to components, size**2) zero-sum shapes spanning the optics stage's blur kernels minus a delta: their mean,
    then their principal components (seeded draws of ``degradations.broad.optics_kernels``).

    Why a basis: a free K x K kernel from the embedding learned noise (1,250 warm-started steps: off-centre
    weights of both signs summing to |1.6|-|2.0| on every image, and PSNR 0.1-0.4 dB lower than without it); in
    the span of real blur shapes, each coefficient moves the kernel towards a defocus, Gaussian or motion blur."""
    from lway_engine.degradations.broad import optics_kernels

    samples = torch.from_numpy(optics_kernels(BLUR_SAMPLES, size)).reshape(BLUR_SAMPLES, -1)
    samples[:, size * size // 2] -= 1  # minus the delta at the centre
    mean = samples.mean(0)
    _, _, principal = torch.linalg.svd(samples - mean, full_matrices=False)
    basis = torch.cat([mean[None], principal[: components - 1]])
    return (basis - basis.mean(1, keepdim=True)).float()


def hr_kernels(delta: Tensor, size: int) -> Tensor:
    """Per image, the (B, size, size) HR blur kernel ``identity + delta - mean(delta)`` (``delta`` (B, size**2)
    from the embedding; its sum stays 1, so the blur keeps the mean colour and the colour head alone sets gains)."""
    delta = (delta - delta.mean(dim=1, keepdim=True)).view(-1, size, size)
    return delta + F.pad(torch.ones(1, 1, dtype=delta.dtype, device=delta.device), [size // 2] * 4)


def blur_kernels(delta: Tensor, size: int, scale: int) -> Tensor:
    """:func:`hr_kernels` folded with the ``scale`` x ``scale`` area downsample into one (B, size + scale - 1, ...)
    kernel for a stride-``scale`` conv."""
    kernel = hr_kernels(delta, size)[:, None]
    box = torch.full((1, 1, scale, scale), 1 / scale**2, dtype=delta.dtype, device=delta.device)
    return F.conv2d(F.pad(kernel, [scale - 1] * 4), box)[:, 0]


def blur_downsample(hr: Tensor, kernels: Tensor, scale: int) -> Tensor:
    """``hr`` (B, 3, H, W) blurred by each image's kernel (from :func:`blur_kernels`, batch B or 1) and area-
    downsampled by ``scale``, in one grouped strided convolution (about 3 (K + s - 1)^2 MACs per LR pixel).

    Why a kernel rather than more convolutions: defocus and motion blur are one kernel per image at HR scale; the
    modulated blocks must approximate it through demodulated 3x3 convolutions, and after 14,000 steps R was still
    7 dB short of the exact deterministic part on the motion family. Padding reflects the image, as optics do not
    darken the border. A delta kernel gives exactly the area downsample."""
    batch, channels, height, width = hr.shape
    size = kernels.shape[-1]
    pad = (size - scale) // 2
    weight = kernels.expand(batch, -1, -1).repeat_interleave(channels, dim=0)[:, None].to(hr.dtype)
    mode = "reflect" if pad < min(height, width) else "replicate"
    x = F.pad(hr, [pad, size - scale - pad] * 2, mode=mode).reshape(1, batch * channels, height + size - scale,
                                                                     width + size - scale)
    return F.conv2d(x, weight, stride=scale, groups=batch * channels).view(batch, channels, height // scale,
                                                                           width // scale)


class Reconstructor(nn.Module):
    """pixel-unshuffle -> conv -> ``num_blocks`` residual modulated convs -> conv to RGB, + area-downsampled HR
    (with ``blur_kernel`` K: the HR blurred by a K x K kernel from ``e``, in the span of ``blur_basis``, then
    area-downsampled).

    Each residual block is a single modulated 3x3 convolution: two per block would push the cost past the
    adaptation budget (< 0.3M MACs per LR pixel), and depth mainly buys receptive field, which the unshuffle
    already multiplies by ``scale``. ``e`` conditions R only through the blocks' modulation. The output conv starts
    at zero, so an untrained R is exactly an area downsample and training only learns the departure from it.

    Frozen (no parameter requires grad), R runs through the C++ op ``lway::conv3x3_fused`` (csrc/conv3x3.cpp)
    unless ``use_extension`` is False, the op has no kernel for the device or failed its first-use self-check
    there (``fused.op_verified``), or autocast is on (bf16 runs the PyTorch path); the result is the same within
    float32 rounding. Training R always uses the PyTorch path, which also gives the weights' gradients.
    """

    def __init__(self, scale: int = 4, embed_dim: int = 512, width: int = 64, num_blocks: int = 4,
                 colour_head: bool = False, blur_kernel: int = 0) -> None:
        super().__init__()
        self.scale = scale
        self.use_extension = True
        self.colour_fit = True  # with a reference LR, fit the colour map to it (colour_fit.py) rather than predict it
        self.conv_in = ConvAct(3 * scale**2, width)
        self.blocks = nn.ModuleList(ModulatedConv2d(width, width, embed_dim) for _ in range(num_blocks))
        self.conv_out = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.colour = nn.Linear(embed_dim, COLOUR_PARAMS) if colour_head else None
        if self.colour is not None:  # starts as the identity map, like the zero output conv
            nn.init.zeros_(self.colour.weight)
            nn.init.zeros_(self.colour.bias)
        self.blur_size = blur_kernel
        self.blur = None
        if blur_kernel:  # starts as a delta kernel: the area downsample
            self.register_buffer("blur_basis", blur_basis(blur_kernel))  # saved with the weights it was trained on
            self.blur = nn.Linear(embed_dim, self.blur_basis.shape[0])
            nn.init.zeros_(self.blur.weight)
            nn.init.zeros_(self.blur.bias)

    def _fused(self) -> bool:
        frozen = not any(p.requires_grad for p in self.parameters())  # the op gives no gradients to R's weights
        return self.use_extension and frozen

    def prepare(self, e: Tensor) -> Styles:
        """What depends on ``e`` (B, embed_dim) only: compute once per image during adaptation, pass as ``styles``."""
        style, demod = zip(*(block.modulation(e) for block in self.blocks))
        convs = None
        if self._fused() and op_available(e.device) and op_verified(e.device):
            layers = [self.conv_in, *self.blocks, self.conv_out]
            convs = tuple(PackedConv.of(layer.weight, layer.bias) for layer in layers)
        colour = None if self.colour is None else self.colour(e)
        blur = None if self.blur is None else blur_kernels(self.blur(e) @ self.blur_basis, self.blur_size, self.scale)
        return Styles(tuple(style), tuple(demod), convs, colour, blur)

    def hr_kernel(self, e: Tensor) -> Tensor:
        """(B, K, K): the HR blur kernel R applies for each embedding, in correlation form, before the area
        downsample (what ``pretrain --kernel-weight`` supervises); R needs a blur head."""
        if self.blur is None:
            raise ValueError("this reconstructor has no blur head (blur_kernel 0), so it predicts no kernel")
        return hr_kernels(self.blur(e) @ self.blur_basis, self.blur_size)

    def forward(self, hr: Tensor, e: Tensor | None = None, styles: Styles | None = None,
                reference: Tensor | None = None) -> Tensor:
        """``hr`` (B, 3, H, W), H and W multiples of ``scale``, and ``e`` or ``styles`` -> LR (B, 3, H/s, W/s).

        ``e`` (or the styles prepared from it) may have batch 1, shared by every image, or batch B. ``reference``:
        the LR the output will be compared with; where given (and ``colour_fit`` is on) the global colour map is
        fitted to it instead of taken from the colour head.
        """
        if (e is None) == (styles is None):
            raise ValueError("pass exactly one of e (an embedding) or styles (from prepare(e))")
        if hr.shape[-2] % self.scale or hr.shape[-1] % self.scale:
            raise ValueError(f"HR size {hr.shape[-2]}x{hr.shape[-1]} is not a multiple of the scale {self.scale}")
        if styles is None:
            styles = self.prepare(e)
        if styles.style[0].shape[0] not in (1, hr.shape[0]):
            raise ValueError(f"embedding batch {styles.style[0].shape[0]} does not match image batch {hr.shape[0]} "
                             "(nor is it 1)")
        x = F.pixel_unshuffle(hr, self.scale)
        # Under autocast (bf16) oneDNN's bf16 convolutions beat the float32 op: R's forward+backward at batch 2 x
        # 256 px took 0.031 s against the op's 0.052 s on an AMX Xeon.
        if styles.convs is not None and self._fused() and not torch.is_autocast_enabled(hr.device.type):
            first, *blocks, last = styles.convs
            x = conv3x3_block(x, first)
            for conv, style, demod in zip(blocks, styles.style, styles.demod, strict=True):
                x = conv3x3_block(x, conv, style, demod, residual=x, res_gain=_RESIDUAL_GAIN)
            out = conv3x3_block(x, last, act=False)
        else:
            x = self.conv_in(x)
            for block, style, demod in zip(self.blocks, styles.style, styles.demod, strict=True):
                x = (x + block(x, style, demod)) * _RESIDUAL_GAIN
            out = self.conv_out(x)
        base = F.avg_pool2d(hr, self.scale) if styles.blur is None else blur_downsample(hr, styles.blur, self.scale)
        lr = base + out
        if reference is not None and self.colour_fit:
            return fit_colour(lr, reference)
        return lr if styles.colour is None else apply_colour(lr, styles.colour)
