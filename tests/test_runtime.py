"""``Upscaler``: one entry point for checkpoints, ONNX files and TensorRT engines, with the same image handling."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from lway_engine.backends import ArtefactError, onnx_providers, openvino_installed
from lway_engine.cli import app
from lway_engine.export.onnx import OnnxVerificationError, export_onnx
from lway_engine.export.ort_winograd import cpu_supported, library_path
from lway_engine.export.tensorrt import ShapeOutsideProfile, TensorRTUnavailable
from lway_engine.hardware import cpu_features
from lway_engine.media.images import LUMA, Image, read_image, write_image
from lway_engine.models import ModelLoadError
from lway_engine.backends.openvino_convert import (
    STALE_STAGING_S,
    OpenVinoConversionError,
    cache_dir,
    cache_limit,
    conversion_cost_note,
    evict,
)
from lway_engine.inference.upscale import ImageTooSmall
from lway_engine.inference.upscaler import OpenVinoFallbackWarning, Upscaler


@pytest.fixture(scope="module")
def compact_onnx(lway_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx("realesr-animevideov3", tmp_path_factory.mktemp("runtime") / "compact.onnx").path


needs_openvino = pytest.mark.skipif(not openvino_installed(), reason="OpenVINO not installed ([openvino] extra)")
# The .onnx backends every ONNX test runs on: ONNX Runtime always, OpenVINO where it is installed.
ONNX_BACKENDS = ["onnxruntime", pytest.param("openvino", marks=needs_openvino)]


def test_backend_follows_the_artefact(compact_onnx, compact) -> None:
    ort = Upscaler(compact_onnx, backend="onnxruntime")
    assert (ort.backend, ort.providers, ort.scale) == ("onnxruntime", ["CPUExecutionProvider"], 4)
    torch_backend = Upscaler(compact.path, backend="pytorch")
    assert torch_backend.backend == "pytorch" and torch_backend.model.architecture == ort.model.architecture
    openvino_fastest = openvino_installed() and cpu_features().fast_bf16  # auto: OpenVINO there, for both kinds
    assert Upscaler(compact_onnx).backend == ("openvino" if openvino_fastest else "onnxruntime")
    assert Upscaler(compact.path).backend == ("openvino" if openvino_fastest else "pytorch")
    with pytest.raises(ValueError, match="backend must be one of auto, pytorch, onnxruntime, openvino"):
        Upscaler(compact_onnx, backend="tvm")
    with pytest.raises(ValueError, match="export the checkpoint first"):
        Upscaler(compact.path, backend="onnxruntime")
    with pytest.raises(ValueError, match="an .onnx file runs in onnxruntime or openvino"):
        Upscaler(compact_onnx, backend="pytorch")
    with pytest.raises(ValueError, match="OpenVINO backend runs on the CPU"):
        Upscaler(compact.path, backend="openvino", device="cuda")


@needs_openvino
def test_openvino_bf16_stays_within_50_db_of_float32(compact_onnx, photo) -> None:
    fp32, bf16 = (Upscaler(compact_onnx, tile=0, backend="openvino", precision=p) for p in ("fp32", "bf16"))
    for name in ("astronaut", "coffee"):
        image = Image(photo(name, 64), None, 8)
        mse = float(np.mean((bf16.upscale(image).pixels - fp32.upscale(image).pixels) ** 2))
        assert 10 * np.log10(1 / mse) >= 50, name


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_one_upscaler_shared_by_threads_gives_each_its_own_image(compact_onnx, photo, backend: str) -> None:
    """Apps call one Upscaler from worker threads: OpenVINO's single infer request once handed threads each other's
    outputs (20 of 24 wrong); every backend must give what a call alone gives."""
    from concurrent.futures import ThreadPoolExecutor

    upscaler = Upscaler(compact_onnx, tile=0, backend=backend)
    images = [Image(photo(name, 48 + 8 * k), None, 8) for k, name in enumerate(("astronaut", "coffee", "chelsea"))]
    images += [Image(np.ascontiguousarray(image.pixels[::-1]), None, 8) for image in images]
    alone = [upscaler.upscale(image).pixels for image in images]
    for _ in range(2):
        with ThreadPoolExecutor(len(images)) as pool:
            together = list(pool.map(lambda image: upscaler.upscale(image).pixels, images))
        assert all(np.array_equal(a, b) for a, b in zip(alone, together))


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_onnx_matches_pytorch_and_tiles_match_whole(compact_onnx, compact, photo, backend: str) -> None:
    image = Image(photo("coffee", 72), None, 8)
    whole = Upscaler(compact_onnx, tile=0, backend=backend, precision="fp32").upscale(image).pixels
    # 3x3 tiles; receptive radius 18
    tiled = Upscaler(compact_onnx, tile=24, tile_pad=20, backend=backend, precision="fp32").upscale(image).pixels
    reference = Upscaler(compact.path, tile=0, precision="fp32").upscale(image).pixels
    assert whole.shape == (288, 288, 3)
    assert np.abs(tiled - whole).max() <= 1 / 255
    assert np.abs(whole - reference).max() <= 1e-3


CHECKPOINT_BACKENDS = ["pytorch", pytest.param("openvino", marks=needs_openvino)]


@pytest.mark.parametrize("backend", CHECKPOINT_BACKENDS)
def test_bf16_checkpoint_inference_stays_within_50_db_of_float32(compact, photo, backend: str) -> None:
    fp32, bf16 = (Upscaler(compact.path, tile=0, precision=p, backend=backend) for p in ("fp32", "bf16"))
    assert bf16.options.bf16 and not fp32.options.bf16
    for name in ("astronaut", "coffee", "chelsea"):
        image = Image(photo(name, 64), None, 8)
        mse = float(np.mean((bf16.upscale(image).pixels - fp32.upscale(image).pixels) ** 2))
        assert 10 * np.log10(1 / mse) >= 50, name
    # bf16's 8-bit mantissa would waste 16-bit depth: float32 there (channels-last kernels: rounding apart)
    deep = Image(photo("coffee", 48), None, 16)
    np.testing.assert_allclose(bf16.upscale(deep).pixels, fp32.upscale(deep).pixels, rtol=0, atol=1e-5)


def test_auto_precision_follows_the_cpu(compact, compact_onnx, monkeypatch: pytest.MonkeyPatch) -> None:
    from lway_engine.hardware import cpu_features

    for flags, expected in (("avx2 avx512f avx512_bf16", True), ("avx2 amx_bf16", True), ("avx2", False)):
        monkeypatch.setenv("LWAY_CPU_FLAGS", flags)
        cpu_features.cache_clear()
        assert Upscaler(compact.path, tile=0, backend="pytorch").options.bf16 is expected, flags
        assert Upscaler(compact_onnx, tile=0, backend="onnxruntime").options.bf16 is False  # the export's precision
        if openvino_installed():  # OpenVINO follows the same rule as PyTorch, for .onnx files and checkpoints
            assert Upscaler(compact.path, tile=0).backend == ("openvino" if expected else "pytorch"), flags
            assert Upscaler(compact_onnx, tile=0, backend="openvino").options.bf16 is expected, flags
            assert Upscaler(compact.path, tile=0, backend="openvino").options.bf16 is expected, flags
    monkeypatch.delenv("LWAY_CPU_FLAGS")
    cpu_features.cache_clear()


@needs_openvino
def test_checkpoint_in_openvino_is_converted_once_and_matches_pytorch(compact, photo, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LWAY_HOME", str(tmp_path))  # an empty cache
    image = Image(photo("coffee", 72), None, 8)
    reference = Upscaler(compact.path, tile=0, precision="fp32", backend="pytorch").upscale(image).pixels
    assert conversion_cost_note(compact) is not None
    first = Upscaler(compact.path, tile=0, precision="fp32", backend="openvino")
    entry = cache_dir(compact)
    assert first.backend == "openvino" and (entry / "model.xml").is_file() and conversion_cost_note(compact) is None
    assert not [p for p in entry.parent.iterdir() if p.name.endswith(".part")]
    stamp = (entry / "model.bin").stat().st_mtime_ns
    tiled = Upscaler(compact.path, tile=24, tile_pad=20, precision="fp32", backend="openvino")
    assert (entry / "model.bin").stat().st_mtime_ns == stamp  # read from the cache, not converted again
    assert np.abs(first.upscale(image).pixels - reference).max() <= 1e-3
    assert np.abs(tiled.upscale(image).pixels - reference).max() <= 1 / 255
    deep = Image(photo("coffee", 48), None, 16)  # 16-bit: float32 even where 8-bit images run in bf16
    bf16 = Upscaler(compact.path, tile=0, precision="bf16", backend="openvino")
    np.testing.assert_allclose(bf16.upscale(deep).pixels, Upscaler(compact.path, tile=0, precision="fp32",
                                                                   backend="pytorch").upscale(deep).pixels,
                               rtol=0, atol=1e-4)


@needs_openvino
def test_damaged_openvino_cache_entry_is_converted_again(compact, photo, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LWAY_HOME", str(tmp_path))
    Upscaler(compact.path, tile=0, backend="openvino")
    weights = cache_dir(compact) / "model.bin"
    weights.write_bytes(weights.read_bytes()[:1000])  # a disk that filled up while the entry was written
    image = Image(photo("chelsea", 32), None, 8)
    repaired = Upscaler(compact.path, tile=0, precision="fp32", backend="openvino").upscale(image).pixels
    reference = Upscaler(compact.path, tile=0, precision="fp32", backend="pytorch").upscale(image).pixels
    assert weights.stat().st_size > 1000 and np.abs(repaired - reference).max() <= 1e-3


def test_openvino_cache_evicts_the_least_recently_used_entries(tmp_path: Path, monkeypatch) -> None:
    """Each adapted checkpoint adds an IR entry: the cache drops the oldest-used ones past its bound, never the one
    just made, and sweeps staging folders that a killed conversion left a day ago (not a running one's)."""
    now = time.time()
    entries = {}
    for age, name in enumerate(("newest", "middle", "oldest", "just-made")):
        entries[name] = tmp_path / name
        entries[name].mkdir()
        (entries[name] / "model.bin").write_bytes(b"x" * 1000)
        os.utime(entries[name], (now - 100 * age, now - 100 * age))
    for name, age in (("killed.part", STALE_STAGING_S + 60), ("running.part", 5)):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (now - age, now - age))
    removed = evict(tmp_path, keep=entries["just-made"], limit=2500)  # the oldest entry, yet the one to keep
    assert sorted(p.name for p in removed) == ["killed.part", "middle", "oldest"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["just-made", "newest", "running.part"]
    assert evict(tmp_path, keep=entries["just-made"], limit=10**6) == []
    monkeypatch.setenv("LWAY_OPENVINO_CACHE_MB", "0.5")
    assert cache_limit() == 2**19
    for bad in ("0", "-1", "lots"):
        monkeypatch.setenv("LWAY_OPENVINO_CACHE_MB", bad)
        with pytest.raises(ValueError, match="LWAY_OPENVINO_CACHE_MB"):
            cache_limit()


@needs_openvino
def test_checkpoint_openvino_cannot_run_falls_back_under_auto_only(compact, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LWAY_HOME", str(tmp_path))
    monkeypatch.setenv("LWAY_CPU_FLAGS", "avx2 amx_bf16")  # auto wants OpenVINO whatever this CPU is
    cpu_features.cache_clear()

    def cannot_trace(model, folder) -> None:  # what torch.jit.trace raises on data-dependent control flow
        raise RuntimeError("Tracer cannot infer type of output")

    monkeypatch.setattr("lway_engine.backends.openvino_convert._convert", cannot_trace)
    try:
        with pytest.warns(OpenVinoFallbackWarning, match="cannot convert Compact"):
            assert Upscaler(compact.path).backend == "pytorch"
        with pytest.raises(OpenVinoConversionError, match="Tracer cannot infer"):
            Upscaler(compact.path, backend="openvino")
        assert not list((tmp_path / "openvino").iterdir())  # no half-made entry left behind
    finally:
        monkeypatch.delenv("LWAY_CPU_FLAGS")
        cpu_features.cache_clear()


@pytest.mark.skipif(library_path() is None or not cpu_supported(), reason="x86-64 AVX2+FMA kernel only")
def test_cpu_kernels_are_the_default_and_agree_with_onnx_runtimes_own(compact_onnx, photo) -> None:
    fast = Upscaler(compact_onnx, tile=0, backend="onnxruntime")
    plain = Upscaler(compact_onnx, tile=0, cpu_kernels=False, backend="onnxruntime")
    assert plain.cpu_kernels_report is None
    report = fast.cpu_kernels_report  # all 18 convolutions of animevideov3 (SRVGGNetCompact) are 3x3; NCHW only
    assert (report.convolutions, report.transposes) == (18, 2)  # at the input and before the pixel shuffle
    image = Image(photo("chelsea", 40), None, 8)
    assert np.abs(fast.upscale(image).pixels - plain.upscale(image).pixels).max() <= 1e-4


def test_cli_upscales_with_an_onnx_model(compact_onnx, photo, tmp_path: Path) -> None:
    write_image(tmp_path / "in" / "cat.png", Image(photo("chelsea", 24), None, 8))
    result = CliRunner().invoke(app, ["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                                      "--model", str(compact_onnx), "--no-cpu-kernels"])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out" / "cat.png").size == (96, 96)


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_greyscale_and_16bit_rgba_keep_their_kind(compact_onnx, photo, tmp_path: Path, backend: str) -> None:
    upscaler = Upscaler(compact_onnx, backend=backend)
    rgb = photo("astronaut", 32)
    grey = upscaler.upscale(Image((rgb @ LUMA)[..., None], None, 8))
    assert grey.grey and grey.size == (128, 128) and grey.bit_depth == 8

    alpha = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    write_image(tmp_path / "rgba16.png", Image(rgb, alpha, 16))
    upscaler.upscale_file(tmp_path / "rgba16.png", tmp_path / "out.png")
    out = read_image(tmp_path / "out.png")
    assert out.bit_depth == 16 and not out.grey and out.size == (128, 128)
    assert out.alpha is not None
    pooled = out.alpha.reshape(32, 4, 32, 4).mean(axis=(1, 3))
    assert float(np.abs(pooled - alpha).mean()) < 0.03  # the alpha ramp survives, at 4x the size


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_image_below_the_minimum_is_refused(compact_onnx, backend: str) -> None:
    with pytest.raises(ImageTooSmall, match="at least 8x8"):
        Upscaler(compact_onnx, backend=backend).upscale(Image(np.zeros((4, 40, 3), np.float32), None, 8))


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_static_onnx_refuses_other_shapes(tmp_path: Path, photo, backend: str) -> None:
    path = export_onnx("realesr-animevideov3", tmp_path / "static.onnx", static_shape=(24, 24)).path
    assert Upscaler(path, tile=0, backend=backend).upscale(Image(photo("coffee", 24), None, 8)).size == (96, 96)
    with pytest.raises(ShapeOutsideProfile, match=r"1x3x32x32 does not fit static.onnx, exported for \?x3x24x24"):
        Upscaler(path, tile=0, backend=backend).upscale(Image(photo("coffee", 32), None, 8))


def test_corrupt_onnx_is_a_clear_error(compact_onnx, tmp_path: Path) -> None:
    data = compact_onnx.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtefactError, match="truncated.onnx: ONNX Runtime cannot load it"):
        Upscaler(tmp_path / "truncated.onnx", backend="onnxruntime")
    if openvino_installed():
        with pytest.raises(ArtefactError, match="truncated.onnx: OpenVINO cannot load it"):
            Upscaler(tmp_path / "truncated.onnx", backend="openvino")


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_onnx_without_lway_metadata_is_a_clear_error(compact_onnx, tmp_path: Path, backend: str) -> None:
    proto = onnx.load(str(compact_onnx))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    with pytest.raises(OnnxVerificationError, match="no lway-engine metadata"):
        Upscaler(tmp_path / "foreign.onnx", backend=backend)


def test_unsupported_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="unsupported file type"):
        Upscaler(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError):
        Upscaler(tmp_path / "missing.onnx")


def test_engine_without_tensorrt_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    (tmp_path / "model.engine").write_bytes(b"\0" * 64)
    with pytest.raises(TensorRTUnavailable, match=r"pip install 'lway-engine\[trt\]'"):
        Upscaler(tmp_path / "model.engine", device="cuda")


def test_onnx_providers_by_device() -> None:
    assert onnx_providers("cpu") == [("CPUExecutionProvider", {})]
    gpu = onnx_providers("cuda:1")
    names = [name for name, _ in gpu]
    order = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert names == [n for n in order if n in names] and names[-1] == "CPUExecutionProvider"
    assert all(options["device_id"] == 1 for name, options in gpu if name != "CPUExecutionProvider")
