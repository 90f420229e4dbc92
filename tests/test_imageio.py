"""Image files: grey, alpha and 16-bit survive a round trip; damaged files raise ImageReadError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lway_engine.imageio import Image, ImageReadError, read_image, write_image

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
    with pytest.raises(ImageReadError):
        read_image(path)
