"""Degradation synthesis: reproducibility, shapes, kernels, and that each effect does what its name says."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lway_engine.degradations import (
    EVALUATION_FAMILIES,
    PIPELINES,
    TRAINING_PIPELINES,
    UNSEEN_FAMILIES,
    apply_plan,
    degrade,
    degrade_files,
    kernels,
    noise_free,
    ops,
    optics_kernel,
    plan,
)
from lway_engine.degradations.steps import Step
from lway_engine.degradations.pipelines import NOISE_OPS, degrade_with_plan
from lway_engine.degradations.steps import OPS
from lway_engine.media.images import Image, ImageReadError, write_image

RANDOM_PIPELINES = [name for name, p in PIPELINES.items() if p.random]


@pytest.fixture(scope="module")
def hr(photo) -> torch.Tensor:
    """A 64x64 crop of a real photo, (3, H, W) in [0, 1]."""
    return torch.from_numpy(photo("astronaut", 64)).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def hr_big(photo) -> torch.Tensor:
    """128x128 crop: enough LR pixels (32x32) for statistics."""
    return torch.from_numpy(photo("coffee", 128)).permute(2, 0, 1).contiguous()


def laplacian_variance(img: torch.Tensor) -> float:
    k = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float32).view(1, 1, 3, 3)
    return F.conv2d(ops.luma(img).unsqueeze(0), k).var().item()


def high_pass_std(img: torch.Tensor) -> float:
    """Std of the image minus its 3x3 box mean: mostly noise and fine texture."""
    box = torch.full((3, 3), 1 / 9.0)
    return (img - ops.filter2d(img, torch.nn.functional.pad(box, (2, 2, 2, 2)))).std().item()


def test_pipeline_names() -> None:
    assert TRAINING_PIPELINES == ("bsrgan", "realesrgan", "broad", "resize")
    assert EVALUATION_FAMILIES == ("defocus_noise", "motion", "bayer_jpeg", "film")
    assert UNSEEN_FAMILIES == ("halftone_scan", "gif_palette")
    assert set(PIPELINES) == {"bicubic", *TRAINING_PIPELINES, *EVALUATION_FAMILIES, *UNSEEN_FAMILIES}
    assert not PIPELINES["bicubic"].random


@pytest.mark.parametrize("name", list(PIPELINES))
def test_same_seed_is_bit_identical(hr: torch.Tensor, name: str) -> None:
    for seed in (0, 7):
        first = degrade(hr, name, seed)
        assert torch.equal(first, degrade(hr.clone(), name, seed))
        assert torch.equal(first, degrade(hr, name, np.random.default_rng(seed)))


@pytest.mark.parametrize("name", RANDOM_PIPELINES)
def test_different_seeds_differ(hr: torch.Tensor, name: str) -> None:
    outputs = [degrade(hr, name, seed) for seed in range(4)]
    for i in range(len(outputs)):
        for j in range(i + 1, len(outputs)):
            assert not torch.equal(outputs[i], outputs[j]), (name, i, j)


def test_bicubic_control_ignores_seed_and_is_plain_bicubic(hr: torch.Tensor) -> None:
    expected = F.interpolate(hr[None], size=(16, 16), mode="bicubic", antialias=True, align_corners=False)[0]
    assert torch.equal(degrade(hr, "bicubic", 0), degrade(hr, "bicubic", 123))
    torch.testing.assert_close(degrade(hr, "bicubic", 0), expected.clamp(0, 1))


@pytest.mark.parametrize("name", list(PIPELINES))
@pytest.mark.parametrize("size", [(64, 64), (67, 70), (37, 22)])
def test_shape_and_range(hr: torch.Tensor, name: str, size: tuple[int, int]) -> None:
    image = hr[:, : size[0], : size[1]] if size[0] <= 64 else F.interpolate(hr[None], size=size)[0]
    for seed in range(3):
        out = degrade(image, name, seed)
        assert out.shape == (3, size[0] // 4, size[1] // 4)
        assert out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("scale", [2, 3])
def test_other_scales(hr: torch.Tensor, scale: int) -> None:
    for name in PIPELINES:
        assert degrade(hr[:, :61, :59], name, 1, scale=scale).shape == (3, 61 // scale, 59 // scale)


def test_crop_keeps_top_left(hr: torch.Tensor) -> None:
    assert torch.equal(degrade(hr[:, :63, :62], "bicubic", 0), degrade(hr[:, :60, :60], "bicubic", 0))
    assert torch.equal(degrade(hr[:, :63, :62], "film", 5), degrade(hr[:, :60, :60], "film", 5))


def test_bad_arguments(hr: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="bicubic"):
        degrade(hr, "nope", 0)
    with pytest.raises(ValueError):
        degrade(hr[0], "bicubic", 0)
    with pytest.raises(ValueError):
        degrade(hr[:, :3, :3], "bicubic", 0)
    with pytest.raises(TypeError):
        degrade(hr, "bicubic", 0.5)  # type: ignore[arg-type]


def _kernels_in_plans() -> list[dict]:
    specs = []
    for name in PIPELINES:
        for seed in range(40):
            specs += [s.params["kernel"] for s in plan((64, 64), name, seed) if s.op == "blur"]
    return specs


def test_kernels_are_normalised_and_odd() -> None:
    built = [
        kernels.gaussian(7, 0.3),
        kernels.gaussian(21, 3.0, 0.4, 1.0),
        kernels.generalized_gaussian(13, 2.0, 1.0, 0.3, 0.5),
        kernels.generalized_gaussian(9, 1.0, 1.0, 0.0, 4.0),
        kernels.plateau(15, 2.0, 1.5, -2.0, 1.0),
        kernels.plateau(21, 3.0, 3.0, 0.0, 2.0),
        kernels.sinc(7, math.pi / 3),
        kernels.sinc(21, math.pi),
        kernels.disc(7, 0.5),
        kernels.disc(21, 10.0),
        kernels.motion(7, 0.0, 0.0),
        kernels.motion(21, 19.0, 2.2),
    ]
    specs = _kernels_in_plans()
    kinds = {s["kind"] for s in specs}
    assert kinds == {"gaussian", "generalized_gaussian", "plateau", "sinc", "disc", "motion", "motion_curve"}
    built += [kernels.build(**s) for s in specs]
    for k in built:
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and 7 <= k.shape[0] <= 21
        assert abs(k.sum() - 1) < 1e-9
        assert abs(np.float32(k).sum(dtype=np.float64) - 1) < 1e-6
    for bad in (5, 8, 23):
        with pytest.raises(ValueError):
            kernels.gaussian(bad, 1.0)


def test_kernel_shapes() -> None:
    """Each kernel has the geometry its name promises."""
    iso = kernels.gaussian(15, 2.0)
    np.testing.assert_allclose(iso, iso.T, atol=1e-12)
    aniso = kernels.gaussian(15, 3.0, 0.5, 0.0)  # long along x
    assert aniso[7, 7 + 4] > 10 * aniso[7 + 4, 7]
    sinc = kernels.sinc(21, math.pi / 4)
    assert sinc.min() < 0  # ringing lobes
    pill = kernels.disc(11, 4.0)
    assert pill[5, 5] == pytest.approx(pill[5, 7])  # flat inside
    assert 0 < pill[5, 9] < pill[5, 5] and pill[5, 10] == 0  # anti-aliased edge, nothing beyond
    line = kernels.motion(15, 9.0, 0.0)
    assert np.count_nonzero(line.sum(axis=1) > 1e-9) <= 2 and np.count_nonzero(line[7]) >= 9
    diagonal = kernels.motion(15, 9.0, math.pi / 4)
    assert diagonal[7 - 3, 7 + 3] > 0 and diagonal[7 + 3, 7 + 3] == 0  # up-right, as angles go counter-clockwise


def test_every_kernel_blurs(hr: torch.Tensor) -> None:
    reference = laplacian_variance(hr)
    for k in (kernels.gaussian(9, 1.5), kernels.generalized_gaussian(9, 1.5, 1.0, 0.5, 2.0),
              kernels.plateau(9, 1.5, 1.5, 0.0, 1.5), kernels.sinc(11, math.pi / 3), kernels.disc(7, 2.0),
              kernels.motion(9, 6.0, 0.7)):
        assert laplacian_variance(ops.filter2d(hr, k)) < 0.6 * reference


@pytest.mark.parametrize("family", ["defocus_noise", "motion", "film"])
def test_blur_families_lose_high_frequencies_vs_bicubic(hr_big: torch.Tensor, family: str) -> None:
    """With their noise switched off, the blurring families are softer than the bicubic control."""
    control = laplacian_variance(degrade(hr_big, "bicubic", 0))
    for seed in range(5):
        steps = [s for s in plan((128, 128), family, seed) if s.op not in NOISE_OPS]
        assert laplacian_variance(apply_plan(hr_big, steps)) < 0.9 * control, seed


def test_plan_structure() -> None:
    """Each pipeline applies the operations its description names, in its order."""
    for seed in range(30):
        ops_of = {name: [s.op for s in plan((64, 64), name, seed)] for name in PIPELINES}
        assert ops_of["bicubic"] == ["resize"]
        assert ops_of["defocus_noise"] == ["blur", "resize", "sensor_noise"]
        assert ops_of["motion"] == ["blur", "resize", "sensor_noise"]
        assert ops_of["bayer_jpeg"] == ["resize", "bayer", "jpeg"]
        assert ops_of["film"] == ["blur", "resize", "fade", "film_grain"]
        bsrgan = ops_of["bsrgan"]
        assert bsrgan[-1] == "jpeg" and bsrgan.count("gaussian_noise") == 1 and 2 <= bsrgan.count("blur") <= 3
        real = ops_of["realesrgan"]
        assert real.count("jpeg") == 2 and sum(op.endswith("noise") for op in real) == 2
        assert real.index("jpeg") < len(real) - 3  # first-order JPEG, then second-order steps
    quality = [s.params["quality"] for seed in range(30) for s in plan((64, 64), "bayer_jpeg", seed) if s.op == "jpeg"]
    assert 40 <= min(quality) and max(quality) <= 70 and len(set(quality)) > 5


def test_bayer_jpeg_is_its_steps(hr: torch.Tensor) -> None:
    steps = plan((64, 64), "bayer_jpeg", 3)
    expected = ops.resize(hr, (16, 16), steps[0].params["mode"]).clamp(0, 1)
    expected = ops.jpeg(ops.bayer_round_trip(expected).clamp(0, 1), steps[2].params["quality"])
    assert torch.equal(degrade(hr, "bayer_jpeg", 3), expected)


def test_evaluation_families_are_held_out() -> None:
    """No training kernel shapes and no training noise models in the evaluation families."""
    for family in EVALUATION_FAMILIES:
        for seed in range(30):
            for step in plan((64, 64), family, seed):
                assert step.op not in ("gaussian_noise", "poisson_noise"), family
                if step.op == "blur":
                    assert step.params["kernel"]["kind"] in ("disc", "motion"), family


@pytest.mark.parametrize("family", ["defocus_noise", "motion", "film"])
def test_noise_families_raise_residual_std(hr_big: torch.Tensor, family: str) -> None:
    """On flat and smooth images the bicubic control leaves (almost) no high-pass residual, the noisy families
    do; on a photo, the same plan with its noise switched off has a smaller residual."""
    grey = torch.full((3, 64, 64), 0.5)
    ramp = torch.linspace(0.1, 0.9, 128).view(1, 1, 128).expand(3, 128, 128).contiguous()
    assert degrade(grey, "bicubic", 0).std() < 1e-6
    control = high_pass_std(degrade(ramp, "bicubic", 0))
    for seed in range(3):
        assert degrade(grey, family, seed).std() > 0.004, seed
        assert high_pass_std(degrade(ramp, family, seed)) > 2 * control, seed
        steps = plan((128, 128), family, seed)
        quiet = noise_free(steps)
        assert len(quiet) == len(steps) - 1
        assert high_pass_std(apply_plan(hr_big, steps)) > 1.01 * high_pass_std(apply_plan(hr_big, quiet)), seed


def test_noise_free_drops_exactly_the_random_draws(hr: torch.Tensor) -> None:
    """The fidelity ceiling's plan (bench/reconstruction_fidelity.py) keeps every deterministic step, so a family
    without noise reproduces its LR exactly, and one with noise differs from its LR by about the noise alone."""
    takes_seed = {op for op, fn in OPS.items() if "seed" in inspect.signature(fn).parameters}
    assert takes_seed == {*NOISE_OPS, "raw_capture"}  # a new random op must be taught to noise_free
    for name in PIPELINES:
        for seed in range(5):
            full = plan((64, 64), name, seed)
            quiet = noise_free(full)
            assert [s.op for s in quiet] == [s.op for s in full if s.op not in NOISE_OPS], name
            assert all(s.params["peak"] == 0 for s in quiet if s.op == "raw_capture"), name
    assert torch.equal(apply_plan(hr, noise_free(plan((64, 64), "bayer_jpeg", 2))), degrade(hr, "bayer_jpeg", 2))
    grey = torch.full((3, 64, 64), 0.5)
    steps = plan((64, 64), "defocus_noise", 4)
    assert (apply_plan(grey, noise_free(steps)) - 0.5).abs().max() < 1e-6
    assert (apply_plan(grey, steps) - apply_plan(grey, noise_free(steps))).std() > 0.004


def test_optics_kernel_is_the_blur_before_the_first_resize(hr: torch.Tensor) -> None:
    """The target of ``pretrain --kernel-weight``: the plan's pre-resize blurs composed, flipped into the correlation
    form R applies (an arc is not point-symmetric, so a missed flip would show), tails cropped to the frame."""
    arc = {"kind": "motion_curve", "size": 15, "length": 9.0, "angle": 0.4, "bend": 1.5}
    wide = {"kind": "gaussian", "size": 21, "sigma_x": 1.2}
    steps = [Step("blur", {"kernel": arc}), Step("vignetting", {"strength": 0.2, "radius": 1.0, "centre": [0, 0]}),
             Step("blur", {"kernel": wide}), Step("resize", {"size": (16, 16), "mode": "area"}),
             Step("blur", {"kernel": {"kind": "disc", "size": 9, "radius": 4.0}})]
    kernel = optics_kernel(steps, 21)
    assert kernel.shape == (21, 21) and abs(kernel.sum() - 1) < 1e-9
    blurred = ops.filter2d(ops.filter2d(hr, kernels.build(**arc)), kernels.build(**wide))
    as_r = F.conv2d(F.pad(hr[:, None], [10] * 4, mode="reflect"), torch.from_numpy(kernel).float()[None, None])
    inner = (slice(None), slice(12, -12), slice(12, -12))  # away from the two paddings' differences
    assert (as_r[:, 0][inner] - blurred[inner]).abs().max() < 2e-3  # only the tails beyond 21 px differ
    flipped = F.conv2d(F.pad(hr[:, None], [10] * 4, mode="reflect"),
                       torch.from_numpy(kernel[::-1, ::-1].copy()).float()[None, None])
    assert (flipped[:, 0][inner] - blurred[inner]).abs().max() > 1e-2
    delta = np.zeros((21, 21))
    delta[10, 10] = 1
    assert np.array_equal(optics_kernel(plan((64, 64), "bayer_jpeg", 0), 21), delta)  # resizes first: no blur
    lr, recorded = degrade_with_plan(hr, "motion", 3)
    assert torch.equal(lr, degrade(hr, "motion", 3)) and recorded == plan((64, 64), "motion", 3)
    line = dict(recorded[0].params["kernel"])
    assert np.allclose(optics_kernel(recorded, 21), kernels.centred(kernels.build(**line)[::-1, ::-1], 21))


def test_noise_ops_have_their_strength() -> None:
    grey = torch.full((3, 96, 96), 0.5)
    assert (ops.gaussian_noise(grey, 0.05, False, 1) - grey).std().item() == pytest.approx(0.05, rel=0.05)
    mono = ops.gaussian_noise(grey, 0.05, True, 1) - grey
    assert torch.equal(mono[0], mono[1]) and torch.equal(mono[1], mono[2])
    shot = (ops.poisson_noise(grey, 2.0, False, 1) - grey).std().item()
    assert shot == pytest.approx(2.0 * math.sqrt(0.5 / 255), rel=0.05)
    low, high = (ops.sensor_noise(grey, peak, 0.001, 1).std().item() for peak in (50, 1000))
    assert low > 3 * high > 0
    for level in (0.3, 0.8):  # Poisson in linear light: variance = signal / peak
        flat = torch.full((3, 96, 96), level)
        linear = ops.srgb_to_linear(ops.sensor_noise(flat, 200, 0.0, 2))
        expected = ops.srgb_to_linear(flat).mean().item() / 200
        assert linear.var().item() == pytest.approx(expected, rel=0.1)


def test_jpeg_has_block_structure(hr: torch.Tensor) -> None:
    out = ops.jpeg(hr, 10)
    assert out.shape == hr.shape and (out - hr).abs().mean() > 0.01
    assert torch.equal(out, ops.jpeg(hr, 10))
    steps = (out[..., :, 1:] - out[..., :, :-1]).abs().mean(dim=(0, 1))  # per column boundary
    vertical = (out[..., 1:, :] - out[..., :-1, :]).abs().mean(dim=(0, 2))
    for diffs in (steps, vertical):
        positions = torch.arange(diffs.numel())
        across = diffs[positions % 8 == 7].mean()
        within = diffs[positions % 8 != 7].mean()
        assert across > 1.3 * within


def test_jpeg_quality_orders_error(hr: torch.Tensor) -> None:
    errors = [(ops.jpeg(hr, q) - hr).abs().mean().item() for q in (10, 40, 90)]
    assert errors[0] > errors[1] > errors[2]


def test_bayer_demosaic_of_flat_colour() -> None:
    for colour in ((0.5, 0.5, 0.5), (0.2, 0.6, 0.9)):
        flat = torch.tensor(colour).view(3, 1, 1).expand(3, 9, 12).contiguous()
        torch.testing.assert_close(ops.bayer_round_trip(flat), flat, atol=1e-6, rtol=0)
    rgb = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(0))
    raw = ops.bayer_mosaic(rgb)[0]
    assert raw[0, 0] == rgb[0, 0, 0] and raw[0, 1] == rgb[1, 0, 1] and raw[1, 0] == rgb[1, 1, 0]
    assert raw[1, 1] == rgb[2, 1, 1]
    back = ops.demosaic_bilinear(ops.bayer_mosaic(rgb))
    assert back[0, 0, 0] == rgb[0, 0, 0] and back[2, 1, 1] == rgb[2, 1, 1]  # samples kept where measured


def test_bayer_round_trip_loses_colour_detail(hr: torch.Tensor) -> None:
    out = ops.bayer_round_trip(hr)
    assert 0.002 < (out - hr).abs().mean() < 0.1


def test_film_look() -> None:
    ramp = torch.linspace(0, 1, 64).view(1, 1, 64).expand(3, 64, 64).contiguous()
    faded = ops.colour_fade(ramp, 0.7, (1.05, 1.0, 0.9), 0.08)
    assert faded.min() >= 0.08 - 1e-6 and faded.max() - faded.min() < ramp.max() - ramp.min()  # lifted, flatter
    assert faded[0].mean() > faded[2].mean()  # warm cast
    grain = ops.film_grain(ramp, 0.05, 1.0, 3) - ramp
    mid, black = grain[..., 28:36].std(), grain[..., :2].std()
    assert mid > 1.5 * black  # luminance dependent
    neighbour = torch.corrcoef(torch.stack([grain[0, :, 10:-10].flatten(), grain[0, :, 11:-9].flatten()]))[0, 1]
    assert neighbour > 0.3  # spatially correlated, unlike white noise


def test_batched_ops_match_single(hr: torch.Tensor) -> None:
    batch = torch.stack([hr, hr.flip(-1)])
    k = kernels.disc(9, 3.0)
    torch.testing.assert_close(ops.filter2d(batch, k)[1], ops.filter2d(hr.flip(-1), k), rtol=0, atol=1e-6)
    torch.testing.assert_close(ops.resize(batch, (16, 16), "bicubic")[0], ops.resize(hr, (16, 16), "bicubic"))
    assert torch.equal(ops.jpeg(batch, 50)[1], ops.jpeg(hr.flip(-1), 50))


# ----------------------------------------------------------------------------------------------------- files


def _write_photos(folder, photo, names=("a.png", "b.png", "c.jpg")):
    from lway_engine.media.images import Image, write_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, source) in enumerate(zip(names, ("astronaut", "coffee", "chelsea"))):
        pixels = photo(source, 64 + 2 * i)  # 64, 66, 68: one side not a multiple of 4
        write_image(folder / name, Image(pixels, None, 8))
        paths.append(folder / name)
    return paths


def test_degrade_files(tmp_path, photo) -> None:
    from lway_engine.media.images import read_image

    inputs = _write_photos(tmp_path / "hr", photo)
    out = degrade_files(inputs, tmp_path / "lr", "realesrgan", seed=3)
    assert out == [tmp_path / "lr" / f"{p.stem}.png" for p in inputs]
    for path, size in zip(out, (16, 16, 17)):
        assert read_image(path).size == (size, size)
    first = {p.name: p.read_bytes() for p in out}

    reversed_out = degrade_files(inputs[::-1], tmp_path / "lr2", "realesrgan", seed=3)
    assert {p.name: p.read_bytes() for p in reversed_out} == first
    alone = degrade_files([inputs[1]], tmp_path / "lr3", "realesrgan", seed=3)
    assert alone[0].read_bytes() == first["b.png"]
    folder = degrade_files([tmp_path / "hr"], tmp_path / "lr4", "realesrgan", seed=3)
    assert {p.name: p.read_bytes() for p in folder} == first

    other = degrade_files(inputs, tmp_path / "lr5", "realesrgan", seed=4)
    assert all(p.read_bytes() != first[p.name] for p in other)


def test_degrade_files_refuses_clashes(tmp_path, photo) -> None:
    inputs = _write_photos(tmp_path / "hr", photo)
    with pytest.raises(ValueError, match="overwrite"):
        degrade_files(inputs, tmp_path / "hr", "bicubic", seed=0)
    twin = _write_photos(tmp_path / "other", photo, names=("a.jpg",))
    with pytest.raises(ValueError, match="both"):
        degrade_files(inputs + twin, tmp_path / "lr", "bicubic", seed=0)
    with pytest.raises(ValueError, match="valid"):
        degrade_files(inputs, tmp_path / "lr", "gauss", seed=0)
    with pytest.raises(FileNotFoundError):
        degrade_files([tmp_path / "missing.png"], tmp_path / "lr", "bicubic", seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        degrade_files([tmp_path / "empty"], tmp_path / "lr", "bicubic", seed=0)
    write_image(tmp_path / "small" / "dot.png", Image(np.zeros((3, 9, 3), np.float32), None, 8))
    (tmp_path / "small" / "junk.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="dot.png: 9x3 px is smaller than the scale factor 4"):
        degrade_files(inputs + [tmp_path / "small" / "dot.png"], tmp_path / "lr", "bicubic", seed=0)
    with pytest.raises(ImageReadError, match="junk.png"):
        degrade_files(inputs + [tmp_path / "small" / "junk.png"], tmp_path / "lr", "bicubic", seed=0)
    assert not (tmp_path / "lr").exists()  # every refusal comes before the first output


def test_broad_degrades_images_too_small_to_reflect_pad(photo) -> None:
    """An HR a few pixels high: the camera stage's paddings replicate where reflection cannot reach."""
    hr = torch.from_numpy(photo("astronaut", 64)[:8].transpose(2, 0, 1).copy())
    for seed in range(8):  # seed 3 on 8 x 8 drew a mosaic that reflect-padded a 1 x 1 image
        assert degrade(hr, "broad", seed, 4).shape == (3, 2, 16)
        assert degrade(hr[..., :8], "broad", seed, 4).shape == (3, 2, 2)


def test_degrade_command(tmp_path, photo) -> None:
    import typer
    from typer.testing import CliRunner

    from lway_engine.degradations.command import degrade_command

    app = typer.Typer()
    app.command("degrade")(degrade_command)
    app.command("other")(lambda: None)  # two commands, so "degrade" is addressed by name as in the real CLI
    runner = CliRunner()
    inputs = _write_photos(tmp_path / "hr", photo)

    result = runner.invoke(app, ["degrade", str(tmp_path / "hr"), "-o", str(tmp_path / "lr"), "--pipeline", "film",
                                 "--seed", "5"])
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "lr").iterdir())
    assert [p.name for p in written] == ["a.png", "b.png", "c.png"]
    api = degrade_files(inputs, tmp_path / "api", "film", seed=5)
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in api]

    result = runner.invoke(app, ["degrade", str(inputs[0]), "-o", str(tmp_path / "x2"), "--pipeline", "bicubic",
                                 "--seed", "0", "--scale", "2"])
    assert result.exit_code == 0, result.output
    from lway_engine.media.images import read_image

    assert read_image(tmp_path / "x2" / "a.png").size == (32, 32)

    result = runner.invoke(app, ["degrade", str(inputs[0]), "-o", str(tmp_path / "bad"), "--pipeline", "gauss",
                                 "--seed", "0"])
    assert result.exit_code == 2
    assert "gauss" in result.output and all(name in result.output for name in PIPELINES)
    assert not (tmp_path / "bad").exists()

    result = runner.invoke(app, ["degrade", "--help"])
    assert result.exit_code == 0 and all(name in result.output for name in PIPELINES)
