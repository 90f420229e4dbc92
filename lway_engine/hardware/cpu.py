"""Processor detection: which x86 instruction sets this CPU has, and whether bfloat16 is the fast path on it.

Why here: on a Xeon with AMX or AVX512_BF16, oneDNN runs bfloat16 convolutions several times faster than float32
(an E+R training step: 1.1 s -> 0.53 s on two cores), while on an AVX2-only EPYC bfloat16 is emulated and slower.
Every choice of precision on the CPU (pretraining, adaptation, inference) and of kernel (the ONNX Runtime Winograd
op needs AVX2 + FMA) asks :func:`cpu_features` instead of reading ``/proc/cpuinfo`` itself, and ``lway-engine
info`` and the benchmarks record :func:`cpu_features`.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

# The flags that decide a fast path, by the names Linux prints in /proc/cpuinfo.
_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuFeatures:
    """The instruction sets that matter for our kernels, and the processor's name."""

    model: str
    machine: str
    avx2: bool
    fma: bool  # FMA3 (fused multiply-add on AVX registers)
    avx512f: bool
    avx512_bf16: bool
    amx_bf16: bool

    @property
    def fast_bf16(self) -> bool:
        """bfloat16 matrix units (AMX) or dot-product instructions (AVX512_BF16): oneDNN's bf16 kernels win."""
        return self.amx_bf16 or self.avx512_bf16

    @property
    def kind(self) -> str:
        """The best of the instruction sets that decide our fast paths: names benchmark results per processor."""
        for name in ("amx_bf16", "avx512_bf16", "avx512f", "avx2"):
            if getattr(self, name):
                return name.replace("_", "-")
        return "baseline"

    def as_dict(self) -> dict:
        return {**asdict(self), "fast_bf16": self.fast_bf16, "kind": self.kind}


def parse_cpuinfo(text: str) -> CpuFeatures:
    """Features from the text of ``/proc/cpuinfo`` (the first processor's ``flags`` and ``model name``)."""
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    return CpuFeatures(model=model or platform.processor() or "unknown", machine=platform.machine(),
                       **{name: name in flags for name in _FLAGS})


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's features. ``LWAY_CPU_FLAGS`` (space-separated) overrides detection, e.g. to test a path."""
    override = os.environ.get("LWAY_CPU_FLAGS")
    if override is not None:
        return parse_cpuinfo(f"model name : {platform.processor() or 'unknown'}\nflags : {override}")
    cpuinfo = Path("/proc/cpuinfo")
    try:
        return parse_cpuinfo(cpuinfo.read_text())
    except OSError:  # not Linux: report no x86 extensions rather than guess
        return parse_cpuinfo("")

