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
    assert results["r"].adapted and f"{len(log.loss)} of 500 steps (cancelled)" in results["r"].reason


def test_one_adapter_runs_one_adaptation_at_a_time_and_zero_steps_adapt_nothing(photo) -> None:
    """A second thread's adapt() on a running Adapter is refused (the runs share the model's weights: it broke the
    first run's result silently), and a run that took no step says the unadapted weights are kept."""
    adapter = Adapter("realesr-animevideov3", select=False, iterations=200, batch=2, crop=32)
    started, errors = threading.Event(), []
    worker = threading.Thread(target=lambda: adapter.adapt(photo("astronaut", 64), progress=lambda *_: started.set()))
    worker.start()
    assert started.wait(120)
    try:
        adapter.adapt(photo("coffee", 64))
    except RuntimeError as error:
        errors.append(str(error))
    adapter.cancel()
    worker.join(120)
    assert errors and "already adapting" in errors[0]
    idle = Adapter("realesr-animevideov3", select=False, iterations=0, batch=2, crop=32).adapt(photo("coffee", 64))
    assert not idle.adapted and "no step was taken" in idle.reason


def test_inputs_are_checked_not_turned_into_white_or_black_pixels(photo, tmp_path: Path) -> None:
    """16-bit and float PIL images keep their values; NaN, 0-255 floats in an Image and a non-.safetensors
    weights name are errors, where they once gave white pixels, a 'diverged' run or unreadable files."""
    from PIL import Image as PILImage

    from lway_engine.media.images import as_image

    grey = (photo("coffee", 48)[..., 0] * 65535).round().astype(np.uint16)
    converted = as_image(PILImage.fromarray(grey))  # Pillow opens 16-bit grey PNGs as mode I;16
    assert converted.bit_depth == 16 and np.allclose(converted.pixels[..., 0], grey / 65535, atol=1e-6)
    floats = as_image(PILImage.fromarray(grey.astype(np.float32) / 65535, mode="F"))
    assert np.allclose(floats.pixels[..., 0], grey / 65535, atol=1e-6)
    broken = photo("coffee", 48).copy()
    broken[3, 4, 1] = np.nan
    upscaler = Upscaler("realesr-animevideov3", tile=0)
    for bad, why in ((broken, "finite values in \\[0, 1\\]"), (Image(photo("coffee", 48) * 255, None, 8), "divide"),
                     (Image(photo("coffee", 48), None, 12), "bit_depth")):
        with pytest.raises(ValueError, match=why):
            upscaler.upscale(bad)
    rgb = (photo("coffee", 48) * 255).round().astype(np.uint8)
    assert np.array_equal(upscaler.upscale(rgb).pixels, upscaler.upscale(Image(rgb / np.float32(255), None, 8)).pixels)
    result = Adapter("realesr-animevideov3", select=False, iterations=1, batch=2, crop=32).adapt(rgb)
    with pytest.raises(ValueError, match="NAME.safetensors"):
        result.save(tmp_path / "adapted.pth")
