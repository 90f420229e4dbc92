"""``Upscaler``: the one class an application embeds to super-resolve images with any lway-engine artefact.

The backend follows the file: a checkpoint (.pth/.ckpt/.safetensors, or a registry name) runs in PyTorch, or in
OpenVINO where that is measured fastest (a CPU with native bf16; converted once and cached), an exported .onnx in
ONNX Runtime or OpenVINO, a .engine in TensorRT (the runtimes live in ``lway_engine.backends``).
Each backend is wrapped as the ``module`` of a
``LoadedModel``, so every one of them goes through the same ``upscale_image`` (greyscale, alpha, 16-bit) and the
same overlapping tiles (``upscale_tensor``) as ``lway-engine upscale``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lway_engine.backends import engine_model, onnx_model, openvino_installed, openvino_model
from lway_engine.backends.openvino_convert import OpenVinoConversionError, conversion_cost_note, openvino_checkpoint
from lway_engine.export.ort_winograd import RewriteReport
from lway_engine.hardware import cpu_features, inference_bf16
from lway_engine.inference.upscale import UpscaleOptions, upscale_image
from lway_engine.media.images import Image, ImageLike, as_image, read_image, write_image
from lway_engine.models import LoadedModel, load_model

if TYPE_CHECKING:
    from lway_engine.media.upscale_video import VideoJob, VideoOutcome

BACKENDS = ("auto", "pytorch", "onnxruntime", "openvino")


_NATIVE = {"onnx": "onnxruntime", "checkpoint": "pytorch"}  # each artefact's own runtime, where OpenVINO is not
_REFUSED = {"onnx": ("pytorch", "an .onnx file runs in onnxruntime or openvino, not pytorch (upscale the checkpoint "
                                "it was exported from for that)"),
            "checkpoint": ("onnxruntime", "ONNX Runtime runs .onnx files: export the checkpoint first (lway-engine "
                                          "export WEIGHTS --onnx OUT.onnx), or use backend auto, pytorch or openvino")}


def choose_backend(requested: str, device: str, artefact: str) -> str:
    """The runtime for an ``artefact`` ("onnx" or "checkpoint"): ``auto`` is OpenVINO on a CPU with native bf16
    where it is installed, measured fastest there (an .onnx 1.14x faster than PyTorch's bf16, a checkpoint,
    converted once and cached by backends/openvino_convert.py, 1.2-1.5x: bench/deploy.py), else the artefact's own
    runtime (ONNX Runtime, with its CUDA/TensorRT providers on GPUs; PyTorch)."""
    refused, why = _REFUSED[artefact]
    if requested == refused:
        raise ValueError(why)
    if requested == "openvino" and device != "cpu":
        raise ValueError("the OpenVINO backend runs on the CPU; pass device='cpu' or another backend")
    fastest = device == "cpu" and cpu_features().fast_bf16 and openvino_installed()
    return "openvino" if requested == "openvino" or requested == "auto" and fastest else _NATIVE[artefact]


class OpenVinoFallbackWarning(UserWarning):
    """``backend="auto"`` wanted OpenVINO for a checkpoint that it cannot convert; PyTorch runs it."""


class Upscaler:
    """Super-resolve images with a checkpoint, an ONNX file or a TensorRT engine, chosen by the file's suffix.

    ``tile``/``tile_pad`` as in ``lway-engine upscale`` (0 runs images whole). ``device`` is ``cpu``, ``cuda`` or
    ``cuda:N``; for ONNX, ``cuda`` means TensorRT, CUDA and CPU providers in that order (``providers`` lists those
    that loaded). Shapes outside an engine's or static ONNX export's profile raise ``ShapeOutsideProfile``, images
    below the model's minimum ``ImageTooSmall``. On the CPU an ONNX model's 3x3 convolutions run through
    lway-engine's Winograd kernel (``cpu_kernels_report`` says how many; ``cpu_kernels=False`` keeps ORT's own).
    A checkpoint runs under bf16 autocast where ``precision`` is bf16, or auto on a CPU with native bf16 (AMX or
    AVX512_BF16: about 4x faster, 51-54 dB PSNR from float32 on photos); ``precision="fp32"`` opts out, 16-bit
    images stay float32.
    On the CPU an .onnx runs in ONNX Runtime or OpenVINO (``backend``; see :func:`choose_backend`), and a
    checkpoint in PyTorch or OpenVINO (the same rule; the first use of a checkpoint converts it,
    about 20 s for RRDBNet, and says so on stderr); OpenVINO follows the same ``precision`` rule, 16-bit images
    included. ``backend`` is auto, pytorch, onnxruntime or openvino; ``self.backend`` says which one runs.
    """

    def __init__(self, path: str | Path, device: str = "cpu", tile: int = 512, tile_pad: int = 64,
                 cpu_kernels: bool = True, precision: str = "auto", backend: str = "auto") -> None:
        suffix = Path(path).suffix.lower()
        self.providers: list[str] = []
        self.cpu_kernels_report: RewriteReport | None = None
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if suffix in (".onnx", ".engine") and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
        bf16 = inference_bf16(precision, device)
        if suffix == ".onnx":
            self.backend = choose_backend(backend, device, "onnx")
            if self.backend == "openvino":
                self.model = openvino_model(Path(path), bf16)
            else:
                self.model, self.providers, self.cpu_kernels_report = onnx_model(Path(path), device, cpu_kernels)
                bf16 = False  # ONNX Runtime keeps the precision of the export
        elif suffix == ".engine":
            self.backend = "tensorrt"
            self.model = engine_model(Path(path), device)
            bf16 = False
        else:
            self.backend = choose_backend(backend, device, "checkpoint")
            self.model = load_model(path, device=device)
            if self.backend == "openvino":
                self._to_openvino(bf16, explicit=backend == "openvino")
        self._finish(bf16, tile, tile_pad)

    def _to_openvino(self, bf16: bool, explicit: bool) -> None:
        """The checkpoint run by OpenVINO (cached IR); under ``auto`` a network it cannot convert stays in PyTorch,
        with a warning saying why."""
        note = conversion_cost_note(self.model)
        if note:
            print(note, file=sys.stderr, flush=True)
        try:
            self.model = openvino_checkpoint(self.model, bf16)
        except OpenVinoConversionError as exc:
            if explicit:
                raise
            warnings.warn(f"{exc}; running it in PyTorch instead", OpenVinoFallbackWarning, stacklevel=3)
            self.backend = "pytorch"

    @classmethod
    def from_model(cls, model: LoadedModel, tile: int = 512, tile_pad: int = 64, precision: str = "auto"
                   ) -> Upscaler:
        """An Upscaler on a model already in memory (PyTorch), e.g. ``Adapter``'s adapted module."""
        upscaler = cls.__new__(cls)
        upscaler.providers, upscaler.cpu_kernels_report, upscaler.backend = [], None, "pytorch"
        upscaler.model = model
        device = next(model.module.parameters()).device
        upscaler._finish(inference_bf16(precision, str(device)), tile, tile_pad)
        return upscaler

    def _finish(self, bf16: bool, tile: int, tile_pad: int) -> None:
        if bf16:  # oneDNN's bf16 convolutions want channels-last weights and activations
            self.model.module.to(memory_format=torch.channels_last)
        self.options = UpscaleOptions(tile=tile, tile_pad=tile_pad, bf16=bf16)

    @property
    def scale(self) -> int:
        return self.model.scale

    def upscale(self, image: ImageLike) -> Image:
        """The super-resolved image, of the same kind (greyscale/colour, bit depth, alpha) as ``image``: an
        ``Image``, a path, a NumPy array or a PIL image, as ``Adapter.adapt`` takes them (``as_image``)."""
        return upscale_image(self.model, as_image(image), self.options)

    def upscale_file(self, src: str | Path, dest: str | Path) -> None:
        """Read ``src``, upscale, write ``dest`` atomically (format from its suffix)."""
        write_image(dest, self.upscale(read_image(src)))

    def upscale_video(self, src: str | Path, dest: str | Path, job: VideoJob | None = None,
                      progress: bool = False) -> VideoOutcome:
        """Upscale the video (or numbered frame folder) ``src`` into the video file ``dest``, audio and subtitles
        copied; ``job`` sets codec, quality, segments and resuming (see ``lway_engine.media.upscale_video``)."""
        from lway_engine.media.upscale_video import VideoJob, upscale_video

        return upscale_video(self.model, Path(src), Path(dest), self.options, job or VideoJob(), progress)
