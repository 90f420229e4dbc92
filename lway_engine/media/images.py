"""Image files in and out, keeping what a user expects preserved: greyscale stays greyscale, 16-bit stays 16-bit,
alpha is carried separately (the SR network only sees colour).

Pillow reads and writes 8-bit images and 16-bit greyscale; 16-bit colour PNGs (which Pillow silently reduces to
8 bits) go through pypng, and TIFFs through tifffile. Corrupt or truncated files raise ``ImageReadError``.

Photos as cameras and phones store them: the EXIF orientation is applied on read (a portrait phone JPEG is stored
sideways with a tag saying so), and the colour profile (ICC) and EXIF (camera, date; orientation reset to normal)
travel with the pixels to the output wherever its format can hold them: ICC in PNG, JPEG, WebP and TIFF, EXIF in
PNG, JPEG and WebP.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lway_engine.atomic import atomic_write

READ_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as Pillow's convert("L"); the one definition
LUMA = np.array(LUMA_WEIGHTS, dtype=np.float32)


class ImageReadError(ValueError):
    """The file is not a readable image (corrupt, truncated, unsupported pixel format)."""


EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Metadata:
    """What a file says about its pixels beyond their values: the ICC colour profile and the EXIF block."""

    icc: bytes | None = None
    exif: bytes | None = None  # orientation already applied to the pixels and reset to 1 (normal)


@dataclass(frozen=True)
class Image:
    """Pixels as float32 (H, W, C) in [0, 1] with C in {1, 3}; alpha as float32 (H, W) or None."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int  # 8 or 16
    metadata: Metadata = Metadata()

    @property
    def grey(self) -> bool:
        return self.pixels.shape[2] == 1

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.pixels.shape[0], self.pixels.shape[1]

    def rgb(self) -> np.ndarray:
        """Colour pixels for an RGB network (greyscale replicated)."""
        return np.repeat(self.pixels, 3, axis=2) if self.grey else self.pixels

    def with_rgb(self, rgb: np.ndarray, alpha: np.ndarray | None) -> Image:
        """Same kind of image (grey/colour, bit depth) holding new RGB pixels, e.g. a network's output."""
        pixels = (rgb @ LUMA)[..., None] if self.grey else rgb
        return replace(self, pixels=np.clip(pixels, 0, 1).astype(np.float32),
                       alpha=None if alpha is None else np.clip(alpha, 0, 1).astype(np.float32))


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, C) float array -> (1, C, H, W) float tensor, the layout networks and LPIPS take."""
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def to_array(tensor: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor (any device/dtype) -> (H, W, C) float32 array."""
    return tensor[0].float().cpu().numpy().transpose(1, 2, 0)


def _split(array: np.ndarray, bit_depth: int, metadata: Metadata = Metadata()) -> Image:
    """(H, W[, C]) integer array with 1-4 channels -> Image."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"unsupported pixel layout {array.shape}")
    return from_planes(array.astype(np.float32) / float(2**bit_depth - 1), bit_depth, metadata)


def from_planes(planes: np.ndarray, bit_depth: int, metadata: Metadata = Metadata()) -> Image:
    """(H, W, 1-4) float32 planes in [0, 1] (grey, grey+alpha, RGB, RGBA) -> Image, alpha split off."""
    colour = 1 if planes.shape[2] in (1, 2) else 3
    alpha = planes[..., colour] if planes.shape[2] in (2, 4) else None
    return Image(np.ascontiguousarray(planes[..., :colour]), alpha, bit_depth, metadata)


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None when the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return head[24], head[25]


def _png_metadata(encoded: bytes) -> Metadata:
    """ICC (iCCP chunk) and EXIF (eXIf chunk) of a PNG file's bytes, through pypng."""
    import zlib

    import png

    icc = exif = None
    for kind, data in png.Reader(bytes=encoded).chunks():
        if kind == b"iCCP":
            icc = zlib.decompress(data[data.index(b"\0") + 2 :])  # name, NUL, compression method, zlib stream
        elif kind == b"eXIf":
            exif = data
    return Metadata(icc=icc, exif=exif)


def _png_with_metadata(encoded: bytes, metadata: Metadata) -> bytes:
    """A PNG file's bytes with iCCP / eXIf chunks inserted after IHDR (pypng writes neither)."""
    import io
    import zlib

    import png

    extra = ([(b"iCCP", b"ICC profile\0\0" + zlib.compress(metadata.icc))] if metadata.icc else []) + (
        [(b"eXIf", metadata.exif)] if metadata.exif else [])
    if not extra:
        return encoded
    chunks = list(png.Reader(bytes=encoded).chunks())
    out = io.BytesIO()
    png.write_chunks(out, [chunks[0], *extra, *chunks[1:]])
    return out.getvalue()


def _read_png16(path: Path) -> Image:
    """Pixels and metadata from one read of the file (pypng's readers would each open it again)."""
    import png

    encoded = path.read_bytes()
    width, height, rows, info = png.Reader(bytes=encoded).asDirect()
    planes = info["planes"]
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, planes)
    return _split(array, 16, _png_metadata(encoded))


def _read_tiff(path: Path) -> Image:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        array = tif.asarray()
        icc = tif.pages[0].tags.get(34675)  # InterColorProfile
        metadata = Metadata(icc=bytes(icc.value) if icc is not None else None)
    if array.dtype == np.uint8:
        return _split(array, 8, metadata)
    if array.dtype == np.uint16:
        return _split(array, 16, metadata)
    raise ImageReadError(f"unsupported TIFF sample type {array.dtype}; expected 8- or 16-bit integers")


def _upright(im: object) -> tuple[object, Metadata]:
    """The image turned as its EXIF orientation says (all 8 values), and its ICC profile and EXIF (orientation 1)."""
    from PIL import ImageOps

    exif = im.getexif()
    icc = im.info.get("icc_profile") or None
    if exif.get(EXIF_ORIENTATION, 1) != 1:
        im = ImageOps.exif_transpose(im)
        exif[EXIF_ORIENTATION] = 1
    return im, Metadata(icc=icc, exif=exif.tobytes() if len(exif) else None)


def _read_pillow(path: Path) -> Image:
    from PIL import Image as PILImage

    with PILImage.open(path) as opened:
        opened.load()
        im, metadata = _upright(opened)
        if im.mode in ("I;16", "I;16B", "I;16L"):
            return _split(np.asarray(im.convert("I"), dtype=np.uint16), 16, metadata)
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode == "1":
            im = im.convert("L")
        elif im.mode == "PA":
            im = im.convert("RGBA")
        elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
        if im.mode not in ("L", "LA", "RGB", "RGBA"):
            raise ImageReadError(f"unsupported pixel format {im.mode}")
        return _split(np.asarray(im), 8, metadata)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) as stored, from the header alone where Pillow reads it (a large set's sizes without decoding
    it); otherwise from ``read_image``, which reads what Pillow cannot and raises ``ImageReadError`` saying why."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as opened:
            width, height = opened.size
    except Exception:  # noqa: BLE001 (Pillow raises many types; read_image names the cause)
        return read_image(path).size
    return height, width


ImageLike = Any  # an Image, a path, a NumPy array (H, W[, C]; uint8, uint16 or float in [0, 1]) or a PIL image
_PIL_INTEGER_16 = ("I;16", "I;16B", "I;16L", "I")  # how Pillow opens 16-bit grey PNGs and TIFFs


def _checked(image: Image) -> Image:
    """``image`` if it is what its docstring says; a ``ValueError`` naming the fault otherwise (an Image built by
    hand from 0-255 values would upscale to white without a word)."""
    pixels = image.pixels
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"Image.pixels must be an (H, W, 1) or (H, W, 3) array, got "
                         f"{getattr(pixels, 'shape', type(pixels).__name__)}")
    if image.bit_depth not in (8, 16):
        raise ValueError(f"Image.bit_depth must be 8 or 16, got {image.bit_depth}")
    for name, plane in (("pixels", pixels), ("alpha", image.alpha)):
        if plane is not None and plane.size and not (np.isfinite(plane).all() and plane.min() >= 0
                                                     and plane.max() <= 1):
            raise ValueError(f"Image.{name} must be finite floats in [0, 1] (divide 8-bit values by 255)")
    return image


def as_image(item: ImageLike) -> Image:
    """An input as an ``Image``: paths are read (EXIF orientation applied), arrays and PIL images converted (16-bit
    and float PIL modes keep their values), and every result checked: NaN or out-of-range values raise."""
    if isinstance(item, Image):
        return _checked(item)
    if isinstance(item, (str, Path)):
        return read_image(item)
    if hasattr(item, "getexif") and hasattr(item, "convert"):  # a PIL image
        from PIL import ImageOps

        upright = ImageOps.exif_transpose(item)
        if upright.mode in _PIL_INTEGER_16:
            values = np.asarray(upright, dtype=np.int64)
            if values.size and (values.min() < 0 or values.max() > 65535):
                raise ValueError(f"PIL mode {upright.mode} image with values outside 0-65535")
            item = values.astype(np.uint16)
        elif upright.mode == "F":
            item = np.asarray(upright, dtype=np.float32)  # checked for [0, 1] below
        else:
            item = np.asarray(upright.convert("RGB"))
    array = np.asarray(item)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {array.shape}")
    if array.dtype in (np.uint8, np.uint16):
        depth = 8 if array.dtype == np.uint8 else 16
        return from_planes(array.astype(np.float32) / (2**depth - 1), depth)
    array = array.astype(np.float32)
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
        raise ValueError("float images must hold finite values in [0, 1]")
    return from_planes(array, 8)


def read_image(path: str | Path) -> Image:
    """Read a PNG/JPEG/WebP/TIFF file, raising ``ImageReadError`` with the reason when it cannot."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            image = _read_tiff(path)
        elif (_png_header(path) or (8, 0))[0] == 16:
            image = _read_png16(path)
        else:
            image = _read_pillow(path)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise
    except Exception as exc:  # Pillow/pypng/tifffile raise many types for corrupt and truncated data
        raise ImageReadError(f"{path.name}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if min(image.size) == 0:
        raise ImageReadError(f"{path.name}: empty image")
    return image


def _to_integers(image: Image, bit_depth: int) -> np.ndarray:
    """Image -> (H, W, C) uint8/uint16 array including alpha, rounded to nearest."""
    planes = image.pixels if image.alpha is None else np.concatenate([image.pixels, image.alpha[..., None]], 2)
    top = 2**bit_depth - 1
    return np.rint(np.clip(planes, 0, 1) * top).astype(np.uint16 if bit_depth == 16 else np.uint8)


def write_image(path: str | Path, image: Image, jpeg_quality: int = 95) -> None:
    """Write atomically (temp file + rename) so an interrupted run never leaves a truncated output.

    16-bit images keep 16 bits in PNG and TIFF; JPEG and WebP are 8-bit formats, and JPEG cannot hold alpha.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg") and image.alpha is not None:
        raise ValueError(f"{path.name}: JPEG cannot store the alpha channel; write PNG, WebP or TIFF instead")
    bit_depth = image.bit_depth if suffix in (".png", ".tif", ".tiff") else 8
    array = _to_integers(image, bit_depth)

    metadata = image.metadata

    def write(tmp: Path) -> None:
        if suffix in (".tif", ".tiff"):
            import tifffile

            planes = array.shape[2]  # said outright: left to guess, tifffile stores grey + alpha as H pages of W x 2
            tifffile.imwrite(tmp, array if planes > 1 else array[..., 0], iccprofile=metadata.icc,
                             photometric="rgb" if planes >= 3 else "minisblack",
                             planarconfig="contig" if planes > 1 else None,
                             extrasamples=["unassalpha"] if planes in (2, 4) else None)
        elif bit_depth == 16:
            import io

            import png

            height, width, planes = array.shape
            writer = png.Writer(width, height, greyscale=planes in (1, 2), alpha=planes in (2, 4), bitdepth=16)
            encoded = io.BytesIO()
            writer.write(encoded, array.reshape(height, width * planes))
            tmp.write_bytes(_png_with_metadata(encoded.getvalue(), metadata))
        else:
            from PIL import Image as PILImage

            pil = PILImage.fromarray(array if array.shape[2] > 1 else array[..., 0])
            options: dict = {"quality": jpeg_quality} if suffix in (".jpg", ".jpeg", ".webp") else {}
            if metadata.icc:
                options["icc_profile"] = metadata.icc
            if metadata.exif:
                options["exif"] = metadata.exif
            pil.save(tmp, format={".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix, suffix[1:].upper()), **options)

    atomic_write(path, write, suffix=suffix)
