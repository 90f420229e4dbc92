"""Image files: grey, alpha and 16-bit survive a round trip; damaged files raise ImageReadError."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

from lway_engine.media.images import Image, ImageReadError, Metadata, image_size, read_image, write_image

RNG = np.random.default_rng()


def _random_image(channels: int, alpha: bool, bit_depth: int, size: tuple[int, int] = (17, 23)) -> Image:
    top = 2**bit_depth - 1
    pixels = RNG.integers(0, top + 1, size=(*size, channels)) / top
    a = RNG.integers(0, top + 1, size=size) / top if alpha else None
    return Image(pixels.astype(np.float32), None if a is None else a.astype(np.float32), bit_depth)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels, alpha, bit_depth", [
    (3, False, 8), (1, False, 8), (3, True, 8), (1, True, 8), (3, False, 16), (3, True, 16), (1, False, 16),
    (1, True, 16),
])
def test_lossless_round_trip(tmp_path: Path, suffix: str, channels: int, alpha: bool, bit_depth: int) -> None:
    image = _random_image(channels, alpha, bit_depth)
    write_image(tmp_path / f"x{suffix}", image)
    back = read_image(tmp_path / f"x{suffix}")
    assert back.bit_depth == bit_depth and back.grey == (channels == 1)
    assert np.array_equal(back.pixels, image.pixels)
    assert (back.alpha is None) == (not alpha)
    if alpha:
        assert np.array_equal(back.alpha, image.alpha)
    if suffix == ".tif":  # one page of the image's size, as other software reads it, not H pages of W x planes
        import tifffile

        with tifffile.TiffFile(tmp_path / "x.tif") as tif:
            assert len(tif.pages) == 1 and tif.pages[0].shape[:2] == image.size


def test_real_16bit_rgba_png_keeps_16_bits(shared_file) -> None:
    image = read_image(shared_file("RealESRGAN_inputs/tree_alpha_16bit.png"))
    assert image.bit_depth == 16 and image.alpha is not None and not image.grey
    codes = np.rint(image.pixels * 65535).astype(np.int64)
    assert np.any(codes % 257 != 0)  # genuinely 16-bit values, not 8-bit ones scaled up


def test_jpeg_and_webp_are_8bit(tmp_path: Path) -> None:
    image = _random_image(3, False, 16)
    write_image(tmp_path / "x.webp", image)
    assert read_image(tmp_path / "x.webp").bit_depth == 8
    with pytest.raises(ValueError, match="alpha"):
        write_image(tmp_path / "x.jpg", _random_image(3, True, 8))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated_files_raise(tmp_path: Path, suffix: str) -> None:
    good = tmp_path / f"good{suffix}"
    write_image(good, _random_image(3, False, 8, (64, 64)))
    data = good.read_bytes()
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError):
        read_image(bad)


def test_truncated_16bit_png_raises(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    write_image(good, _random_image(3, True, 16, (64, 64)))
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(ImageReadError):
        read_image(bad)


@pytest.mark.parametrize("payload", [b"", b"not an image at all"])
def test_non_images_raise(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(payload)
    for read in (read_image, image_size):  # image_size hands what Pillow cannot open to read_image, which says why
        with pytest.raises(ImageReadError):
            read(path)


@pytest.mark.parametrize("suffix, bit_depth", [(".png", 8), (".png", 16), (".tif", 16), (".jpg", 8), (".webp", 8)])
def test_image_size_reads_height_and_width_from_the_header(tmp_path: Path, suffix: str, bit_depth: int) -> None:
    path = tmp_path / f"x{suffix}"
    write_image(path, _random_image(3, False, bit_depth, (17, 23)))
    assert image_size(path) == (17, 23) == read_image(path).size


# EXIF orientation k: how the stored pixels must be transformed to show the scene upright (the EXIF definition).
_UPRIGHT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
            7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}


def _scene() -> np.ndarray:
    """A 24 x 40 image no flip or rotation maps onto itself: smooth ramps plus a bright corner block."""
    rows, cols = np.mgrid[0:24, 0:40].astype(np.float32)
    scene = np.stack([rows / 23, cols / 39, 0.5 + 0.0 * rows], axis=2)
    scene[:6, :8] = 1.0
    return scene


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_on_read_and_reset_on_write(tmp_path: Path, orientation: int) -> None:
    from PIL import Image as PILImage
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    scene = _scene()
    # Store pixels that the tag turns back into the scene: find the stored array whose upright view is the scene.
    stored = next(c for c in (_UPRIGHT[k](scene) for k in range(1, 9))
                  if _UPRIGHT[orientation](c).shape == scene.shape and np.array_equal(_UPRIGHT[orientation](c), scene))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "lway-test-camera"  # Make: must survive to the output
    path = tmp_path / f"o{orientation}.jpg"
    PILImage.fromarray((stored * 255).round().astype(np.uint8)).save(path, quality=100, exif=exif.tobytes(),
                                                                      icc_profile=icc)
    image = read_image(path)
    assert image.metadata.icc == icc
    assert image.size == scene.shape[:2]
    assert np.abs(image.pixels - scene).mean() < 0.02, orientation  # JPEG q100: small error, not a wrong turn
    write_image(tmp_path / "out.jpg", image)
    with PILImage.open(tmp_path / "out.jpg") as out:
        written = out.getexif()
        assert written.get(0x0112, 1) == 1 and written.get(0x010F) == "lway-test-camera"
        assert out.size == (40, 24) and out.info.get("icc_profile") == icc


@pytest.mark.parametrize(("suffix", "bit_depth"), [(".png", 8), (".png", 16), (".jpg", 8), (".webp", 8),
                                                   (".tif", 8), (".tif", 16)])
def test_icc_profile_and_exif_travel_to_the_output(tmp_path: Path, suffix: str, bit_depth: int) -> None:
    from PIL import Image as PILImage
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = PILImage.Exif()
    exif[0x010F] = "lway-test-camera"
    source = tmp_path / "in.png"
    PILImage.fromarray((_scene() * 255).astype(np.uint8)).save(source, icc_profile=icc, exif=exif.tobytes())
    image = read_image(source)
    assert image.metadata.icc == icc and image.metadata.exif is not None
    image = Image(image.pixels, None, bit_depth, image.metadata)
    write_image(tmp_path / f"out{suffix}", image)
    back = read_image(tmp_path / f"out{suffix}")
    assert back.metadata.icc == icc  # every output format here holds an ICC profile
    if suffix != ".tif":  # TIFF keeps the profile; EXIF in TIFF needs its own IFD, which we do not write
        parsed = PILImage.Exif()
        parsed.load(back.metadata.exif)
        assert parsed.get(0x010F) == "lway-test-camera"



@functools.cache
def _open_counter() -> dict[str, int]:
    """path -> times opened, for the paths a test puts in; one audit hook for the session (hooks stay installed)."""
    opened: dict[str, int] = {}

    def count(event: str, args: tuple) -> None:
        if event == "open" and args[0] in opened:
            opened[args[0]] += 1

    sys.addaudithook(count)
    return opened


def test_16bit_png_is_read_once_with_its_icc_profile_and_exif(tmp_path: Path) -> None:
    from PIL import Image as PILImage
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = PILImage.Exif()
    exif[0x010F] = "lway-test-camera"
    image = _random_image(3, True, 16, (20, 30))
    path = tmp_path / "deep.png"
    write_image(path, Image(image.pixels, image.alpha, 16, Metadata(icc=icc, exif=exif.tobytes())))
    opened = _open_counter()
    opened[str(path)] = 0
    try:
        back = read_image(path)
    finally:
        opens = opened.pop(str(path))
    assert opens == 2  # the 26-byte format sniff, then the file once for pixels and metadata alike
    assert back.bit_depth == 16 and np.array_equal(back.pixels, image.pixels)
    assert np.array_equal(back.alpha, image.alpha)
    assert back.metadata == Metadata(icc=icc, exif=exif.tobytes())
