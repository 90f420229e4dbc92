"""Step 2 pieces: the HF weight map against a float64 reference, the trainable subset, the adaptation loop's fault
handling, adapted weights in the input's layout, and `adapt` end to end on a real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lway_engine.adaptation.hf_weight import EPS, TAU, hf_weight_map, weighted_l1
from lway_engine.adaptation.loop import AdaptConfig, adapt
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.trainable import select_trainable
from lway_engine.adapted_weights import OriginalLayout


def _reference_weight(x: torch.Tensor) -> torch.Tensor:
    """Loop-based float64 statement of the documented formula."""
    x = x.double()
    b, c, h, w = x.shape
    hp, wp = h + h % 2, w + w % 2
    padded = torch.nn.functional.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
    m = torch.zeros(b, hp // 2, wp // 2, dtype=torch.float64)
    for i in range(hp // 2):
        for j in range(wp // 2):
            a, bb = padded[:, :, 2 * i, 2 * j], padded[:, :, 2 * i, 2 * j + 1]
            cc, d = padded[:, :, 2 * i + 1, 2 * j], padded[:, :, 2 * i + 1, 2 * j + 1]
            bands = ((a - bb + cc - d) / 2) ** 2 + ((a + bb - cc - d) / 2) ** 2 + ((a - bb - cc + d) / 2) ** 2
            m[:, i, j] = bands.mean(dim=1).sqrt()
    scale = TAU * m.mean(dim=(1, 2), keepdim=True) + EPS
    full = (m / scale).clamp(max=1).repeat_interleave(2, 1).repeat_interleave(2, 2)
    return full[:, None, :h, :w]


@pytest.mark.parametrize("shape", [(1, 3, 9, 14), (2, 1, 16, 7), (3, 3, 5, 5)])
def test_hf_weight_matches_the_float64_reference(shape: tuple[int, ...]) -> None:
    x = torch.rand(shape) * 1.4 - 0.2  # values outside [0, 1] too
    w = hf_weight_map(x)
    assert w.shape == (shape[0], 1, *shape[2:])
    torch.testing.assert_close(w.double(), _reference_weight(x), rtol=1e-5, atol=1e-6)


def test_hf_weight_is_zero_on_flat_areas_and_one_on_edges() -> None:
    x = torch.full((1, 3, 32, 32), 0.5)
    assert torch.equal(hf_weight_map(x), torch.zeros(1, 1, 32, 32))  # constant image: defined, no NaN
    x[..., :, 17:] = 1.0  # a vertical edge inside the 2x2 blocks of columns 16-17
    w = hf_weight_map(x)
    assert float(w[..., 16:18].min()) == 1.0 and float(w[..., :14].max()) == 0.0
    assert float(weighted_l1(x, x, w)) == 0.0


def test_trainable_fraction_is_taken_from_the_output_end(compact) -> None:
    names = select_trainable(compact.module, 0.65)
    params = dict(compact.module.named_parameters())
    total = sum(p.numel() for p in params.values())
    chosen = sum(params[n].numel() for n in names)
    largest = max(p.numel() for p in params.values())
    assert 0.65 * total <= chosen < 0.65 * total + largest
    assert names[-1] == list(params)[-1]  # the output layer is always trained
    assert all(params[n].requires_grad for n in names) and sum(p.requires_grad for p in params.values()) == len(names)
    assert select_trainable(compact.module, patterns=["body.0.*"]) == ["body.0.weight", "body.0.bias"]
    with pytest.raises(ValueError, match="no parameter matches"):
        select_trainable(compact.module, patterns=["nothing*"])
    compact.module.requires_grad_(False)


def _lr_images(photo) -> list[torch.Tensor]:
    return [torch.from_numpy(photo(name, 40).transpose(2, 0, 1).copy()) for name in ("astronaut", "coffee")]


def test_loop_updates_only_the_trainable_subset(fresh_compact, small_reconstruction, lpips_alex, photo) -> None:
    before = {k: v.clone() for k, v in fresh_compact.module.state_dict().items()}
    config = AdaptConfig(iterations=4, lr=1e-4, batch=2, crop=32, trainable_patterns=("body.34.*",))
    log = adapt(fresh_compact, _lr_images(photo), small_reconstruction, LWayLoss(lpips_alex), config, progress=False)
    assert log.status == "done" and len(log.loss) == 4 and log.crop == 32
    after = fresh_compact.module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"body.34.weight", "body.34.bias"}


def test_nan_loss_restores_the_last_good_weights(fresh_compact, small_reconstruction, lpips_alex, photo) -> None:
    calls = []

    def poison(module, args, output):
        calls.append(1)
        return output * float("nan") if len(calls) == 3 else output

    fresh_compact.module.register_forward_hook(poison)
    config = AdaptConfig(iterations=10, lr=1e-4, batch=2, crop=32)
    log = adapt(fresh_compact, _lr_images(photo), small_reconstruction, LWayLoss(lpips_alex), config, progress=False)
    assert log.status == "diverged" and len(log.loss) == 2 and "restored" in log.message
    assert all(torch.isfinite(p).all() for p in fresh_compact.module.parameters())


def test_ctrl_c_stops_cleanly(fresh_compact, small_reconstruction, lpips_alex, photo) -> None:
    calls = []

    def interrupt(module, args, output):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return output

    fresh_compact.module.register_forward_hook(interrupt)
    config = AdaptConfig(iterations=10, lr=1e-4, batch=2, crop=32)
    log = adapt(fresh_compact, _lr_images(photo), small_reconstruction, LWayLoss(lpips_alex), config, progress=False)
    assert log.status == "interrupted" and len(log.loss) == 2


def test_adapted_weights_keep_the_input_keys(fresh_compact, tmp_path: Path) -> None:
    import spandrel
    from safetensors.torch import load_file

    layout = OriginalLayout(fresh_compact.module, fresh_compact.path)
    with torch.no_grad():
        for p in fresh_compact.module.parameters():
            p.add_(0.01)
    [path] = layout.save(fresh_compact.module, tmp_path / "adapted.safetensors")
    original, saved = load_file(str(fresh_compact.path)), load_file(str(path))
    assert list(saved) == list(original)
    assert all(torch.allclose(saved[k], original[k] + 0.01) for k in original)
    reloaded = spandrel.ModelLoader().load_from_file(path)
    assert reloaded.architecture.id == "Compact"


def test_adapt_command_end_to_end(tmp_path: Path, small_reconstruction, photo) -> None:
    from lway_engine.cli import app
    from lway_engine.media.images import Image, read_image, write_image
    from lway_engine.reconstruction import save_checkpoint

    ckpt = tmp_path / "er.safetensors"
    save_checkpoint(ckpt, small_reconstruction)
    for name in ("astronaut", "coffee"):
        write_image(tmp_path / "lr" / f"{name}.png", Image(photo(name, 36), None, 8))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["adapt", str(tmp_path / "lr"), "-o", str(out), "--model",
                                      "realesr-animevideov3", "--reconstructor", str(ckpt), "--iterations", "3",
                                      "--batch", "2", "--crop", "32", "--lr", "1e-4"])
    assert result.exit_code == 0, result.output
    for sub in ("sr_before", "sr_after"):
        assert read_image(out / sub / "coffee.png").size == (144, 144)
    assert read_image(out / "compare" / "astronaut.png").size == (144, 432)
    report = json.loads((out / "report.json").read_text())
    assert report["runs"]["all"]["status"] == "done" and len(report["runs"]["all"]["loss"]) == 3
    assert (out / "weights" / "adapted.safetensors").exists() and (out / "report.md").exists()

    wrong = CliRunner().invoke(app, ["adapt", str(tmp_path / "lr"), "-o", str(out), "--model",
                                     "realesr-animevideov3", "--reconstructor", str(tmp_path / "missing.safetensors")])
    assert wrong.exit_code == 2
    small_crop = CliRunner().invoke(app, ["adapt", str(tmp_path / "lr"), "-o", str(out), "--model",
                                          "realesr-animevideov3", "--reconstructor", str(ckpt), "--crop", "16"])
    assert small_crop.exit_code == 2 and "a 16 px crop is too small" in small_crop.output
    into_a_file = CliRunner().invoke(app, ["adapt", str(tmp_path / "lr"), "-o", str(ckpt)])
    assert into_a_file.exit_code == 2 and "is a file" in into_a_file.output
    under_a_file = CliRunner().invoke(app, ["adapt", str(tmp_path / "lr"), "-o", str(ckpt / "out")])
    assert under_a_file.exit_code == 2 and "cannot create the output folder" in under_a_file.output
    into_the_inputs = CliRunner().invoke(app, ["adapt", str(tmp_path / "lr"), "-o", str(tmp_path / "lr" / "out")])
    assert into_the_inputs.exit_code == 2 and "inside the input folder" in into_the_inputs.output
    assert sorted(p.name for p in (tmp_path / "lr").iterdir()) == ["astronaut.png", "coffee.png"]


def test_per_image_mode_writes_one_adapted_model_per_image(tmp_path: Path, small_reconstruction, fresh_compact,
                                                           photo) -> None:
    from lway_engine.adaptation.run import run_adaptation
    from lway_engine.media.images import Image, write_image

    files = []
    for name in ("astronaut", "coffee"):
        files.append(tmp_path / "lr" / f"{name}.png")
        write_image(files[-1], Image(photo(name, 36), None, 8))
    config = AdaptConfig(iterations=2, lr=1e-4, batch=2, crop=32)
    runs = run_adaptation(fresh_compact, files, tmp_path / "out", small_reconstruction, config, per_image=True,
                          progress=False)
    assert sorted(runs) == ["astronaut", "coffee"] and all(log.status == "done" for log in runs.values())
    weights = sorted(p.name for p in (tmp_path / "out" / "weights").iterdir())
    assert weights == ["astronaut.safetensors", "coffee.safetensors"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["settings"]["mode"] == "per-image"


def test_inputs_too_small_to_crop_fail_plainly_before_any_work(tmp_path: Path, small_reconstruction, fresh_compact,
                                                               lpips_alex, photo) -> None:
    """Below the loss's LPIPS minimum, ``adapt`` names each small image (per image too, before the first is adapted)
    or the crop, and writes nothing; settings no run can use fail when the config is made."""
    from lway_engine.adaptation.run import run_adaptation
    from lway_engine.media.images import Image, write_image

    minimum = lpips_alex.min_side  # the loss's network; the Compact model takes any multiple
    files = [tmp_path / "lr" / "coffee.png", tmp_path / "lr" / "icon.png"]
    write_image(files[0], Image(photo("coffee", 36), None, 8))
    write_image(files[1], Image(photo("astronaut", minimum - 1), None, 8))
    config = AdaptConfig(iterations=2, lr=1e-4, batch=2, crop=32)
    for per_image in (True, False):
        with pytest.raises(ValueError, match=rf"at least {minimum} px .*: icon.png \({minimum - 1}x{minimum - 1}\)"):
            run_adaptation(fresh_compact, files, tmp_path / "out", small_reconstruction, config, per_image,
                           progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(ValueError, match=f"a 16 px crop is too small: .* at least {minimum} px"):
        adapt(fresh_compact, _lr_images(photo), small_reconstruction, LWayLoss(lpips_alex), AdaptConfig(crop=16),
              progress=False)
    for bad in ({"batch": 0}, {"iterations": -1}, {"lr": -1e-4}, {"lr": float("nan")}, {"trainable_fraction": 0},
                {"trainable_fraction": 1.5}):
        with pytest.raises(ValueError):
            AdaptConfig(**bad)


def test_a_whole_set_run_that_crashes_still_reports_its_steps_and_the_error(tmp_path: Path, small_reconstruction,
                                                                           fresh_compact, photo) -> None:
    from lway_engine.adaptation.run import run_adaptation
    from lway_engine.media.images import Image, write_image

    files = []
    for name in ("astronaut", "coffee"):
        files.append(tmp_path / "lr" / f"{name}.png")
        write_image(files[-1], Image(photo(name, 36), None, 8))
    steps = []

    def fail_in_third_step(module, args, output):  # training forwards run with gradients; inference ones without
        if torch.is_grad_enabled():
            steps.append(1)
            if len(steps) == 3:
                raise RuntimeError("out of memory at step 3")
        return output

    fresh_compact.module.register_forward_hook(fail_in_third_step)
    config = AdaptConfig(iterations=10, lr=1e-4, batch=2, crop=32, select=False)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="out of memory at step 3"):
        run_adaptation(fresh_compact, files, out, small_reconstruction, config, per_image=False, progress=False)
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["mode"] == "whole-set" and report["settings"]["iterations"] == 10
    run = report["runs"]["all"]
    assert run["status"] == "failed" and len(run["loss"]) == 2 and "out of memory at step 3" in run["message"]
    assert "RuntimeError: out of memory at step 3" in (out / "report.md").read_text()


def test_ctrl_c_while_the_results_are_written_still_leaves_a_report_that_says_so(tmp_path: Path, small_reconstruction,
                                                                                fresh_compact, photo) -> None:
    """Ctrl-C in training ends the loop cleanly (loop.py); after it, while the adapted model upscales the images,
    it used to leave new weights beside an earlier run's report and images, without a word."""
    from lway_engine.adaptation.run import run_adaptation
    from lway_engine.media.images import Image, write_image

    files = []
    for name in ("astronaut", "coffee"):
        files.append(tmp_path / "lr" / f"{name}.png")
        write_image(files[-1], Image(photo(name, 36), None, 8))
    trained = []

    def ctrl_c_after_training(module, args, output):
        if torch.is_grad_enabled():
            trained.append(1)
        elif trained:  # the first upscale with the adapted weights
            raise KeyboardInterrupt
        return output

    fresh_compact.module.register_forward_hook(ctrl_c_after_training)
    config = AdaptConfig(iterations=2, lr=1e-4, batch=2, crop=32, select=False)
    with pytest.raises(KeyboardInterrupt):
        run_adaptation(fresh_compact, files, tmp_path / "out", small_reconstruction, config, per_image=False,
                       progress=False)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    run = report["runs"]["all"]
    assert run["status"] == "interrupted" and len(run["loss"]) == 2
    assert "incomplete" in report["decisions"]["all"]["reason"] and not report["decisions"]["all"]["adapted"]


def _outputs_after_adapting(model, images: list[torch.Tensor], reconstruction, lpips_alex,
                            configs: list[AdaptConfig]) -> tuple[torch.Tensor, list[tuple[torch.Tensor, object]]]:
    """S0's output on the stacked images, then per config (each from the same weights) S's output and the log."""
    x = torch.stack(images)
    original = {k: v.clone() for k, v in model.module.state_dict().items()}
    with torch.no_grad():
        before = model.module(x)
    runs = []
    for config in configs:
        model.module.load_state_dict(original)
        log = adapt(model, images, reconstruction, LWayLoss(lpips_alex), config, progress=False)
        with torch.no_grad():
            runs.append((model.module(x), log))
    return before, runs


def test_anchor_holds_flat_areas_to_the_unadapted_output(fresh_compact, small_reconstruction, lpips_alex,
                                                         photo) -> None:
    from lway_engine.adaptation.hf_weight import hf_weight_map

    images = _lr_images(photo)
    configs = [AdaptConfig(iterations=6, lr=1e-3, batch=2, crop=32, anchor=a) for a in (0.0, 10.0)]
    before, runs = _outputs_after_adapting(fresh_compact, images, small_reconstruction, lpips_alex, configs)
    flat = 1 - torch.nn.functional.interpolate(hf_weight_map(torch.stack(images)), size=before.shape[-2:],
                                               mode="nearest")
    drift = [float((flat * (after - before)).abs().mean()) for after, _ in runs]
    first_loss = [log.loss[0] for _, log in runs]
    assert first_loss[1] == pytest.approx(first_loss[0], rel=1e-5)  # S == S0 at the first step: no extra loss
    assert drift[0] > 1e-3  # the plain loss really moves flat areas
    assert drift[1] < 0.5 * drift[0]
    with pytest.raises(ValueError, match="must be >= 0"):
        adapt(fresh_compact, images, small_reconstruction, LWayLoss(lpips_alex), AdaptConfig(anchor=-1.0),
              progress=False)


def test_above_lr_band_is_what_the_lr_cannot_hold() -> None:
    from lway_engine.adaptation.step import above_lr_band

    ramp = torch.linspace(0, 1, 64).expand(1, 3, 64, 64).contiguous()  # smooth: all of it in the LR band
    assert above_lr_band(ramp, 4)[..., 4:-4, 4:-4].abs().max() < 1e-3
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None]) % 2 * 1.0  # SR Nyquist: none of it in the LR band
    band = above_lr_band(checker.expand(1, 3, 64, 64), 4)
    assert torch.allclose(band, checker - 0.5, atol=1e-6)


def test_detail_term_holds_only_the_band_above_the_lr(fresh_compact, small_reconstruction, lpips_alex,
                                                      photo) -> None:
    """With a detail weight, S's above-LR-band content stays near S0's while its LR band still moves."""
    from lway_engine.adaptation.step import above_lr_band

    images = _lr_images(photo)
    configs = [AdaptConfig(iterations=6, lr=1e-4, batch=2, crop=32, detail=d) for d in (0.0, 5.0)]
    before, runs = _outputs_after_adapting(fresh_compact, images, small_reconstruction, lpips_alex, configs)
    drift = []
    for after, log in runs:
        assert log.status == "done", log.message
        change = after - before
        high = above_lr_band(change, before.shape[-1] // images[0].shape[-1])
        drift.append((float(high.abs().mean()), float((change - high).abs().mean())))
    # the band above the LR is held: about half the drift here (0.0036 vs 0.0070) with R's colour fitted to the LR
    assert drift[1][0] < 0.6 * drift[0][0], drift
    assert drift[1][1] > 0.2 * drift[0][1], drift  # the LR band still adapts


def _pseudo_pair_loss(model, reconstruction, images: list[torch.Tensor]) -> float:
    """Plain reference of the cross-scale term on whole images: L1 of S(R(y, e)) against y."""
    import torch.nn.functional as F

    with torch.no_grad():
        total = 0.0
        for y in images:
            y = y[None, :, : y.shape[1] // 4 * 4, : y.shape[2] // 4 * 4]
            smaller = reconstruction.reconstructor(y, reconstruction.encoder(y), reference=F.avg_pool2d(y, 4))
            total += float((model.module(smaller.clamp(0, 1)) - y).abs().mean())
    return total


def test_cross_scale_term_restores_the_lr_from_its_own_degradation(fresh_compact, small_reconstruction, lpips_alex,
                                                                   photo) -> None:
    """With a cross-scale weight, S learns to undo R's degradation of the LR itself (its pseudo-pair), on crops
    twice the loss's (capped by the image) that R shrinks to at least MIN_INPUT_SIDE."""
    images = _lr_images(photo)
    original = {k: v.clone() for k, v in fresh_compact.module.state_dict().items()}
    start = _pseudo_pair_loss(fresh_compact, small_reconstruction, images)
    after = {}
    for weight in (0.0, 10.0):
        fresh_compact.module.load_state_dict(original)
        config = AdaptConfig(iterations=6, lr=1e-3, batch=2, crop=32, cross_scale=weight)
        log = adapt(fresh_compact, images, small_reconstruction, LWayLoss(lpips_alex), config, progress=False)
        assert log.status == "done" and log.cross_crop == (40 if weight else 0), log  # 2 x 32, capped at 40
        after[weight] = _pseudo_pair_loss(fresh_compact, small_reconstruction, images)
    assert after[10.0] < 0.8 * after[0.0], (start, after)  # the LR-scale loss alone moves it the other way here


def test_cross_scale_crop_fits_the_images_and_the_model(fresh_compact) -> None:
    """Twice the loss's crop, capped by the smallest image, a multiple of the scale (times the model's multiple),
    and 0 (the term off) where R would shrink it below MIN_INPUT_SIDE."""
    from lway_engine.adaptation.loop import _cross_crop

    def side(shapes, **config) -> int:
        return _cross_crop([torch.zeros(3, h, w) for h, w in shapes], AdaptConfig(**config), fresh_compact)

    assert side([(200, 300)], crop=32, cross_scale=1) == 64
    assert side([(200, 300), (43, 90)], crop=32, cross_scale=1) == 40
    assert side([(200, 300)], crop=32, cross_scale=1, cross_crop=102) == 100
    assert side([(31, 300)], crop=16, cross_scale=1) == 0  # 28 px -> 7 px


@pytest.fixture()
def tiny_rrdb(tmp_path: Path):
    """Real-ESRGAN's architecture (spandrel's RRDBNet) at 1 block x 8 features, randomly initialised and loaded
    through the same path as a user's checkpoint: compiles in well under a minute on 2 cores."""
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    from lway_engine.models import load_model

    torch.manual_seed(0)
    path = tmp_path / "rrdb-tiny.safetensors"
    save_file(ESRGAN(num_filters=8, num_blocks=1).state_dict(), str(path))
    return load_model(path)


def test_compiled_step_is_one_graph_without_breaks(tiny_rrdb, small_reconstruction, lpips_alex) -> None:
    from lway_engine.adaptation.step import AdaptStep

    params = list(tiny_rrdb.module.requires_grad_(True).parameters())
    reconstructor = small_reconstruction.reconstructor.requires_grad_(False)  # frozen: R runs the C++ op
    with torch.no_grad():
        styles = reconstructor.prepare(torch.randn(3, 32))
    assert styles.convs is not None
    # the flat-area anchor's frozen copy of S, and the cross-scale term's R and second pass of S, join the graph
    for anchor, cross in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)):
        step = AdaptStep(tiny_rrdb.module, reconstructor, styles, LWayLoss(lpips_alex), params, 1e-4,
                         torch.device("cpu"), compile=True, anchor=anchor, cross_scale=cross)
        cross_batch = (torch.rand(2, 3, 64, 64), torch.tensor([1, 0])) if cross else ()
        explained = torch._dynamo.explain(step.forward)(torch.rand(2, 3, 32, 32), torch.tensor([2, 0]), *cross_batch)
        assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
        assert explained.graph_count == 1


def test_compiled_adaptation_follows_the_eager_trajectory(tiny_rrdb, small_reconstruction, lpips_alex,
                                                          photo) -> None:
    import warnings

    from torch._dynamo.utils import counters

    from lway_engine.compiled import CompileFallbackWarning

    original = {k: v.clone() for k, v in tiny_rrdb.module.state_dict().items()}
    logs, weights = {}, {}
    for compiled in (False, True):
        tiny_rrdb.module.load_state_dict(original)
        counters.clear()
        config = AdaptConfig(iterations=5, lr=1e-3, batch=2, crop=32, compile=compiled)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CompileFallbackWarning)  # a silent fallback would compare eager to eager
            logs[compiled] = adapt(tiny_rrdb, _lr_images(photo), small_reconstruction, LWayLoss(lpips_alex), config,
                                   progress=False)
        weights[compiled] = {k: v.clone() for k, v in tiny_rrdb.module.state_dict().items()}
    assert not counters["graph_break"] and counters["stats"]["unique_graphs"] == 1  # one graph for all 5 steps
    eager, compiled = logs[False], logs[True]
    assert eager.status == compiled.status == "done" and len(compiled.step_seconds) == 5
    moved = max(float((weights[False][k] - original[k]).abs().max()) for k in original)
    assert moved > 1e-3  # the weights really move: the comparison is not trivial
    for field in ("loss", "l1", "lpips"):
        torch.testing.assert_close(getattr(compiled, field), getattr(eager, field), rtol=1e-4, atol=1e-5)
    # Adam's steps are about lr (1e-3) whatever the gradient's size, so a weight whose gradient is near zero may
    # step differently on a rounding difference (the colour fit's normal equations reduce in another order when
    # compiled; 3 of 11,520 weights moved up to 0.15 of a step apart): allow half a step, the losses above match
    for key in weights[False]:
        torch.testing.assert_close(weights[True][key], weights[False][key], rtol=1e-4, atol=5e-4)


def test_compiled_inference_serves_two_sizes_with_one_compile(tiny_rrdb) -> None:
    from torch._dynamo.utils import counters

    from lway_engine.compiled import DynamicSizeNetwork

    network = DynamicSizeNetwork(tiny_rrdb.module, torch.device("cpu"))
    counters.clear()
    # Both above the sizes where CPU convolutions pick another algorithm (a guard on H*W, one more graph below it)
    for height, width in ((96, 80), (120, 104)):
        x = torch.rand(1, 3, height, width)
        with torch.inference_mode():
            torch.testing.assert_close(network(x), tiny_rrdb.module(x), rtol=1e-4, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]


def test_compile_falls_back_to_eager_without_a_cpp_compiler(tiny_rrdb, small_reconstruction, lpips_alex) -> None:
    import torch._inductor.config as inductor_config

    from lway_engine.adaptation.step import AdaptStep
    from lway_engine.compiled import CompileFallbackWarning

    x, picks = torch.rand(2, 3, 32, 32), torch.tensor([1, 0])
    with torch.no_grad():
        styles = small_reconstruction.reconstructor.prepare(torch.randn(2, 32))
    results = []
    for compiled in (False, True):
        params = list(tiny_rrdb.module.requires_grad_(True).parameters())
        with inductor_config.patch({"cpp.cxx": ("lway-no-such-compiler",)}):
            if compiled:
                with pytest.warns(CompileFallbackWarning, match="needs a C\\+\\+ compiler"):
                    step = AdaptStep(tiny_rrdb.module, small_reconstruction.reconstructor, styles,
                                     LWayLoss(lpips_alex), params, 0.0, torch.device("cpu"), compile=True)
            else:
                step = AdaptStep(tiny_rrdb.module, small_reconstruction.reconstructor, styles, LWayLoss(lpips_alex),
                                 params, 0.0, torch.device("cpu"))
            results.append(step(x, picks))
    torch.testing.assert_close(results[1], results[0])


def test_bf16_adaptation_on_the_cpu_follows_float32(tiny_rrdb, small_reconstruction, lpips_alex, photo) -> None:
    from lway_engine.adaptation.step import AdaptStep

    original = {k: v.clone() for k, v in tiny_rrdb.module.state_dict().items()}
    logs = {}
    for amp in (None, "bf16"):
        tiny_rrdb.module.load_state_dict(original)
        config = AdaptConfig(iterations=5, lr=1e-3, batch=2, crop=32, amp=amp)
        logs[amp] = adapt(tiny_rrdb, _lr_images(photo), small_reconstruction, LWayLoss(lpips_alex), config,
                          progress=False)
        assert all(p.dtype == torch.float32 for p in tiny_rrdb.module.parameters())  # fp32 master weights
    assert logs["bf16"].status == "done"
    torch.testing.assert_close(logs["bf16"].loss, logs[None].loss, rtol=0.03, atol=1e-3)
    # ... and the bf16 step stays one graph for --compile (dynamo only here; inductor is what the fp32 test runs).
    params = list(tiny_rrdb.module.requires_grad_(True).parameters())
    reconstructor = small_reconstruction.reconstructor.requires_grad_(False)
    with torch.no_grad():
        styles = reconstructor.prepare(torch.randn(3, 32))
    step = AdaptStep(tiny_rrdb.module, reconstructor, styles, LWayLoss(lpips_alex), params, 1e-4,
                     torch.device("cpu"), compile=False, amp="bf16")
    explained = torch._dynamo.explain(step.forward)(torch.rand(2, 3, 32, 32), torch.tensor([2, 0]))
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]


def test_fp16_is_refused_on_the_cpu_with_the_alternative() -> None:
    from lway_engine.adaptation.step import amp_dtype

    assert amp_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="use --amp bf16 on the CPU"):
        amp_dtype("fp16", torch.device("cpu"))
