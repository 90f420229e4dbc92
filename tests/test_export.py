"""ONNX export verified against PyTorch with ONNX Runtime; TensorRT cache key and profile (no TensorRT needed)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner

from lway_engine import __version__
from lway_engine.adapted_weights import OriginalLayout
from lway_engine.export import onnx as onnx_export
from lway_engine.export.command import export_command, parse_shape
from lway_engine.export.onnx import (
    FP16_TOLERANCE,
    ExportReport,
    OnnxExportError,
    OnnxVerificationError,
    export_onnx,
    verify_onnx,
)
from lway_engine.export.tensorrt import (
    INSTALL_HINT,
    ShapeOutsideProfile,
    ShapeProfile,
    TensorRTUnavailable,
    build_engine,
    engine_key,
    import_tensorrt,
    optimisation_profile,
)
from lway_engine.export.ort_winograd import cpu_supported, library_path
from lway_engine.inference.upscaler import Upscaler
from lway_engine.media.images import Image
from lway_engine.models import ModelLoadError
from lway_engine.weights.cache import sha256_file


@pytest.fixture(scope="module")
def compact_onnx(lway_home: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    return export_onnx("realesr-animevideov3", tmp_path_factory.mktemp("onnx") / "compact.onnx")


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import tensorrt`` fails, as on a machine without it (whether or not this one has it)."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith((".part", ".part.onnx"))]


def test_compact_export_matches_pytorch_at_two_sizes_and_carries_metadata(compact_onnx, compact) -> None:
    assert len(compact_onnx.max_abs_error) == 2
    assert all(error <= 1e-3 for error in compact_onnx.max_abs_error.values()), compact_onnx.max_abs_error
    proto = onnx.load(str(compact_onnx.path))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["scale"] == "4" and meta["architecture"] == compact.architecture
    assert meta["source_sha256"] == compact.sha256 and meta["lway_engine_version"] == __version__
    assert "adaptation" not in meta
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert _leftovers(compact_onnx.path.parent) == []


def test_adapted_weights_export_with_their_settings(compact, tmp_path: Path) -> None:
    adapted = copy.deepcopy(compact.module)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in adapted.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05 * p.std())
    run = tmp_path / "run"
    (weights,) = OriginalLayout(compact.module, compact.path).save(adapted, run / "weights" / "adapted.safetensors")
    settings = {"iterations": 300, "lr": 2e-6, "model": str(compact.path)}
    (run / "report.json").write_text(json.dumps({"settings": settings, "runs": {}}))

    report = export_onnx(weights, tmp_path / "adapted.onnx")

    assert all(error <= 1e-3 for error in report.max_abs_error.values()), report.max_abs_error
    assert report.metadata["source_sha256"] == sha256_file(weights)
    assert json.loads(report.metadata["adaptation"]) == settings
    with pytest.raises(OnnxVerificationError, match="differs from PyTorch"):  # the graph holds the adapted weights
        verify_onnx(report.path, compact)


@pytest.mark.slow
def test_x4plus_export_matches_pytorch(x4plus, tmp_path: Path, photo) -> None:
    report = export_onnx("realesrgan-x4plus", tmp_path / "x4plus.onnx", verify_sizes=[(24, 32)])
    assert list(report.max_abs_error) == ["1x3x24x32"]
    assert report.max_abs_error["1x3x24x32"] <= 1e-3
    assert report.metadata["architecture"] == x4plus.architecture and report.metadata["scale"] == "4"
    # As apps run it on the CPU: through lway-engine's Winograd op where this processor has it (all 351 convolutions).
    upscaler = Upscaler(report.path, tile=0, backend="onnxruntime")
    if library_path() is not None and cpu_supported():
        assert upscaler.cpu_kernels_report.convolutions == 351
    image = Image(photo("rocket", 36), None, 8)
    expected = Upscaler(x4plus.path, tile=0, precision="fp32").upscale(image).pixels
    assert np.abs(upscaler.upscale(image).pixels - expected).max() <= 1e-3


def test_fp16_export_is_half_inside_and_float_outside(compact, tmp_path: Path) -> None:
    report = export_onnx("realesr-animevideov3", tmp_path / "half.onnx", fp16=True)
    assert all(error <= FP16_TOLERANCE for error in report.max_abs_error.values()), report.max_abs_error
    proto = onnx.load(str(report.path))
    assert report.metadata["precision"] == "fp16"
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = [i for i in proto.graph.initializer if len(i.dims) == 4]
    assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)


def test_static_shape_export(tmp_path: Path) -> None:
    report = export_onnx("realesr-animevideov3", tmp_path / "static.onnx", static_shape=(40, 56))
    assert list(report.max_abs_error) == ["1x3x40x56", "2x3x40x56"]
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(report.path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 40, 56]
    with pytest.raises(ValueError, match=r"does not fit this model \(sides of at least 8 px\)"):
        export_onnx("realesr-animevideov3", tmp_path / "tiny.onnx", static_shape=(4, 64))
    assert not (tmp_path / "tiny.onnx").exists()


def test_an_opset_the_converter_cannot_reach_is_an_error_not_a_silent_opset_18(tmp_path: Path) -> None:
    with pytest.raises(OnnxExportError, match="could not convert Compact to opset 5.*stayed at opset 18"):
        export_onnx("realesr-animevideov3", tmp_path / "old.onnx", opset=5)
    assert list(tmp_path.iterdir()) == []


def test_failed_verification_leaves_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(onnx_export, "FP32_TOLERANCE", -1.0)
    with pytest.raises(OnnxVerificationError, match="tolerance"):
        export_onnx("realesr-animevideov3", tmp_path / "rejected.onnx")
    assert list(tmp_path.iterdir()) == []


def test_truncated_onnx_is_a_clear_error(compact_onnx, compact, tmp_path: Path) -> None:
    data = compact_onnx.path.read_bytes()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxVerificationError, match="broken.onnx: not a valid ONNX model"):
        verify_onnx(broken, compact)


def test_weights_that_are_no_sr_model_are_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.safetensors"
    save_file({"encoder.weight": torch.randn(8, 8)}, str(bogus))
    with pytest.raises(ModelLoadError, match="not a super-resolution architecture"):
        export_onnx(bogus, tmp_path / "bogus.onnx")
    assert not (tmp_path / "bogus.onnx").exists()


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("export")(export_command)
    app.command("unused")(lambda: None)  # two commands, so "export" is a subcommand as in lway-engine
    return app


def test_cli_exports_and_reports_the_error(tmp_path: Path) -> None:
    out = tmp_path / "cli.onnx"
    result = CliRunner().invoke(_cli(), ["export", "realesr-animevideov3", "--onnx", str(out),
                                         "--static-shape", "32", "48"])
    assert result.exit_code == 0, result.output
    assert "verified with ONNX Runtime" in result.output and out.is_file()
    help_text = CliRunner().invoke(_cli(), ["export", "--help"]).output
    assert "--static-shape" in help_text and "--trt-opt" in help_text


def test_cli_trt_without_tensorrt_fails_before_exporting(no_tensorrt, tmp_path: Path) -> None:
    out = tmp_path / "never.onnx"
    result = CliRunner().invoke(_cli(), ["export", "realesr-animevideov3", "--onnx", str(out), "--trt"])
    assert result.exit_code == 2
    assert "pip install 'lway-engine[trt]'" in result.output and not out.exists()


def test_tensorrt_missing_names_the_install_command(no_tensorrt, tmp_path: Path) -> None:
    with pytest.raises(TensorRTUnavailable, match=r"pip install 'lway-engine\[trt\]'"):
        import_tensorrt()
    with pytest.raises(TensorRTUnavailable) as info:
        build_engine(tmp_path / "any.onnx")
    assert INSTALL_HINT in str(info.value)


DYNAMIC = [None, 3, None, None]


def test_default_profile_fits_upscaler_tiles() -> None:
    profile = optimisation_profile(DYNAMIC, min_side=8)
    assert profile == ShapeProfile((1, 3, 8, 8), (1, 3, 640, 640), (1, 3, 640, 640))
    assert profile.contains((1, 3, 640, 200)) and not profile.contains((1, 3, 641, 200))
    assert str(profile) == "min 1x3x8x8, opt 1x3x640x640, max 1x3x640x640"


def test_profile_requests_and_static_axes() -> None:
    profile = optimisation_profile(DYNAMIC, (16, 16), (2, 256, 384), (4, 512, 512))
    assert profile == ShapeProfile((1, 3, 16, 16), (2, 3, 256, 384), (4, 3, 512, 512))
    assert optimisation_profile(DYNAMIC, maximum=(512, 512)).opt == (1, 3, 512, 512)  # opt follows max
    assert optimisation_profile(DYNAMIC, opt=(1024, 800)).max == (1, 3, 1024, 800)  # max covers opt
    static = optimisation_profile([None, 3, 40, 56])
    assert static.min == (1, 3, 40, 56) and static.max == (1, 3, 40, 56)
    with pytest.raises(ValueError, match="conflicts with the model's static input"):
        optimisation_profile([None, 3, 40, 56], maximum=(64, 64))


@pytest.mark.parametrize(("args", "message"), [
    (((64, 64), (32, 32), (128, 128)), "min <= opt <= max"),
    (((4, 4), None, None), "below this model's minimum side 8"),
    (((1, 2, 3, 4), None, None), "HxW or NxHxW"),
])
def test_bad_profiles_are_refused(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        optimisation_profile(DYNAMIC, *args, min_side=8)


def test_engine_key_changes_with_every_input_and_only_then() -> None:
    profile = optimisation_profile(DYNAMIC)
    base = dict(onnx_sha256="ab" * 32, profile=profile, precision="fp16", trt_version="10.9.0", gpu_name="NVIDIA H100")
    key = engine_key(**base)
    assert key == engine_key(**base) and len(key) == 64
    changes = {"onnx_sha256": "cd" * 32, "profile": optimisation_profile(DYNAMIC, maximum=(512, 512)),
               "precision": "bf16", "trt_version": "10.10.0", "gpu_name": "NVIDIA H200"}
    keys = {engine_key(**{**base, name: value}) for name, value in changes.items()}
    assert len(keys | {key}) == 1 + len(changes)
    with pytest.raises(ValueError, match="fp16, bf16, tf32"):
        engine_key(**{**base, "precision": "int8"})


def test_shape_outside_profile_names_it() -> None:
    profile = ShapeProfile((1, 3, 8, 8), (1, 3, 64, 64), (1, 3, 64, 64))
    with pytest.raises(ShapeOutsideProfile, match=r"1x3x80x64 is outside the profile of x.engine \(min 1x3x8x8"):
        profile.check((1, 3, 80, 64), "x.engine")


def test_parse_shape() -> None:
    assert parse_shape("640x480") == (640, 480) and parse_shape("2X64x64") == (2, 64, 64)
    assert parse_shape(None) is None
    with pytest.raises(typer.BadParameter):
        parse_shape("640")
