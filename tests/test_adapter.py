"""``lway_engine.Adapter``: the public Python API for adaptation, and the README's example run as written."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

import lway_engine
from lway_engine import Adapter, Image, Upscaler, read_image, write_image

REPO = Path(__file__).resolve().parents[1]
SMALL = {"iterations": 6, "batch": 2, "crop": 32, "eval_every": 2}


def test_public_surface() -> None:
    assert {"Adapter", "AdaptResult", "Upscaler", "Image", "read_image", "write_image"} <= set(lway_engine.__all__)
    assert all(getattr(lway_engine, name) is not None for name in lway_engine.__all__)
    with pytest.raises(AttributeError):
        lway_engine.NotAThing  # noqa: B018


def test_readme_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (REPO / "README.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "Adapter(" in block)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert read_image(tmp_path / "photo_x4.png").size == (512, 512)
    assert (tmp_path / "adapted.safetensors").is_file()


def test_inputs_of_every_kind_and_the_weights_layout(photo, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    rgb = (photo("coffee", 64) * 255).round().astype(np.uint8)
    write_image(tmp_path / "a.png", Image(rgb.astype(np.float32) / 255, None, 8))
    inputs = [tmp_path / "a.png", str(tmp_path / "a.png"), rgb, rgb.astype(np.uint16) * 257,
              rgb.astype(np.float32) / 255, PILImage.fromarray(rgb), rgb[..., 0]]
    adapter = Adapter("realesr-animevideov3", select=False, **SMALL)
    results = adapter.adapt(inputs, per_image=True)
    assert len(results) == len(inputs) and all(r.log.status == "done" for r in results)
    result = adapter.adapt(rgb)  # a single image, not a list
    assert "fixed schedule" in result.log.message  # what the CLI prints after the run
    written = result.save(tmp_path / "w.safetensors")
    with safe_open(str(written[0]), "pt") as new, safe_open(str(adapter.model.path), "pt") as original:
        assert set(new.keys()) == set(original.keys())
    up = result.upscaler(tile=0)
    assert isinstance(up, Upscaler) and up.upscale(read_image(tmp_path / "a.png")).size == (256, 256)
    with pytest.raises(ValueError, match="shape"):
        adapter.adapt(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adapter.adapt(np.full((64, 64, 3), 2.0, np.float32))
    with pytest.raises(TypeError, match="unknown settings"):
        Adapter("realesr-animevideov3", iteratons=5)


def test_cancel_from_another_thread_keeps_the_weights_so_far(photo) -> None:
    adapter = Adapter("realesr-animevideov3", select=False, iterations=500, batch=2, crop=32)
    seen = threading.Event()

    def progress(done: int, total: int, loss: float) -> None:
        if done >= 3:
            seen.set()

    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("r", adapter.adapt(photo("astronaut", 64),
                                                                                   progress=progress)))
    worker.start()
    assert seen.wait(120)
    adapter.cancel()
    worker.join(120)
    log = results["r"].log
    assert log.status == "cancelled" and 3 <= len(log.loss) < 500 and "cancelled after" in log.message
