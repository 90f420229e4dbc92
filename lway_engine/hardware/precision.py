"""``--amp auto|bf16|fp16|fp32``: which autocast precision a training loop runs, decided from the device."""

from __future__ import annotations

from lway_engine.hardware.cpu import cpu_features

AMP_CHOICES = ("auto", "bf16", "fp16", "fp32")


def resolve_amp(requested: str, device: str) -> str | None:
    """The autocast setting (``"bf16"``, ``"fp16"`` or None for float32) for ``requested`` on ``device``.

    ``auto`` is bf16 on a CPU with AMX or AVX512_BF16 (an x4plus adaptation step 3.2x faster there, E+R
    pretraining 2.1x; fp32 master weights and optimizer state) and float32 elsewhere: an AVX2-only CPU emulates
    bf16, and on a GPU the choice waits for the GPU suite's measurements. Whether ``fp16`` suits the device is
    checked where the autocast is set up (``adaptation.step.amp_dtype``).
    """
    if requested not in AMP_CHOICES:
        raise ValueError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {requested!r}")
    if requested == "auto":
        return "bf16" if device.split(":")[0] == "cpu" and cpu_features().fast_bf16 else None
    return None if requested == "fp32" else requested


def inference_bf16(requested: str, device: str) -> bool:
    """Whether a PyTorch checkpoint infers under bf16 autocast: ``requested`` is auto, bf16 or fp32.

    ``auto`` turns it on for a CPU with native bf16, where x4plus on a 128 px image ran 4.2x faster (4.87 -> 1.16 s)
    and lands 51-54 dB PSNR from the float32 output on three photos (58-73% of 8-bit values identical, the largest
    difference 5-12 levels: bench/bf16_fidelity.py).
    """
    if requested not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {requested!r}")
    if requested == "auto":
        return device.split(":")[0] == "cpu" and cpu_features().fast_bf16
    return requested == "bf16"
