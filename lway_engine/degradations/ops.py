"""Image operations used by the degradation pipelines, on float32 tensors (C, H, W) or (N, C, H, W) in [0, 1].

Every random op takes an integer ``seed`` and draws from ``numpy.random.default_rng(seed)``: NumPy's generators
give the same stream on every platform, so a recorded plan reproduces bit for bit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lway_engine.degradations import kernels, resample
from lway_engine.media.images import LUMA_WEIGHTS

LUMA = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32)
RESIZE_MODES = ("area", "bilinear", "bicubic")  # what the BSRGAN / Real-ESRGAN pipelines draw from
# Lanczos-3 and true nearest-neighbour (``resample``): what editors, browsers and camera firmware also use.
ALL_RESIZE_MODES = (*RESIZE_MODES, "lanczos", "nearest")


def batched(img: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(C, H, W) -> (1, C, H, W) and whether to squeeze back."""
    if img.ndim == 3:
        return img.unsqueeze(0), True
    if img.ndim == 4:
        return img, False
    raise ValueError(f"expected (C, H, W) or (N, C, H, W), got {tuple(img.shape)}")


def unbatched(img: torch.Tensor, squeeze: bool) -> torch.Tensor:
    return img.squeeze(0) if squeeze else img


def clip(img: torch.Tensor) -> torch.Tensor:
    return img.clamp(0.0, 1.0)


def to_8bit(img: torch.Tensor) -> torch.Tensor:
    """Clipped and rounded to the 256 levels a saved 8-bit file holds, still as floats in [0, 1]."""
    return torch.round(img.clamp(0, 1) * 255) / 255


def luma(img: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) -> (…, 1, H, W) BT.601 luma."""
    return torch.einsum("...chw,c->...hw", img, LUMA.to(img.dtype)).unsqueeze(-3)


def reflect_pad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """``F.pad``'s (left, right, top, bottom) by reflection; replicate where the image is too small to reflect (tiny
    intermediates, and a small HR's LR: reflection needs each pad below its side)."""
    if not any(pads):
        return x
    left, right, top, bottom = pads
    fits = max(left, right) < x.shape[-1] and max(top, bottom) < x.shape[-2]
    return F.pad(x, pads, mode="reflect" if fits else "replicate")


def filter2d(img: torch.Tensor, kernel: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Convolve every channel with the same odd-sized kernel (depthwise conv2d, reflect padding)."""
    x, squeeze = batched(img)
    k = torch.as_tensor(np.asarray(kernel, dtype=np.float32) if isinstance(kernel, np.ndarray) else kernel,
                        dtype=x.dtype)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise ValueError(f"kernel must be square and odd-sized, got {tuple(k.shape)}")
    channels = x.shape[1]
    weight = k.flip(0, 1).expand(channels, 1, *k.shape).contiguous()  # flip: true convolution, not correlation
    out = F.conv2d(reflect_pad(x, (k.shape[0] // 2,) * 4), weight, groups=channels)
    return unbatched(out, squeeze)


def resize(img: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """Resize to ``size`` = (H, W); bilinear/bicubic/lanczos antialias when shrinking, nearest never does."""
    if mode not in ALL_RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; known: {', '.join(ALL_RESIZE_MODES)}")
    x, squeeze = batched(img)
    size = (int(size[0]), int(size[1]))
    if min(size) < 1:
        raise ValueError(f"resize target {size} is empty")
    if size == tuple(x.shape[-2:]):
        return img
    if mode in ("lanczos", "nearest"):
        out = resample.resize(x, size, mode)
    elif mode == "area":
        out = F.interpolate(x, size=size, mode="area")
    else:
        shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        out = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=shrinking)
    return unbatched(out, squeeze)


def subsample(img: torch.Tensor, factor: int) -> torch.Tensor:
    """Keep every ``factor``-th pixel from the top-left (decimation without prefiltering)."""
    return img[..., ::factor, ::factor]


def _normal(seed: int, shape: Sequence[int]) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(tuple(shape), dtype=np.float32))


def _noise_shape(img: torch.Tensor, grey: bool) -> tuple[int, ...]:
    return (*img.shape[:-3], 1, *img.shape[-2:]) if grey else tuple(img.shape)


def gaussian_noise(img: torch.Tensor, sigma: float, grey: bool, seed: int) -> torch.Tensor:
    """Additive white Gaussian noise of std ``sigma``; ``grey`` uses one noise plane for all channels."""
    return img + sigma * _normal(seed, _noise_shape(img, grey)).to(img.dtype)


def poisson_noise(img: torch.Tensor, scale: float, grey: bool, seed: int, peak: float = 255.0) -> torch.Tensor:
    """Shot noise as in Real-ESRGAN: (Poisson(x * peak) / peak - x) * scale, on each channel or on luma."""
    source = luma(img) if grey else img
    lam = source.clamp(0, 1).double().numpy() * peak
    counts = np.random.default_rng(seed).poisson(lam)
    noise = torch.from_numpy(counts / peak - lam / peak).to(img.dtype)
    return img + scale * noise


def srgb_to_linear(img: torch.Tensor) -> torch.Tensor:
    img = img.clamp(0, 1)
    return torch.where(img <= 0.04045, img / 12.92, ((img + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(img: torch.Tensor) -> torch.Tensor:
    img = img.clamp(0, 1)
    return torch.where(img <= 0.0031308, img * 12.92, 1.055 * img ** (1 / 2.4) - 0.055)


def sensor_noise(img: torch.Tensor, peak: float, read: float, seed: int) -> torch.Tensor:
    """Poisson-Gaussian sensor noise in linear light: photon counts with ``peak`` photons at white, plus
    Gaussian read noise of std ``read`` (linear units), per channel; converted back to sRGB.

    Unlike the training models (signal-independent Gaussian, or Poisson on sRGB values), its variance follows
    the linear signal, so shadows and highlights are affected in the way a real sensor affects them.
    """
    rng = np.random.default_rng(seed)
    linear = srgb_to_linear(img).double().numpy()
    shot = rng.poisson(linear * peak) / peak
    noisy = shot + read * rng.standard_normal(linear.shape)
    return linear_to_srgb(torch.from_numpy(noisy).to(img.dtype))


def jpeg(img: torch.Tensor, quality: int, chroma: str = "4:2:0") -> torch.Tensor:
    """JPEG round trip through Pillow at ``quality`` (1..100) and ``chroma`` subsampling ("4:2:0", Pillow's
    default and most cameras', or "4:4:4"); 8-bit in and out."""
    from PIL import Image as PILImage

    if not 1 <= int(quality) <= 100:
        raise ValueError("JPEG quality must be in 1..100")
    subsampling = {"4:4:4": 0, "4:2:0": 2}.get(chroma)
    if subsampling is None:
        raise ValueError(f"JPEG chroma must be '4:4:4' or '4:2:0', not {chroma!r}")
    x, squeeze = batched(img)
    if x.shape[1] != 3:
        raise ValueError("JPEG expects RGB images")
    outs = []
    for one in x:
        array = np.rint(one.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
        buffer = io.BytesIO()
        PILImage.fromarray(array).save(buffer, format="JPEG", quality=int(quality), subsampling=subsampling)
        buffer.seek(0)
        with PILImage.open(buffer) as decoded:
            back = np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0
        outs.append(torch.from_numpy(back).permute(2, 0, 1))
    return unbatched(torch.stack(outs).to(img.dtype), squeeze)


def _bayer_masks(height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """(3, H, W) 0/1 masks of where R, G and B are sampled in an RGGB pattern."""
    rows = torch.arange(height).view(-1, 1) % 2
    cols = torch.arange(width).view(1, -1) % 2
    red = (rows == 0) & (cols == 0)
    blue = (rows == 1) & (cols == 1)
    return torch.stack([red, ~(red | blue), blue]).to(dtype)


def bayer_mosaic(img: torch.Tensor) -> torch.Tensor:
    """RGB (…, 3, H, W) -> raw (…, 1, H, W) keeping one colour per pixel, RGGB (R at the top-left)."""
    masks = _bayer_masks(*img.shape[-2:], img.dtype)
    return (img * masks).sum(dim=-3, keepdim=True)


_GREEN = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=np.float32) / 4
_RED_BLUE = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 4


def demosaic_bilinear(raw: torch.Tensor) -> torch.Tensor:
    """Bilinear demosaic of an RGGB raw (…, 1, H, W) -> (…, 3, H, W).

    Written as normalised convolution (interpolate samples, divide by interpolated sample density) so it is the
    textbook bilinear result inside the image and still exact for flat regions at the borders.
    """
    x, squeeze = batched(raw)
    masks = _bayer_masks(*x.shape[-2:], x.dtype).unsqueeze(0)
    channels = []
    for c, k in enumerate((_RED_BLUE, _GREEN, _RED_BLUE)):
        mask = masks[:, c : c + 1]
        value = reflect_pad(x * mask, (1, 1, 1, 1))
        weight = reflect_pad(mask.expand_as(x), (1, 1, 1, 1))
        kernel = torch.from_numpy(k).to(x.dtype).view(1, 1, 3, 3)
        channels.append(F.conv2d(value, kernel) / F.conv2d(weight, kernel).clamp_min(1e-8))
    return unbatched(torch.cat(channels, dim=1), squeeze)


def bayer_round_trip(img: torch.Tensor) -> torch.Tensor:
    """What a camera without a good ISP does: sample through an RGGB mosaic and demosaic bilinearly."""
    return demosaic_bilinear(bayer_mosaic(img))


def film_grain(img: torch.Tensor, strength: float, grain_size: float, seed: int) -> torch.Tensor:
    """Spatially correlated, luminance-dependent grain.

    White noise is correlated by a disc of ``grain_size`` pixels (clumps of silver/dye), rescaled to unit std,
    mostly shared by the channels with a weaker per-channel (dye layer) part, and scaled by ``strength`` times
    an envelope that peaks in the midtones and vanishes in pure black and white, as film grain does.
    """
    x, squeeze = batched(img)
    kernel = kernels.disc(kernels.fitting_size(grain_size + 0.5), grain_size)
    gain = 1.0 / float(np.sqrt((kernel**2).sum()))  # std of disc-filtered unit white noise is sqrt(sum k^2)
    n, c, h, w = x.shape
    white = _normal(seed, (n, c + 1, h, w)).to(x.dtype)
    grain = filter2d(white, kernel) * gain
    mixed = 0.8 * grain[:, :1] + 0.6 * grain[:, 1:]  # unit variance: 0.8^2 + 0.6^2 = 1
    lum = luma(x).clamp(0, 1)
    envelope = 0.25 + 0.75 * 2 * torch.sqrt(lum * (1 - lum))
    return unbatched(x + strength * envelope * mixed, squeeze)


def colour_fade(img: torch.Tensor, contrast: float, gains: Sequence[float], lift: float) -> torch.Tensor:
    """Aged-print look: contrast reduced about mid-grey, a per-channel colour cast (gains), lifted blacks."""
    gain = torch.tensor([float(g) for g in gains], dtype=img.dtype).view(-1, 1, 1)
    flat = 0.5 + contrast * (img - 0.5)
    cast = (flat * gain).clamp(0, 1)
    return lift + (1 - lift) * cast


def tone_adjust(img: torch.Tensor, exposure: float, gamma: float, contrast: float, saturation: float) -> torch.Tensor:
    """Global tone and colour as photo editors apply them: exposure gain in linear light, a gamma on the encoded
    values, contrast about mid-grey, saturation as a blend with the luma (1 keeps each unchanged)."""
    out = linear_to_srgb(srgb_to_linear(img) * exposure).clamp(0, 1) ** gamma
    out = 0.5 + contrast * (out - 0.5)
    grey = luma(out)
    return grey + saturation * (out - grey)
