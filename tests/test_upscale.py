"""`upscale` with real pretrained models: better than bicubic, seamless tiles, and robust batch processing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lway_engine.atomic import remove_stale_parts
from lway_engine.cli import app
from lway_engine.demo import resize
from lway_engine.inference.tiles import upscale_tensor
from lway_engine.inference.upscale import ImageTooSmall, UpscaleOptions, upscale_image
from lway_engine.media.images import Image, read_image, write_image


def _nchw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def test_x4plus_beats_bicubic_on_a_real_photo(x4plus, lpips_alex, photo) -> None:
    hr = photo("chelsea", 128)
    lr = resize(hr, 0.25)
    sr = upscale_image(x4plus, Image(lr, None, 8), UpscaleOptions(tile=0)).pixels
    bicubic = resize(lr, 4)
    with torch.no_grad():
        ours = float(lpips_alex(_nchw(sr), _nchw(hr)))
        baseline = float(lpips_alex(_nchw(bicubic), _nchw(hr)))
    assert sr.shape == hr.shape
    assert ours < 0.75 * baseline, (ours, baseline)


def test_tiled_equals_untiled_for_a_receptive_field_within_the_pad(compact, photo) -> None:
    x = _nchw(photo("coffee", 72))
    whole = upscale_tensor(compact.module, x, 4, compact.size, tile=0)
    tiled = upscale_tensor(compact.module, x, 4, compact.size, tile=24, tile_pad=20)  # 18 convs: radius 18
    assert (tiled - whole).abs().max().item() < 1e-5


def test_tiled_x4plus_matches_untiled_within_one_level(x4plus, photo) -> None:
    # A 24x176 strip in 48-px tiles: three seams, each with exactly the default 64 px of context on its sides
    # (RRDBNet's receptive field is far wider than that; the default pad is what keeps seams below 1/255).
    x = _nchw(photo("astronaut")[200:224, 160:336])
    whole = upscale_tensor(x4plus.module, x, 4, x4plus.size, tile=0)
    tiled = upscale_tensor(x4plus.module, x, 4, x4plus.size, tile=48)
    assert (tiled - whole).abs().max().item() <= 1 / 255


def test_greyscale_stays_grey_and_16bit_alpha_is_kept(compact, photo) -> None:
    rgb = photo("astronaut", 32)
    grey = Image((rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None], None, 8)
    out = upscale_image(compact, grey, UpscaleOptions())
    assert out.grey and out.size == (128, 128) and out.bit_depth == 8
    alpha = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    out16 = upscale_image(compact, Image(rgb, alpha, 16), UpscaleOptions())
    assert out16.bit_depth == 16 and out16.alpha is not None and out16.alpha.shape == (128, 128)
    pooled = torch.nn.functional.avg_pool2d(torch.from_numpy(out16.alpha)[None, None], 4)[0, 0].numpy()
    assert float(np.abs(pooled - alpha).mean()) < 0.03  # the alpha ramp survives, at 4x the size


def test_too_small_image_is_refused(compact) -> None:
    with pytest.raises(ImageTooSmall, match="at least"):
        upscale_image(compact, Image(np.zeros((4, 40, 3), np.float32), None, 8), UpscaleOptions())


def test_cli_reports_bad_files_and_finishes_the_rest(tmp_path: Path, photo) -> None:
    inputs = tmp_path / "in"
    write_image(inputs / "good.png", Image(photo("coffee", 24), None, 8))
    write_image(inputs / "grey.jpg", Image(photo("camera", 24)[..., None], None, 8))
    write_image(inputs / "deep.png", Image(photo("astronaut", 24), np.ones((24, 24), np.float32), 16))
    write_image(inputs / "tiny.png", Image(photo("coffee", 4), None, 8))
    good = (inputs / "good.png").read_bytes()
    (inputs / "truncated.png").write_bytes(good[: len(good) // 2])
    (inputs / "text.png").write_text("this is not a picture")

    result = CliRunner().invoke(app, ["upscale", str(inputs), "-o", str(tmp_path / "out"),
                                      "--model", "realesr-animevideov3"])
    assert result.exit_code == 1, result.output
    for name in ("tiny.png", "truncated.png", "text.png"):
        assert f"FAILED {inputs / name}" in result.output
    assert "3 of 6 images written" in result.output
    assert read_image(tmp_path / "out" / "grey.png").grey
    deep = read_image(tmp_path / "out" / "deep.png")
    assert deep.bit_depth == 16 and deep.alpha is not None and deep.size == (96, 96)
    assert read_image(tmp_path / "out" / "good.png").size == (96, 96)


def test_cli_unknown_model_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["upscale", str(tmp_path), "-o", str(tmp_path / "o"), "--model", "nope"])
    assert result.exit_code == 2 and "not a known model name" in result.output


def test_cli_outscale_suffix_ext_auto_quality_and_times(tmp_path: Path, photo) -> None:
    inputs = tmp_path / "in"
    write_image(inputs / "cat.jpg", Image(photo("chelsea", 24), None, 8))
    write_image(inputs / "mug.webp", Image(photo("coffee", 20), None, 8))
    write_image(inputs / "rgba.png", Image(photo("astronaut", 24), np.linspace(0, 1, 576, dtype=np.float32)
                                           .reshape(24, 24), 8))
    common = ["--model", "realesrgan-x4plus", "--suffix", "_out", "--ext", "auto"]
    result = CliRunner().invoke(app, ["upscale", str(inputs), "-o", str(tmp_path / "x2"), "--outscale", "2", *common])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "x2" / "cat_out.jpg").size == (48, 48)  # 2x from a 4x model, format kept
    assert read_image(tmp_path / "x2" / "mug_out.webp").size == (40, 40)
    rgba = read_image(tmp_path / "x2" / "rgba_out.png")
    assert rgba.size == (48, 48) and rgba.alpha is not None
    assert "3 of 3 images written" in result.output and result.output.count(" s  ") == 3  # a time per file
    # above the model's scale, and JPEG quality: a lower quality makes a smaller file
    for quality in (40, 95):
        out = tmp_path / f"q{quality}"
        result = CliRunner().invoke(app, ["upscale", str(inputs / "cat.jpg"), "-o", str(out), "--outscale", "6",
                                          "--ext", "jpg", "--quality", str(quality), "--model", "realesr-animevideov3"])
        assert result.exit_code == 0, result.output
        assert read_image(out / "cat.jpg").size == (144, 144)
    assert (tmp_path / "q40" / "cat.jpg").stat().st_size < (tmp_path / "q95" / "cat.jpg").stat().st_size
    for option, value in (("--outscale", "0"), ("--outscale", "nan"), ("--tile", "-5"), ("--ext", "bmp"),
                          ("--alpha-mode", "foo")):
        bad = CliRunner().invoke(app, ["upscale", str(inputs), "-o", str(tmp_path / "bad"), option, value])
        assert bad.exit_code == 2 and f"Invalid value for '{option}'" in bad.output, bad.output


def test_cli_refuses_to_write_over_its_inputs_and_says_when_it_found_none(tmp_path: Path, photo) -> None:
    inputs = tmp_path / "in"
    write_image(inputs / "cat.png", Image(photo("chelsea", 24), None, 8))
    before = (inputs / "cat.png").read_bytes()
    result = CliRunner().invoke(app, ["upscale", str(inputs), "-o", str(inputs), "--overwrite", "--model",
                                      "realesr-animevideov3"])
    assert result.exit_code == 2 and "would overwrite an input" in result.output
    assert (inputs / "cat.png").read_bytes() == before and sorted(inputs.iterdir()) == [inputs / "cat.png"]
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["upscale", str(tmp_path / "empty"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no image files" in result.output
    result = CliRunner().invoke(app, ["upscale", str(inputs), "-o", str(tmp_path / "o"), "--device", "cuda:99"])
    assert result.exit_code == 2 and "--device cuda:99" in result.output
    result = CliRunner().invoke(app, ["upscale", str(inputs), "-o", str(inputs / "cat.png")])
    assert result.exit_code == 2 and "is a file; images are written into a folder" in result.output
    result = CliRunner().invoke(app, ["upscale", str(inputs), "-o", str(inputs / "cat.png" / "out")])
    assert result.exit_code == 2 and "cannot create the output folder" in result.output  # before the model runs


def test_a_rerun_removes_temporaries_of_killed_writers_only(tmp_path: Path) -> None:
    """Two real writers stopped mid-file: one killed (its *.part is debris), one alive (its *.part is in use)."""
    out = tmp_path / "out"
    script = ("import sys, pathlib; from lway_engine.atomic import atomic_write; "
              "atomic_write(pathlib.Path(sys.argv[1]), lambda tmp: (tmp.write_bytes(b'half'), print('ready', "
              "flush=True), sys.stdin.read()))")
    writers = [subprocess.Popen([sys.executable, "-c", script, str(out / name)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for name in ("killed.png", "alive.png")]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready"
    writers[0].kill()
    writers[0].wait()
    assert len(list(out.glob("*.part*"))) == 2
    assert remove_stale_parts(out) == 1
    left = list(out.glob("*.part*"))
    assert len(left) == 1 and left[0].name.startswith("alive.png.")
    writers[1].communicate("")  # the live writer finishes its file normally
    assert (out / "alive.png").read_bytes() == b"half" and not list(out.glob("*.part*"))
