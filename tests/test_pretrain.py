"""Step 1: pair discovery, on-the-fly synthetic pairs, and a resumable pretraining run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageFilter
from safetensors.torch import load_file

from lway_engine.media.images import Image, write_image
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.reconstruction import CheckpointError, LWayReconstruction, ReconstructionConfig, load_checkpoint
from lway_engine.training.data import PairSource, Sample, find_pairs
from lway_engine.training.pretrain import PretrainConfig, pretrain, pretrain_files, validation_loss

SMALL = ReconstructionConfig(scale=4, embed_dim=16, encoder_width=8, reconstructor_width=8, num_blocks=1)


@pytest.fixture()
def data(tmp_path: Path, photo) -> tuple[list[Path], list[tuple[Path, Path]]]:
    hr_files = []
    for name in ("astronaut", "coffee"):
        hr_files.append(tmp_path / "hr" / f"{name}.png")
        write_image(hr_files[-1], Image(photo(name, 160), None, 8))
    hr = (photo("chelsea", 160) * 255).round().astype(np.uint8)
    blurred = np.asarray(PILImage.fromarray(hr).filter(ImageFilter.GaussianBlur(2)), np.float32) / 255
    write_image(tmp_path / "pairs" / "001H.png", Image(hr.astype(np.float32) / 255, None, 8))
    write_image(tmp_path / "pairs" / "001L.png", Image(blurred, None, 8))  # registered at HR size, as City100
    write_image(tmp_path / "pairs" / "cam_HR.png", Image(hr.astype(np.float32) / 255, None, 8))
    write_image(tmp_path / "pairs" / "cam_LR4.png", Image(blurred[::4, ::4].copy(), None, 8))  # already LR size
    (tmp_path / "pairs" / "002H.png").write_bytes((tmp_path / "pairs" / "001H.png").read_bytes())  # no partner
    return hr_files, find_pairs([tmp_path / "pairs"], 4)


def test_pairs_are_found_and_brought_to_lr_size(data) -> None:
    hr_files, pairs = data
    assert [(h.name, lr.name) for h, lr in pairs] == [("001H.png", "001L.png"), ("cam_HR.png", "cam_LR4.png")]
    source = PairSource.load(hr_files, pairs, 4)
    for hr, lr in source.real_pairs:
        assert hr.shape == (3, 160, 160) and lr.shape == (3, 40, 40)
    rng = np.random.default_rng(0)
    hr, lr, kernel = source.batch(rng, 5, 24, real_fraction=0.5)
    assert hr.shape == (5, 3, 96, 96) and lr.shape == (5, 3, 24, 24) and kernel.shape == (5, 0, 0)
    assert 0 <= float(lr.min()) and float(lr.max()) <= 1
    small = PairSource.load(hr_files, pairs, 4, min_hr_side=200)
    assert not small.hr_images and not small.real_pairs
    assert len(small.report.skipped) == 4 and "smaller than the crop" in small.report.summary()


def test_real_pairs_are_drawn_camera_by_camera() -> None:
    """One camera's 9 pairs must not crowd out another's single pair; one camera keeps the plain uniform draw."""
    pair = (torch.zeros(3, 32, 32, dtype=torch.uint8), torch.zeros(3, 8, 8, dtype=torch.uint8))
    source = PairSource(4, [], [pair] * 10, real_camera=[0] + [1] * 9)
    draws = [source._draw_real(np.random.default_rng([7, i])) for i in range(2000)]
    assert abs(draws.count(0) / len(draws) - 0.5) < 0.05
    assert set(draws) == set(range(10))
    one = PairSource(4, [], [pair] * 10, real_camera=[0] * 10)
    assert [one._draw_real(np.random.default_rng([7, i])) for i in range(50)] == \
        [int(np.random.default_rng([7, i]).integers(10)) for i in range(50)]


def test_pretraining_learns_and_resumes_bit_for_bit(data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hr_files, pairs = data
    config = PretrainConfig(steps=6, batch=2, crop=32, lr=1e-3, checkpoint_every=3, val_every=3, val_samples=4)

    def source() -> PairSource:
        return PairSource.load(hr_files, pairs, 4)

    straight = tmp_path / "straight.safetensors"
    log = pretrain(source(), source(), straight, config, SMALL, progress=False)
    assert [v[0] for v in log["val"]] == [3, 6] and len(log["train"]) == 6
    assert load_checkpoint(straight, expect_scale=4).config == SMALL

    interrupted = tmp_path / "interrupted.safetensors"
    calls = []
    original_batch = PairSource.batch

    def failing_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original_batch(self, *args, **kwargs)

    monkeypatch.setattr(PairSource, "batch", failing_batch)
    with pytest.raises(KeyboardInterrupt):
        pretrain(source(), source(), interrupted, config, SMALL, progress=False)
    monkeypatch.setattr(PairSource, "batch", original_batch)
    resumed = pretrain(source(), source(), interrupted, config, SMALL, resume=True, progress=False)
    assert len(resumed["train"]) == 6
    a, b = load_file(str(straight)), load_file(str(interrupted))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_training_files_are_skipped_or_converted_with_counts(tmp_path: Path, photo) -> None:
    rgb = photo("astronaut", 160)
    write_image(tmp_path / "colour.png", Image(rgb, None, 8))
    write_image(tmp_path / "grey.png", Image(rgb.mean(axis=2, keepdims=True), None, 8))
    write_image(tmp_path / "deep.png", Image(rgb, None, 16))
    write_image(tmp_path / "tiny.png", Image(rgb[:50, :50], None, 8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    files = sorted(tmp_path.glob("*.png"))
    source = PairSource.load(files, [], 4, min_hr_side=128)
    assert len(source.hr_images) == 3 and all(img.shape[0] == 3 for img in source.hr_images)
    assert source.report.converted == {"greyscale": 1, "16-bit": 1}
    assert set(source.report.skipped) == {"tiny.png", "broken.png"}
    summary = source.report.summary()
    assert "1 skipped (unreadable)" in summary and "1 skipped (smaller than the crop)" in summary
    hr, lr, _ = source.batch_for_step(0, 3, 2, 32, 0.0)
    assert torch.equal(hr, source.batch_for_step(0, 3, 2, 32, 0.0)[0])  # a pure function of (seed, step)
    assert lr.shape == (2, 3, 32, 32)
    # nothing usable left for training (one readable file, held out for validation): a clear error, no crash
    with pytest.raises(ValueError, match="no usable training images"):
        pretrain_files([tmp_path / "broken.png", tmp_path / "colour.png"], [], tmp_path / "out.safetensors",
                       PretrainConfig(steps=1, crop=32), SMALL, echo=lambda message: None)


def test_warm_start_adds_a_head_as_the_identity_and_refuses_other_shapes(tmp_path: Path) -> None:
    from lway_engine.reconstruction import save_checkpoint
    from lway_engine.training.pretrain import warm_start

    source = LWayReconstruction(SMALL)
    with torch.no_grad():
        source.reconstructor.conv_out.weight.normal_(std=0.1)  # trained-looking: e changes the output
    path = tmp_path / "source.safetensors"
    save_checkpoint(path, source)
    grown = LWayReconstruction(ReconstructionConfig(**{**SMALL.__dict__, "blur_kernel": 5}))
    warm_start(grown, path)
    hr, lr = torch.rand(2, 3, 128, 128), torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(grown(hr, lr), source(hr, lr))
    wider = LWayReconstruction(ReconstructionConfig(**{**SMALL.__dict__, "reconstructor_width": 32}))
    with pytest.raises(ValueError, match="do not fit"):
        warm_start(wider, path)


def test_kernel_supervision_fits_rs_blur_to_the_plans_optics(data, tmp_path: Path) -> None:
    """``--kernel-weight``: synthetic samples carry their optics kernel, real pairs none (masked out), and the
    auxiliary loss pulls R's blur kernel from the delta it starts as towards those kernels."""
    hr_files, pairs = data
    source = PairSource.load(hr_files, pairs, 4)
    plain = source.batch_for_step(0, 1, 6, 32, 0.5)
    source.kernel_size = 9
    batch = source.batch_for_step(0, 1, 6, 32, 0.5)
    assert torch.equal(batch.lr, plain.lr)  # drawing the kernel leaves the sample stream as it was
    real = torch.isnan(batch.kernel[:, 0, 0])
    assert 0 < int(real.sum()) < 6 and torch.isnan(batch.kernel[real]).all()
    torch.testing.assert_close(batch.kernel[~real].sum((1, 2)), torch.ones(int((~real).sum())))

    blurred = ReconstructionConfig(**{**SMALL.__dict__, "blur_kernel": 9})
    config = PretrainConfig(steps=8, batch=4, crop=32, lr=3e-3, checkpoint_every=4, val_every=4, val_samples=8,
                            real_fraction=0.3, kernel_weight=10.0)
    log = pretrain(PairSource.load(hr_files, pairs, 4), PairSource.load(hr_files, pairs, 4),
                   tmp_path / "k.safetensors", config, blurred, progress=False)
    assert len(log["train"][0]) == 5  # step, total, l1, lpips, kernel
    val = PairSource.load(hr_files, pairs, 4)
    val.kernel_size = 9
    samples = [val.sample(np.random.default_rng(i), 32, 0.0) for i in range(8)]
    untrained = validation_loss(LWayReconstruction(blurred), LPIPS("alex"), samples, config)["kernel"]
    trained = validation_loss(load_checkpoint(tmp_path / "k.safetensors", expect_scale=4), LPIPS("alex"), samples,
                              config)["kernel"]
    assert trained < 0.8 * untrained  # 0.70 -> 0.46 in 8 steps here
    with pytest.raises(ValueError, match="--blur-kernel"):
        pretrain(source, source, tmp_path / "none.safetensors", config, SMALL, progress=False)


def test_colour_fit_pretraining_fits_the_map_and_freezes_the_head(data, tmp_path: Path, photo) -> None:
    """``--colour-fit``: R's colour map is fitted to each LR, as in adaptation, so a pure colour cast costs nothing
    from the first step, and the colour head (no gradient through the fit) keeps its weights."""
    hr_files, pairs = data
    headed = ReconstructionConfig(**{**SMALL.__dict__, "colour_head": 1})
    fitted = PretrainConfig(steps=4, batch=4, crop=32, lr=3e-3, checkpoint_every=4, val_every=4, val_samples=4,
                            colour_fit=True)
    hr = torch.from_numpy(photo("astronaut", 128).transpose(2, 0, 1).copy())[None]
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    cast = (lr * torch.tensor([0.8, 1.0, 1.15])[:, None, None] + 0.03).clamp(0, 1)  # warm-balance error
    sample = [Sample(hr[0], cast[0], torch.zeros(0, 0))]
    model = LWayReconstruction(headed)
    with_fit = validation_loss(model, LPIPS("alex"), sample, fitted)["l1"]
    without = validation_loss(model, LPIPS("alex"), sample, PretrainConfig(colour_fit=False))["l1"]
    assert with_fit < 0.1 * without  # the identity-initialised R is the area downsample: only the cast is left

    log = pretrain(PairSource.load(hr_files, pairs, 4), PairSource.load(hr_files, pairs, 4),
                   tmp_path / "c.safetensors", fitted, headed, progress=False)
    assert all(np.isfinite(row[1]) for row in log["train"])
    trained = load_checkpoint(tmp_path / "c.safetensors", expect_scale=4)
    assert not trained.reconstructor.colour.weight.any() and not trained.reconstructor.colour.bias.any()
    assert trained.reconstructor.conv_out.weight.any()  # the rest of R did train


def test_mix_draws_only_the_pipelines_it_names_and_bad_mixes_are_refused(data, tmp_path: Path) -> None:
    """``pretrain --mix``: a mix of the resize pipeline alone gives plain downsamples of the HR (no noise, JPEG or
    blur), the config records it, and a mix with an unknown name, bad odds or nothing to draw is a usage error."""
    from typer.testing import CliRunner

    from lway_engine.cli import app
    from lway_engine.degradations.catalog import parse_mix

    assert parse_mix("broad=3, resize=1") == {"broad": 3.0, "resize": 1.0}
    for bad, why in (("broad", "NAME=ODDS"), ("blurry=1", "not a training pipeline"), ("broad=x", "a number"),
                     ("broad=-1", ">= 0"), ("broad=nan", ">= 0"), ("broad=1,broad=2", "twice"),
                     ("resize=0", "above 0")):
        with pytest.raises(ValueError, match=why):
            parse_mix(bad)
    hr_files, _ = data
    source = PairSource.load(hr_files, [], 4)
    source.pipelines = parse_mix("resize=1")
    hr, lr, _ = source.batch(np.random.default_rng(0), 4, 24, real_fraction=0.0)
    area = torch.nn.functional.avg_pool2d(hr, 4)
    assert float((lr - area).abs().mean()) < 0.02  # a resize of the crop, nothing else: close to its area mean
    out = tmp_path / "mix.safetensors"
    config = PretrainConfig(steps=1, batch=2, crop=32, checkpoint_every=1, val_every=1, val_samples=2,
                            mix=parse_mix("resize=1,bsrgan=1"))
    log = pretrain_files([hr_files[0].parent], [], out, config, SMALL)
    assert log["config"]["mix"] == {"resize": 1.0, "bsrgan": 1.0}
    result = CliRunner().invoke(app, ["pretrain", "-o", str(tmp_path / "x.safetensors"), "--hr",
                                      str(hr_files[0].parent), "--mix", "resize=1,noise=2"])
    assert result.exit_code != 0 and "'noise' is not a training pipeline" in result.output


def test_error_model_outlier_samples_are_training_samples_with_a_defect(tmp_path: Path, photo, bench) -> None:
    """``bench/fit_error_model.py``'s outlier samples: the training sample its own seeded stream draws (the same HR),
    its LR changed by each defect in turn, reproducibly, and drawn apart from the plain samples' stream."""
    module = bench("fit_error_model")
    write_image(tmp_path / "astronaut.png", Image(photo("astronaut", 300), None, 8))
    source = PairSource.load([tmp_path / "astronaut.png"], [], 4, pipelines={"resize": 1.0})
    outliers = module.outlier_pairs(source, 3, 7)
    rng = np.random.default_rng([7, 1])
    for (hr, lr, origin), kind in zip(outliers, module.OUTLIERS):
        plain = source.sample(rng, module.TILE, module.REAL_FRACTION)
        assert origin == f"outlier:{kind}" and torch.equal(hr, plain.hr)
        assert not torch.equal(lr, plain.lr) and lr.shape == plain.lr.shape
        assert torch.equal(lr, module.add_outlier(plain.lr, kind, rng))
    again = module.outlier_pairs(source, 3, 7)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(outliers, again))
    fresh = source.sample(np.random.default_rng(7), module.TILE, module.REAL_FRACTION)
    assert not torch.equal(outliers[0][0], fresh.hr)


def test_labelled_samples_are_the_same_draws_with_their_origin(tmp_path: Path, photo) -> None:
    """``labelled_sample`` draws exactly what ``sample`` draws (the fit's samples do not change with the labels) and
    names the pipeline or the real pair's camera folder."""
    for name, folder in (("astronaut", "CamA"), ("coffee", "CamB")):
        (tmp_path / folder).mkdir()
        image = photo(name, 256)
        write_image(tmp_path / folder / "001H.png", Image(image, None, 8))
        write_image(tmp_path / folder / "001L.png", Image(image[::4, ::4], None, 8))
    write_image(tmp_path / "chelsea.png", Image(photo("chelsea", 256), None, 8))
    source = PairSource.load([tmp_path / "chelsea.png"], find_pairs([tmp_path / "CamA", tmp_path / "CamB"], 4), 4,
                             pipelines={"resize": 1.0, "bsrgan": 1.0})
    labelled = [source.labelled_sample(np.random.default_rng(i), 16, 0.5) for i in range(24)]
    plain = [source.sample(np.random.default_rng(i), 16, 0.5) for i in range(24)]
    assert all(torch.equal(a.lr, b.lr) and torch.equal(a.hr, b.hr) for (a, _), b in zip(labelled, plain))
    assert {origin for _, origin in labelled} == {"resize", "bsrgan", "camera:CamA", "camera:CamB"}


def test_error_model_heldout_report_finds_a_biased_origin(bench) -> None:
    """The fit's held-out report, per origin: a kind whose error the features cannot tell apart from another's
    shows as a true/predicted factor away from 1 (what the resize crops showed, 0.80), the others near 1."""
    module = bench("fit_error_model")
    from lway_engine.reconstruction.error_model import fit_features

    rng = np.random.default_rng(0)
    origins = ["resize" if i % 3 == 0 else "bsrgan" for i in range(600)] + ["outlier:impulse"] * 100
    x = torch.from_numpy(rng.normal(size=(700, 4)))
    resize = torch.tensor([o == "resize" for o in origins])
    y = x @ torch.tensor([0.5, -0.3, 0.2, 0.0], dtype=torch.float64) + torch.where(resize, -0.3, 0.1)
    report = module.heldout_report(x, y, origins, 600, lambda xf, yf: fit_features(xf, yf, "", True))
    kinds = report["plain"]["by_origin"]
    assert set(kinds) == {"resize", "bsrgan"} and sum(k["samples"] for k in kinds.values()) == 120
    assert kinds["resize"]["true_over_predicted"] < 0.8 < 1.05 < kinds["bsrgan"]["true_over_predicted"]
    assert set(report["outliers"]["by_origin"]) == {"outlier:impulse"}


def test_cli_names_unusable_checkpoints_resume_state_and_inputs(data, tmp_path: Path) -> None:
    """One line and exit 2 for what cannot run (a corrupt --init-from, a truncated resume state, a missing --hr),
    a notice where --resume finds nothing, and no unusable option value reaches training."""
    from typer.testing import CliRunner

    from lway_engine.cli import app

    hr_files, _ = data
    small = ["--hr", str(hr_files[0].parent), "--steps", "1", "--batch", "2", "--crop", "32", "--embed-dim", "16",
             "--blocks", "1", "--width", "8", "--workers", "0"]
    out = tmp_path / "er.safetensors"

    def run(*args: str):
        return CliRunner().invoke(app, ["pretrain", "-o", str(out), *small, *args])

    fresh = run("--resume")
    assert fresh.exit_code == 0 and "nothing to resume" in fresh.output, fresh.output
    state = out.with_suffix(".state.pt")
    state.write_bytes(state.read_bytes()[:1000])
    broken = run("--resume")
    assert broken.exit_code == 2 and "not a readable resume state" in broken.output
    (tmp_path / "random.safetensors").write_bytes(bytes(range(200)))
    for args, why in ((("--init-from", str(tmp_path / "random.safetensors")), "not a valid safetensors file"),
                      (("--init-from", str(tmp_path / "missing.safetensors")), "not found"),
                      (("--hr", str(tmp_path / "missing")), "missing: no such file or folder")):
        result = run(*args)
        assert result.exit_code == 2 and why in result.output and not isinstance(result.exception, CheckpointError)
    for option, value in (("--batch", "0"), ("--checkpoint-every", "0"), ("--steps", "-1"), ("--holdout", "-0.5")):
        result = run(option, value)
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
