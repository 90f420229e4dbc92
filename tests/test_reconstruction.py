"""The LWay LR reconstruction branch: E and R shapes, conditioning, determinism, adaptation path, checkpoints, cost."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.ext import bias_leaky_relu_reference
from lway_engine.reconstruction import (
    MIN_LR_SIZE,
    CheckpointError,
    CheckpointNotFoundError,
    DegradationEncoder,
    LWayReconstruction,
    ModulatedConv2d,
    ReconstructionConfig,
    Reconstructor,
    load_checkpoint,
    macs_per_lr_pixel,
    read_checkpoint_info,
    save_checkpoint,
)

# Real-ESRGAN x4plus (RRDBNet) forward, MACs per LR pixel: the SR model an adaptation step backpropagates through.
RRDBNET_X4_MACS_PER_LR_PIXEL = 16.5e6
SMALL = ReconstructionConfig(scale=4, embed_dim=64, encoder_width=16, reconstructor_width=16, num_blocks=2)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()


def _perturb_residual_branch(model: LWayReconstruction) -> LWayReconstruction:
    """Give the zero-initialised output conv non-trivial weights, as training would, so e's effect is visible."""
    with torch.no_grad():
        model.reconstructor.conv_out.weight.normal_(std=0.1)
    return model


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=img.dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    padded = F.pad(img, (radius,) * 4, mode="reflect")
    c = img.shape[1]
    out = F.conv2d(padded, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("hr_size", [(64, 64), (96, 160), (136, 72)], ids=str)
def test_reconstructor_shapes(scale: int, hr_size: tuple[int, int]) -> None:
    model = LWayReconstruction(ReconstructionConfig(scale, 64, 16, 16, 2))
    hr = torch.rand(2, 3, *hr_size)
    out = model(hr, torch.rand(2, 3, 40, 48))
    assert out.shape == (2, 3, hr_size[0] // scale, hr_size[1] // scale)
    assert out.dtype == hr.dtype and torch.isfinite(out).all()


def test_reconstructor_rejects_bad_inputs() -> None:
    r = Reconstructor(4, 64, 16, 2)
    e = torch.randn(2, 64)
    with pytest.raises(ValueError, match="multiple of the scale 4"):
        r(torch.rand(2, 3, 64, 62), e)
    with pytest.raises(ValueError, match="exactly one"):
        r(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="exactly one"):
        r(torch.rand(2, 3, 64, 64), e, r.prepare(e))
    with pytest.raises(ValueError, match="embedding batch 2 does not match image batch 3"):
        r(torch.rand(3, 3, 64, 64), e)


def test_encoder_is_size_agnostic_and_per_sample() -> None:
    encoder = DegradationEncoder(embed_dim=512, width=16)
    lr = torch.rand(3, 3, 48, 80)
    e = encoder(lr)
    assert e.shape == (3, 512)
    assert encoder(torch.rand(2, 3, MIN_LR_SIZE, MIN_LR_SIZE)).shape == (2, 512)
    # No batch statistics: a sample's embedding does not depend on the rest of the batch.
    torch.testing.assert_close(encoder(lr[1:2]), e[1:2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least 32x32"):
        encoder(torch.rand(1, 3, 16, 64))


def test_untrained_reconstructor_is_area_downsample(photo) -> None:
    hr = _to_tensor(photo("astronaut", 256))
    lr = F.avg_pool2d(_blur(hr, 1.5), 4)
    out = LWayReconstruction()(hr, lr)
    assert (out - F.avg_pool2d(hr, 4)).abs().mean() < 0.02


def test_embedding_conditions_output(photo) -> None:
    model = _perturb_residual_branch(LWayReconstruction(SMALL))
    hr = _to_tensor(photo("astronaut", 128))
    e1, e2 = torch.randn(1, 64), torch.randn(1, 64)
    r = model.reconstructor
    assert (r(hr, e1) - r(hr, e2)).abs().mean() > 1e-3
    assert torch.equal(r(hr, e1), r(hr, e1.clone()))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_deterministic(mode: str) -> None:
    model = _perturb_residual_branch(LWayReconstruction(SMALL))
    model.train(mode == "train")
    hr, lr = torch.rand(2, 3, 128, 96), torch.rand(2, 3, 32, 40)
    assert torch.equal(model(hr, lr), model(hr, lr))


def test_prepared_styles_match_plain_path() -> None:
    r = _perturb_residual_branch(LWayReconstruction(SMALL)).reconstructor
    hr, e = torch.rand(3, 3, 64, 96), torch.randn(3, 64)
    plain = r(hr, e)
    styles = r.prepare(e)
    assert len(styles.style) == len(styles.demod) == 2 and styles.style[0].shape == styles.demod[0].shape == (3, 16)
    assert (r(hr, styles=styles) - plain).abs().max() <= 1e-6
    picked = styles.select(torch.tensor([2, 2, 0]))
    torch.testing.assert_close(r(hr, styles=picked), r(hr, e[[2, 2, 0]]))
    # One embedding shared by the batch equals giving each sample that embedding.
    torch.testing.assert_close(r(hr, e[:1]), r(hr, e[:1].expand(3, -1)), rtol=1e-5, atol=1e-6)


def test_modulated_conv_equals_per_sample_modulated_filters() -> None:
    # The definition (StyleGAN2): sample b is convolved with W * style_b[in] * demod_b[out]; the layer computes it as
    # demod * conv(style * x, W) for the whole batch at once.
    layer = ModulatedConv2d(8, 6, embed_dim=16)
    with torch.no_grad():
        layer.bias.normal_()
    x, e = torch.randn(3, 8, 12, 10), torch.randn(3, 16)
    style, demod = layer.modulation(e)
    expected = []
    for b in range(3):
        weight = layer.weight * style[b][None, :, None, None] * demod[b][:, None, None, None]
        expected.append(bias_leaky_relu_reference(F.conv2d(x[b : b + 1], weight, padding=1), layer.bias))
    torch.testing.assert_close(layer(x, style, demod), torch.cat(expected), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="embedding batch 2"):
        layer(x, style[:2], demod[:2])


def test_bf16_autocast_runs_the_pytorch_path_close_to_float32(photo) -> None:
    # Under autocast the frozen R leaves the float32 fused op for oneDNN's bf16 convolutions (faster on AMX CPUs).
    # bf16 keeps ~3 significant digits: with the bundled weights on a photo, R's LR stays within a few 8-bit levels.
    model = load_checkpoint(DEFAULT_RECONSTRUCTOR).requires_grad_(False)
    hr = _to_tensor(photo("astronaut", 128))
    lr = F.avg_pool2d(hr, 4)
    r = model.reconstructor
    styles = r.prepare(model.encoder(lr))
    hr.requires_grad_(True)
    reference = r(hr, styles=styles)
    with torch.autocast("cpu", torch.bfloat16):
        out = r(hr, styles=styles)
    assert out.dtype == torch.float32  # the area-downsample skip stays float32
    assert (out - reference).abs().max() < 3 / 255 and (out - reference).abs().mean() < 0.5 / 255
    out.sum().backward()
    assert hr.grad is not None and torch.isfinite(hr.grad).all()


def test_frozen_reconstructor_passes_gradient_to_input_only() -> None:
    model = _perturb_residual_branch(LWayReconstruction(SMALL)).requires_grad_(False)
    lr = torch.rand(2, 3, 32, 32)
    styles = model.reconstructor.prepare(model.encoder(lr))
    hr = torch.rand(2, 3, 128, 128, requires_grad=True)
    loss = (model.reconstructor(hr, styles=styles) - lr).abs().mean()
    loss.backward()
    assert hr.grad is not None and torch.isfinite(hr.grad).all() and hr.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_compiles_without_graph_breaks() -> None:
    # aot_eager traces forward and backward like inductor but skips code generation, keeping the test fast.
    r = _perturb_residual_branch(LWayReconstruction(SMALL)).reconstructor
    hr, e = torch.rand(2, 3, 64, 64), torch.randn(2, 64)
    compiled = torch.compile(r, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(hr, e), r(hr, e))
    styles = r.prepare(e)
    torch.testing.assert_close(compiled(hr, styles=styles), r(hr, styles=styles))


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _perturb_residual_branch(LWayReconstruction()).eval()
    path = tmp_path / "lway-x4.safetensors"
    save_checkpoint(path, model, {"step": 1200, "data": "pairs-v1"})
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    assert path.stat().st_size < 10e6
    info = read_checkpoint_info(path)
    assert info.config == model.config and info.extra == {"step": 1200, "data": "pairs-v1"}
    loaded = load_checkpoint(path, expect_scale=4, expect_embed_dim=512)
    hr, lr = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded(hr, lr), model(hr, lr))


def test_save_rejects_non_json_extra_without_writing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "x.safetensors", LWayReconstruction(SMALL), {"bad": object()})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "small.safetensors"
    save_checkpoint(path, LWayReconstruction(ReconstructionConfig(2, 64, 16, 16, 2)))
    return path


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_load_corrupt_files(small_checkpoint: Path, tmp_path: Path) -> None:
    data = small_checkpoint.read_bytes()
    truncated, garbage, flipped = tmp_path / "t.safetensors", tmp_path / "g.safetensors", tmp_path / "f.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    garbage.write_bytes(bytes(range(256)) * 4)
    flipped.write_bytes(data[:-10] + bytes([data[-10] ^ 0x40]) + data[-9:])  # a weight's bit, not the header
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError, match="not a valid safetensors file"):
            load_checkpoint(path)
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        load_checkpoint(flipped)


def test_load_rejects_foreign_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not an LWay reconstruction checkpoint"):
        load_checkpoint(path)


def test_load_rejects_newer_format(small_checkpoint: Path, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(small_checkpoint), framework="pt") as f:
        metadata = dict(f.metadata())
    path = tmp_path / "future.safetensors"
    save_file(load_file(str(small_checkpoint)), str(path), metadata={**metadata, "format_version": "99"})
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)
    broken = tmp_path / "broken.safetensors"
    save_file(load_file(str(small_checkpoint)), str(broken), metadata={**metadata, "scale": "four"})
    with pytest.raises(CheckpointError, match="damaged LWay metadata"):
        load_checkpoint(broken)


def test_load_checks_scale_and_embedding(small_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint is for x2 but the SR model is x4"):
        load_checkpoint(small_checkpoint, expect_scale=4)
    with pytest.raises(CheckpointError, match="embeddings of size 64, expected 512"):
        load_checkpoint(small_checkpoint, expect_embed_dim=512)
    assert load_checkpoint(small_checkpoint, expect_scale=2, expect_embed_dim=64).config.scale == 2


def test_reconstructor_cost_fits_adaptation_budget() -> None:
    cost = macs_per_lr_pixel(LWayReconstruction())
    # Every R convolution runs at LR resolution: conv_in on 3*4^2 channels, 4 modulated 64->64, conv_out to RGB.
    assert cost.reconstructor_forward == 48 * 64 * 9 + 4 * 64 * 64 * 9 + 64 * 3 * 9
    assert cost.reconstructor_forward < 0.3e6
    assert cost.reconstructor_backward <= cost.reconstructor_forward  # input gradients only, no weight gradients
    # Per step R runs forward and backward; E runs once per image. Even against the SR forward alone that is < 5%.
    assert cost.reconstructor_forward + cost.reconstructor_backward + cost.encoder < 0.05 * RRDBNET_X4_MACS_PER_LR_PIXEL


def test_overfits_one_pair(photo) -> None:
    model = LWayReconstruction(ReconstructionConfig(4, 64, 32, 32, 4))
    hr = _to_tensor(photo("astronaut", 128))
    lr = F.avg_pool2d(_blur(hr, 2.0), 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):
        loss = F.l1_loss(model(hr, lr), lr)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def _with_and_without(head: str, value: int) -> tuple[LWayReconstruction, LWayReconstruction]:
    """SMALL with an added head (config field ``head`` = ``value``; its parameters are named after it), trained-
    looking, and SMALL without it holding the same other weights."""
    with_head = _perturb_residual_branch(LWayReconstruction(ReconstructionConfig(**{**SMALL.__dict__, head: value})))
    without = LWayReconstruction(SMALL)
    prefix = head.split("_")[0]
    without.load_state_dict({k: v for k, v in with_head.state_dict().items() if prefix not in k})
    return with_head, without


def test_colour_head_starts_as_identity_and_every_path_agrees() -> None:
    with_head, without = _with_and_without("colour_head", 1)
    hr, e = torch.rand(3, 3, 64, 64), torch.randn(3, 64)
    torch.testing.assert_close(with_head.reconstructor(hr, e), without.reconstructor(hr, e))
    with torch.no_grad():
        with_head.reconstructor.colour.weight.normal_(std=0.05)
        with_head.reconstructor.colour.bias.normal_(std=0.05)
    r = with_head.reconstructor
    plain = r(hr, e)
    assert (plain - without.reconstructor(hr, e)).abs().max() > 1e-3  # the head now changes the output
    styles = r.prepare(e)
    torch.testing.assert_close(r(hr, styles=styles.select(torch.tensor([1, 0, 2]))), r(hr, e[[1, 0, 2]]))
    r.requires_grad_(False)  # frozen: the C++ op path where it is available
    torch.testing.assert_close(r(hr, styles=r.prepare(e)), plain, atol=1e-5, rtol=1e-5)


def test_colour_head_can_express_a_fade() -> None:
    """A faded print (contrast about mid-grey, colour cast, lifted blacks) is one affine map per channel: exactly
    what the head's matrix diagonal and offset hold."""
    from lway_engine.degradations import ops
    from lway_engine.reconstruction.reconstructor import COLOUR_PARAMS, apply_colour

    contrast, gains, lift = 0.7, torch.tensor([1.05, 0.97, 0.92]), 0.06
    slope = (1 - lift) * gains * contrast
    params = torch.zeros(1, COLOUR_PARAMS)
    params[0, [0, 4, 8]] = slope - 1
    params[0, 9:12] = lift + (1 - lift) * gains * 0.5 * (1 - contrast)
    x = torch.rand(1, 3, 16, 16) * 0.8 + 0.1
    torch.testing.assert_close(apply_colour(x, params), ops.colour_fade(x, contrast, gains.tolist(), lift))


def test_colour_fit_recovers_a_global_colour_map_and_stays_finite_on_flat_crops() -> None:
    """R's colour map fitted to the LR (reconstruction/colour_fit.py): any map of the head's form is recovered from
    the pair, gradients reach R's output, a flat crop (singular normal equations) stays finite, and bf16 autocast
    fits in float32."""
    from lway_engine.reconstruction.colour_fit import fit_colour
    from lway_engine.reconstruction.reconstructor import COLOUR_PARAMS, apply_colour

    torch.manual_seed(0)
    x = torch.rand(2, 3, 24, 24) * 0.8 + 0.1
    params = torch.randn(2, COLOUR_PARAMS) * 0.1
    target = apply_colour(x, params)
    torch.testing.assert_close(fit_colour(x, target, ridge=0.0), target, atol=1e-4, rtol=0)
    assert (fit_colour(x, target) - target).abs().max() < 0.01  # the default ridge barely pulls towards identity
    flat = torch.full((1, 3, 8, 8), 0.4)
    fitted = fit_colour(flat, torch.full_like(flat, 0.5))
    assert torch.isfinite(fitted).all() and (fitted - 0.5).abs().max() < 0.05
    lr_hat = x.clone().requires_grad_()
    (fit_colour(lr_hat, target) - target).square().sum().backward()
    assert lr_hat.grad is not None and torch.isfinite(lr_hat.grad).all() and lr_hat.grad.abs().sum() > 0
    with torch.autocast("cpu", torch.bfloat16):
        assert fit_colour(x.bfloat16(), target).dtype == torch.float32
    with pytest.raises(ValueError, match="one size"):
        fit_colour(x, target[..., :12])


def test_reconstructor_fits_its_colour_to_a_reference_only_when_told() -> None:
    from lway_engine.reconstruction.colour_fit import fit_colour

    with_head, _ = _with_and_without("colour_head", 1)
    r = with_head.reconstructor
    with torch.no_grad():
        r.colour.bias.normal_(std=0.1)  # a head that predicts a cast
        r.conv_out.weight.normal_(std=0.01)
    hr, e = torch.rand(2, 3, 64, 64), torch.randn(2, 64)
    reference = torch.rand(2, 3, 16, 16)
    predicted = r(hr, e)
    torch.testing.assert_close(r(hr, e, reference=reference), fit_colour(_without_colour(r, hr, e), reference))
    assert (r(hr, e, reference=reference) - predicted).abs().max() > 1e-2
    r.colour_fit = False  # the colour head's prediction, as the paper's R and pretraining use it
    torch.testing.assert_close(r(hr, e, reference=reference), predicted)
    with pytest.raises(ValueError, match="colour fit is switched off"):  # pretraining's fit is never skipped silently
        with_head(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 16, 16), fit_colour=True)


def _without_colour(r, hr: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """R's output before its colour map (the head switched off for one call)."""
    head, r.colour = r.colour, None
    try:
        return r(hr, e)
    finally:
        r.colour = head


def test_checkpoint_without_a_later_field_loads_with_its_default(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = tmp_path / "old.safetensors"
    save_checkpoint(path, LWayReconstruction(SMALL))
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    for dropped, loads in (("colour_head", True), ("num_blocks", False)):
        edited = tmp_path / f"without-{dropped}.safetensors"
        save_file(load_file(str(path)), str(edited), metadata={k: v for k, v in metadata.items() if k != dropped})
        if loads:
            assert load_checkpoint(edited).config.colour_head == 0
        else:
            with pytest.raises(CheckpointError, match="num_blocks"):
                load_checkpoint(edited)


def test_blur_head_starts_as_the_area_downsample_and_blurs_like_an_explicit_kernel() -> None:
    from lway_engine.reconstruction.reconstructor import blur_downsample, blur_kernels

    with_head, without = _with_and_without("blur_kernel", 9)
    hr, e = torch.rand(3, 3, 64, 48), torch.randn(3, 64)
    torch.testing.assert_close(with_head.reconstructor(hr, e), without.reconstructor(hr, e))
    # a Gaussian of sigma 1.5 HR px as the predicted kernel: the HR blurred (reflect padding), then area-downsampled
    x = torch.arange(9.0) - 4
    gauss = torch.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * 1.5**2))
    gauss = gauss / gauss.sum()
    identity = F.pad(torch.ones(1, 1), [4] * 4)
    kernels = blur_kernels((gauss - identity).flatten()[None], 9, 4)
    assert kernels.shape == (1, 12, 12) and float(kernels.sum()) == pytest.approx(1.0)
    explicit = F.conv2d(F.pad(hr.reshape(9, 1, 64, 48), [4] * 4, mode="reflect"), gauss[None, None])
    torch.testing.assert_close(blur_downsample(hr, kernels, 4), F.avg_pool2d(explicit.reshape(3, 3, 64, 48), 4))
    # a kernel of any sum keeps the mean colour (the colour head alone sets gains)
    assert float(blur_kernels(torch.rand(1, 81) + 0.3, 9, 4).sum()) == pytest.approx(1.0, abs=1e-5)
    # trained: the head changes R's output, per image, and every path agrees
    r = with_head.reconstructor
    with torch.no_grad():
        r.blur.weight.normal_(std=0.02)
    plain = r(hr, e)
    assert (plain - without.reconstructor(hr, e)).abs().max() > 1e-3
    torch.testing.assert_close(r(hr, styles=r.prepare(e).select(torch.tensor([1, 0, 2]))), r(hr, e[[1, 0, 2]]))
    r.requires_grad_(False)
    torch.testing.assert_close(r(hr, styles=r.prepare(e)), plain, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="odd"):
        ReconstructionConfig(**{**SMALL.__dict__, "blur_kernel": 8})


def test_blur_head_fits_the_adaptation_budget_and_round_trips(tmp_path: Path) -> None:
    config = ReconstructionConfig(**{**SMALL.__dict__, "reconstructor_width": 64, "num_blocks": 6,
                                     "colour_head": 1, "blur_kernel": 21})
    model = LWayReconstruction(config)
    base = macs_per_lr_pixel(LWayReconstruction(ReconstructionConfig(**{**config.__dict__, "blur_kernel": 0})))
    cost = macs_per_lr_pixel(model)
    # the kernel is one grouped stride-4 conv of 24x24 taps per channel: a few percent of R
    assert cost.reconstructor_forward - base.reconstructor_forward == pytest.approx(3 * 24 * 24, rel=0.01)
    path = tmp_path / "blur.safetensors"
    save_checkpoint(path, model)
    assert load_checkpoint(path).config.blur_kernel == 21


def test_blur_basis_spans_real_blur_shapes_and_keeps_the_mean() -> None:
    from lway_engine.degradations import kernels
    from lway_engine.reconstruction.reconstructor import BLUR_COMPONENTS, blur_basis

    basis = blur_basis(21).double()
    assert basis.shape == (BLUR_COMPONENTS, 441)
    torch.testing.assert_close(basis.sum(1), torch.zeros(BLUR_COMPONENTS, dtype=torch.float64), atol=1e-6, rtol=0)
    delta = F.pad(torch.ones(1, 1, dtype=torch.float64), [10] * 4).flatten()
    for kernel in (kernels.motion(21, 12.0, 0.7), kernels.disc(21, 4.0), kernels.gaussian(21, 2.5, 1.0, 0.3)):
        target = torch.from_numpy(kernel).flatten() - delta
        coefficients = torch.linalg.lstsq(basis.T, target[:, None]).solution
        residual = (basis.T @ coefficients)[:, 0] - target
        assert float(residual.norm() / target.norm()) < 0.15  # measured 0.7% (Gaussian) to 7% (motion)
