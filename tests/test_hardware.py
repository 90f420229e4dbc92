"""Processor detection and the precision ``--amp auto`` picks from it."""

from __future__ import annotations

import pytest

from lway_engine.hardware import cpu_features, resolve_amp
from lway_engine.hardware.cpu import parse_cpuinfo

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile
processor\t: 1
flags\t\t: fpu
"""
EPYC = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx2 fma\n"
PILEDRIVER = "model name\t: AMD Opteron 6380\nflags\t\t: fpu sse2 avx fma\n"  # FMA without AVX2


def test_parse_cpuinfo_reads_the_first_processor() -> None:
    xeon, epyc = parse_cpuinfo(XEON), parse_cpuinfo(EPYC)
    assert xeon.model == "Intel(R) Xeon(R) Platinum 8488C" and xeon.avx512f and xeon.amx_bf16 and xeon.fast_bf16
    assert epyc.avx2 and epyc.fma and not epyc.avx512f and not epyc.fast_bf16
    assert parse_cpuinfo(PILEDRIVER).fma and not parse_cpuinfo(PILEDRIVER).avx2
    assert (xeon.kind, epyc.kind) == ("amx-bf16", "avx2")
    assert parse_cpuinfo("").fast_bf16 is False  # no /proc/cpuinfo: no extension assumed
    assert set(xeon.as_dict()) >= {"model", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "fast_bf16", "kind"}


@pytest.fixture()
def flags(monkeypatch):
    """``flags("avx2 ...")`` makes this process see a CPU with those flags (LWAY_CPU_FLAGS)."""
    def use(text: str) -> None:
        monkeypatch.setenv("LWAY_CPU_FLAGS", text)
        cpu_features.cache_clear()

    yield use
    monkeypatch.delenv("LWAY_CPU_FLAGS", raising=False)
    cpu_features.cache_clear()


def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(flags) -> None:
    flags("avx2 avx512f avx512_bf16")
    assert resolve_amp("auto", "cpu") == "bf16"
    flags("avx2 amx_bf16")
    assert resolve_amp("auto", "cpu") == "bf16"
    flags("avx2 avx512f")
    assert resolve_amp("auto", "cpu") is None
    assert resolve_amp("auto", "cuda:0") is None  # GPU defaults wait for the GPU suite's measurements


def test_winograd_kernel_runs_where_cpu_features_has_avx2_and_fma(flags) -> None:
    from lway_engine.export.ort_winograd import cpu_supported

    flags("avx2 fma")
    assert cpu_supported()
    for without in ("avx2", "avx fma", ""):  # the kernel's instructions are AVX2 and FMA: both are needed
        flags(without)
        assert not cpu_supported(), without


def test_explicit_choices_and_bad_values() -> None:
    assert resolve_amp("fp32", "cpu") is None
    assert resolve_amp("bf16", "cpu") == "bf16" and resolve_amp("fp16", "cuda") == "fp16"
    with pytest.raises(ValueError, match="auto, bf16, fp16, fp32"):
        resolve_amp("half", "cpu")


def test_info_command_reports_versions_isa_and_fast_paths() -> None:
    import json

    from typer.testing import CliRunner

    from lway_engine.cli import app

    result = CliRunner().invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["versions"]["torch"] and report["cpu"]["logical_cores"] >= 1
    assert report["fast_paths"]["cpp_extension"] is True  # CI builds the extension; a silent fallback must show
    assert report["fast_paths"]["adapt_amp_auto_cpu"] == ("bf16" if cpu_features().fast_bf16 else "fp32")
    text = CliRunner().invoke(app, ["info"]).output
    assert "native bf16" in text and "fast paths" in text
