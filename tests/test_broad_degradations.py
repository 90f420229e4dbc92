"""The broad pretraining space and the unseen families: each new operation against a reference or a property that
defines it, and the parameter table the model card is rendered from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from lway_engine.degradations import apply_plan, camera, degrade, kernels, ops, optics, plan, printing, resample
from lway_engine.degradations.broad import STAGES, stages_markdown
from lway_engine.degradations.outliers import OUTLIERS, add_outlier


@pytest.fixture(scope="module")
def hr(photo) -> torch.Tensor:
    return torch.from_numpy(photo("coffee", 128)).permute(2, 0, 1).contiguous()


@pytest.mark.parametrize(("mode", "pil"), [("lanczos", PILImage.Resampling.LANCZOS),
                                           ("cubic", PILImage.Resampling.BICUBIC),
                                           ("triangle", PILImage.Resampling.BILINEAR),
                                           ("nearest", PILImage.Resampling.NEAREST)])
@pytest.mark.parametrize("size", [(32, 40), (181, 150)])
def test_resample_matches_pillow(hr: torch.Tensor, mode: str, pil: PILImage.Resampling,
                                 size: tuple[int, int]) -> None:
    """Pillow's float-image resize is the reference (same kernels, antialiasing and edge renormalisation)."""
    ours = resample.resize(hr.double(), size, mode).numpy()
    keep = np.ones(size, dtype=bool)
    if mode == "nearest":  # where an output centre falls exactly between two pixels, Pillow's float rounding decides
        for axis, (n_in, n_out) in enumerate(zip(hr.shape[1:], size)):
            tie = ((2 * np.arange(n_out) + 1) * n_in) % (2 * n_out) == 0
            keep &= ~tie[:, None] if axis == 0 else ~tie[None, :]
    for c in range(3):
        ref = np.asarray(PILImage.fromarray(hr[c].numpy(), mode="F").resize(size[::-1], pil), dtype=np.float64)
        np.testing.assert_allclose(ours[c][keep], ref[keep], atol=2e-5)


def test_resample_weights_rows_sum_to_one() -> None:
    for mode in resample.MODES:
        for n_in, n_out in ((100, 25), (25, 100), (7, 7), (3, 1)):
            torch.testing.assert_close(resample.weights(n_in, n_out, mode).sum(1),
                                       torch.ones(n_out, dtype=torch.float64))
    with pytest.raises(ValueError, match="lanczos"):
        resample.weights(4, 2, "sinc")


def _ramp(height: int = 24, width: int = 28) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height) / height, torch.arange(width) / width, indexing="ij")
    return torch.stack([0.2 + 0.5 * xs, 0.3 + 0.3 * ys, 0.1 + 0.4 * xs + 0.3 * ys])


@pytest.mark.parametrize("demosaic", camera.DEMOSAICS)
@pytest.mark.parametrize("pattern", camera.BAYER_PATTERNS)
def test_raw_capture_without_noise_keeps_flat_colour(demosaic: str, pattern: str) -> None:
    flat = torch.tensor([0.6, 0.3, 0.2]).view(3, 1, 1).expand(3, 20, 22).contiguous()
    out = camera.raw_capture(flat, True, pattern, demosaic, peak=0.0, read=0.0, seed=0)
    torch.testing.assert_close(out, flat, atol=1e-6, rtol=0)


def test_malvar_is_exact_on_linear_ramps_and_better_than_bilinear_on_a_photo(hr: torch.Tensor) -> None:
    """Malvar-He-Cutler's filters reproduce linear colour ramps inside the image (their defining property) and
    beat bilinear demosaicking on real detail (their paper's claim)."""
    ramp = _ramp()
    out = camera.raw_capture(ramp, True, "RGGB", "malvar", peak=0.0, read=0.0, seed=0)
    torch.testing.assert_close(out[:, 3:-3, 3:-3], ramp[:, 3:-3, 3:-3], atol=1e-5, rtol=0)
    errors = {d: float((camera.raw_capture(hr, True, "GRBG", d, 0.0, 0.0, 0) - hr)[:, 2:-2, 2:-2].abs().mean())
              for d in ("bilinear", "malvar")}
    assert errors["malvar"] < 0.9 * errors["bilinear"]


def test_raw_noise_follows_the_signal() -> None:
    """Shot noise: variance = signal / peak (plus read noise squared), per raw sample."""
    dark, bright = (torch.full((3, 64, 64), v) for v in (0.05, 0.6))
    var = [float((camera.raw_capture(x, False, "RGGB", "bilinear", peak=200.0, read=0.0, seed=1) - x).var())
           for x in (dark, bright)]
    np.testing.assert_allclose(var, [0.05 / 200, 0.6 / 200], rtol=0.15)


def test_tone_curves_round_trip_and_contrast_is_an_s_curve(hr: torch.Tensor) -> None:
    for curve in camera.TONE_CURVES:
        back = camera.from_linear(camera.to_linear(hr, curve, 2.4), curve, 2.4)
        torch.testing.assert_close(back, hr, atol=1e-5, rtol=0)
    grey = torch.tensor([0.2, 0.5, 0.8]).view(1, 1, 3).expand(3, 1, 3)
    s = camera.from_linear(camera.to_linear(grey, "srgb"), "srgb", contrast=0.5)[0, 0]
    assert s[0] < 0.2 and abs(float(s[1]) - 0.5) < 1e-6 and s[2] > 0.8


def test_colour_errors_and_tone_adjust_identities(hr: torch.Tensor) -> None:
    torch.testing.assert_close(camera.colour_errors(hr, [1, 1, 1], np.eye(3).tolist()), hr)
    torch.testing.assert_close(ops.tone_adjust(hr, 1.0, 1.0, 1.0, 1.0), hr, atol=1e-5, rtol=0)
    grey = ops.tone_adjust(hr, 1.0, 1.0, 1.0, 0.0)
    torch.testing.assert_close(grey[0], grey[2])
    assert float(ops.tone_adjust(hr, 1.4, 1.0, 1.0, 1.0).mean()) > float(hr.mean())


def test_sharpen_adds_halos(hr: torch.Tensor) -> None:
    edge = torch.zeros(3, 16, 16)
    edge[:, :, 8:] = 0.8
    out = camera.sharpen(edge, sigma=1.0, amount=1.0)
    assert float(out[:, :, 8:].max()) > 0.8 and float(out[:, :, :8].min()) < 0  # overshoot both sides
    torch.testing.assert_close(camera.sharpen(edge, 1.0, 1.0, threshold=1.0), edge)


def test_chromatic_aberration_moves_red_outwards_and_zero_is_identity() -> None:
    img = torch.zeros(3, 41, 41)
    img[:, 20, 35] = 1.0  # a white point right of the centre
    torch.testing.assert_close(optics.chromatic_aberration(img, 0.0, 0.0, [0.5, 0.5]), img)
    out = optics.chromatic_aberration(img, 0.05, -0.05, [0.5, 0.5])
    columns = torch.arange(41, dtype=torch.float32)
    centroid = [float((out[c, 20] * columns).sum() / out[c, 20].sum()) for c in range(3)]
    assert centroid[0] > centroid[1] + 0.5 > centroid[2] + 1.0  # red magnified, blue shrunk about the centre


def test_vignetting_darkens_corners(hr: torch.Tensor) -> None:
    flat = torch.full((3, 32, 32), 0.7)
    out = optics.vignetting(flat, 0.4, [0.5, 0.5], 0.7)
    assert float(out[0, 0, 0]) < float(out[0, 16, 16]) - 0.05
    torch.testing.assert_close(optics.vignetting(hr, 0.0, [0.5, 0.5], 0.7), hr, atol=1e-5, rtol=0)


def test_jpeg_chroma_subsampling(hr: torch.Tensor) -> None:
    full, sub = ops.jpeg(hr, 90, "4:4:4"), ops.jpeg(hr, 90, "4:2:0")
    assert float((full - hr).abs().mean()) < float((sub - hr).abs().mean())
    torch.testing.assert_close(ops.jpeg(hr, 90), sub)  # Pillow's default is 4:2:0
    with pytest.raises(ValueError, match="4:2:2"):
        ops.jpeg(hr, 90, "4:2:2")


def test_curved_motion_kernel() -> None:
    np.testing.assert_array_equal(kernels.motion_curve(15, 9.0, 0.3, 0.0), kernels.motion(15, 9.0, 0.3))
    arc = kernels.motion_curve(15, 9.0, 0.0, 2.0)
    assert abs(arc.sum() - 1) < 1e-12 and (arc >= 0).all()
    assert not np.allclose(arc, arc[::-1, :])  # a horizontal line is symmetric top-bottom, an arc is not
    with pytest.raises(ValueError, match="does not fit"):
        kernels.motion_curve(7, 19.0, 0.0, 0.5)


def test_halftone_covers_in_proportion_to_density() -> None:
    for level in (0.25, 0.5, 0.75):
        flat = torch.full((3, 96, 96), level)
        out = printing.halftone(flat, period=6.0, angles=[15, 75, 0])
        assert abs(float(out.mean()) - level) < 0.06
        assert float(((out > 0.1) & (out < 0.9)).float().mean()) < 0.5  # mostly ink or paper, not grey


def test_palette_limits_colours(hr: torch.Tensor) -> None:
    for colours in (16, 64):
        out = printing.palette(hr, colours, dither=True)
        assert len(torch.unique(out.reshape(3, -1), dim=1).T) <= colours
    with pytest.raises(ValueError):
        printing.palette(hr, 1, True)


@pytest.mark.parametrize("kind", list(OUTLIERS))
def test_outlier_defects_are_seeded_8bit_and_change_the_lr(hr: torch.Tensor, kind: str) -> None:
    lr = torch.round(ops.resize(hr, (32, 32), "area").clamp(0, 1) * 255) / 255
    out = add_outlier(lr, kind, np.random.default_rng(5))
    assert torch.equal(out, add_outlier(lr, kind, np.random.default_rng(5)))
    assert not torch.equal(out, add_outlier(lr, kind, np.random.default_rng(6)))
    assert not torch.equal(out, lr) and 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(out, torch.round(out * 255) / 255)


def test_outlier_defects_have_their_shape() -> None:
    grey = torch.full((3, 64, 64), 128 / 255)
    for seed in range(10):
        rng = np.random.default_rng(seed)
        hit = (add_outlier(grey, "impulse", rng) != grey).any(0)
        assert 0 < float(hit.float().mean()) < 0.045  # 0.5-3% of the pixels, black or white in every channel
        assert set(add_outlier(grey, "impulse", np.random.default_rng(seed))[:, hit].unique().tolist()) <= {0.0, 1.0}
        band = add_outlier(grey, "banding", rng) - grey
        assert (band == band[:, :, :1]).all() or (band == band[:, :1, :]).all()  # one offset per row or column
        scratched = (add_outlier(grey, "scratches", rng) != grey).any(0)
        lengths = scratched.sum(0)[scratched.any(0)]
        assert 1 <= len(lengths) <= 4 and (lengths >= 8).any()  # vertical, 1 px wide: rows only at a bottom edge
    with pytest.raises(ValueError, match="unknown outlier defect 'palette'"):
        add_outlier(grey, "palette", np.random.default_rng(0))


def test_broad_space_uses_every_stage_and_table_documents_it() -> None:
    ops_seen = {step.op for seed in range(300) for step in plan((256, 256), "broad", seed)}
    assert ops_seen == {"blur", "chromatic_aberration", "vignetting", "resize", "to_linear", "colour_errors",
                        "raw_capture", "from_linear", "sharpen", "fade", "film_grain", "jpeg", "tone_adjust"}
    table = stages_markdown()
    for name, stage in STAGES.items():
        assert f"| {name} |" in table and all(p in table for p in stage.params)
    modes = {step.params["mode"] for seed in range(100) for step in plan((256, 256), "broad", seed)
             if step.op == "resize"}
    assert modes == set(ops.ALL_RESIZE_MODES)


def test_resize_pipeline_is_the_broad_resize_chain_alone(hr: torch.Tensor) -> None:
    """Only resizes, ending at the LR size, every mode drawn; seeded like every pipeline."""
    plans = [plan((256, 192), "resize", seed) for seed in range(200)]
    assert all(step.op == "resize" for steps in plans for step in steps)
    assert all(steps[-1].params["size"] == (64, 48) for steps in plans)
    assert {len(steps) for steps in plans} == {1, 2, 3}  # 0-2 intermediate sizes, then the LR size
    assert {step.params["mode"] for steps in plans for step in steps} == set(ops.ALL_RESIZE_MODES)
    one = plan(tuple(hr.shape[-2:]), "resize", 3)
    assert torch.equal(apply_plan(hr, one), degrade(hr, "resize", 3))
