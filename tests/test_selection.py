"""The no-HR quality signal and automatic selection: held-out regions really held out, the signal's parts, the
unadapted weights kept (and said so) when nothing beats them, NaN never chosen, tiny images on the fixed schedule,
and the report's decision and plot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lway_engine.adaptation.gate import Reading
from lway_engine.adaptation.loop import AdaptConfig, _random_crops, adapt
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.select import DEFAULT_CANDIDATES, Candidate, adapt_and_select
from lway_engine.adaptation.signal import hold_out


def _images(photo, size: int = 48) -> list[torch.Tensor]:
    return [torch.from_numpy(photo(name, size).transpose(2, 0, 1).copy()) for name in ("astronaut", "coffee")]


def test_holdout_strips_are_never_cropped_for_training() -> None:
    import numpy as np

    shapes = [(60, 40), (30, 90), (100, 100)]
    holdout = hold_out(shapes, crop=24, multiple_of=4)
    assert holdout is not None and 1 <= len(holdout.tiles) <= 8
    assert holdout.limits == [(44, 40), (30, 66), (72, 100)]  # the bottom or right quarter, rounded up to 4
    images = [torch.arange(h * w, dtype=torch.float32).view(1, h, w).expand(3, h, w) for h, w in shapes]
    seen = [set() for _ in shapes]
    crops, picks = _random_crops(images, 400, 24, np.random.default_rng(0), holdout.limits)
    for crop, i in zip(crops, picks.tolist()):
        seen[i].update(crop[0].flatten().long().tolist())
    for i, top, left, h, w in holdout.tiles:
        tile = set(images[i][0, top : top + h, left : left + w].flatten().long().tolist())
        assert not tile & seen[i]  # no held-out pixel ever reached a training crop
        assert h % 4 == 0 and w % 4 == 0 and h <= 24 and w <= 24
    assert [box[0] for box in holdout.seen] == [0, 1, 2]  # one tile per image inside the area crops come from
    for i, top, left, h, w in holdout.seen:
        assert 0 <= top and top + h <= holdout.limits[i][0] and 0 <= left and left + w <= holdout.limits[i][1]
        assert h % 4 == 0 and w % 4 == 0 and h <= 24 and w <= 24
    assert hold_out([(20, 20)], crop=24, multiple_of=4) is None


def test_margin_grows_on_small_held_out_areas() -> None:
    from lway_engine.adaptation.select import MIN_GAIN, held_out_area, min_gain, selection_holdout

    city100 = selection_holdout([(128, 192)], 48, 4)  # the per-image strip MIN_GAIN was measured on: two 48-px tiles
    assert held_out_area(city100) == 2 * 48 * 48 and min_gain(held_out_area(city100)) == pytest.approx(MIN_GAIN)
    family = selection_holdout([(64, 64)], 48, 4)  # a 64-px LR holds out one 16 x 48 tile: a sixth of the area
    assert held_out_area(family) == 16 * 48 and min_gain(held_out_area(family)) == pytest.approx(MIN_GAIN * 6 ** 0.5)
    large = selection_holdout([(400, 600)] * 4, 48, 4)  # more area never lowers the margin
    assert held_out_area(large) > 2 * 48 * 48 and min_gain(held_out_area(large)) == MIN_GAIN
    assert min_gain(0) > min_gain(16 * 48) > MIN_GAIN


def test_signal_is_zero_at_the_start_and_tracks_drift(fresh_compact, small_reconstruction, lpips_alex,
                                                      photo) -> None:
    images = _images(photo)
    holdout = hold_out([tuple(i.shape[-2:]) for i in images], 32, fresh_compact.size.multiple_of)
    config = AdaptConfig(iterations=6, lr=1e-3, batch=2, crop=32, eval_every=2)
    log = adapt(fresh_compact, images, small_reconstruction, LWayLoss(lpips_alex), config, False, holdout)
    assert [p.step for p in log.signal] == [0, 2, 4, 6]
    assert log.signal[0].value == 0.0 and all(math.isfinite(p.value) for p in log.signal)
    assert any(abs(p.fidelity) > 1e-4 for p in log.signal[1:])  # the weights moved and the signal saw it
    assert log.signal[0].departure == 0.0 and any(p.departure > 1e-4 for p in log.signal[1:])  # LPIPS(S, S0) too
    assert log.signal[0].movement == 0.0 and any(p.movement > 1e-4 for p in log.signal[1:])  # and where it trained
    assert log.signal[0].texture_all == 0.0 and any(p.texture_all != 0 for p in log.signal[1:])  # texture over both
    assert log.best_step in (0, 2, 4, 6) and log.best.value == min(p.value for p in log.signal)


def test_no_gain_keeps_the_unadapted_weights_and_says_so(fresh_compact, small_reconstruction, lpips_alex,
                                                         photo) -> None:
    original = {k: v.clone() for k, v in fresh_compact.module.state_dict().items()}
    config = AdaptConfig(iterations=4, lr=0.0, batch=2, crop=32, eval_every=2)  # lr 0: nothing can improve
    log, decision = adapt_and_select(fresh_compact, _images(photo), small_reconstruction, LWayLoss(lpips_alex),
                                     config, (Candidate(), Candidate(1.0, 1.0)), progress=False)
    assert not decision.adapted and decision.reason.startswith("adaptation would not help these images")
    assert set(decision.runs) == {"anchor 0, texture 0", "anchor 1, texture 1"}
    after = fresh_compact.module.state_dict()
    assert all(torch.equal(original[k], after[k]) for k in original)


def test_nan_signal_is_never_chosen(fresh_compact, small_reconstruction, lpips_alex, photo) -> None:
    images = _images(photo)
    calls = []

    def poison_held_out(module, args, output):  # training batches have 2 crops; the held-out tiles come one by one
        calls.append(1)
        return output * float("nan") if args[0].shape[0] == 1 else output

    original = {k: v.clone() for k, v in fresh_compact.module.state_dict().items()}
    config = AdaptConfig(iterations=4, lr=1e-3, batch=2, crop=32, eval_every=2)
    loss_fn = LWayLoss(lpips_alex)
    fresh_compact.module.register_forward_hook(poison_held_out)
    log, decision = adapt_and_select(fresh_compact, images, small_reconstruction, loss_fn, config, (Candidate(),),
                                     progress=False)
    assert calls and not decision.adapted and "no valid signal" in decision.reason
    assert all(torch.equal(original[k], v) for k, v in fresh_compact.module.state_dict().items())


def test_tiny_images_run_the_fixed_schedule_and_say_why(fresh_compact, small_reconstruction, lpips_alex,
                                                        photo) -> None:
    config = AdaptConfig(iterations=2, lr=1e-4, batch=2, crop=32)
    log, decision = adapt_and_select(fresh_compact, _images(photo, 36), small_reconstruction,
                                     LWayLoss(lpips_alex), config, progress=False)
    assert decision.adapted and "signal is unavailable" in decision.reason and "36x36" in decision.reason
    assert log.status == "done" and len(log.loss) == 2 and not log.signal


def test_candidate_parse_and_configure(lpips_alex) -> None:
    """A flat candidate swaps in a W = 1 loss (same LPIPS network) and scales the learning rate; an LPIPS weight
    scales the loss's LPIPS term and keeps its HF map; the paper's candidate keeps the caller's loss object; a bad
    field says which fields exist."""
    flat = Candidate.parse("anchor=1, flat=1, lr_scale=3")
    assert flat == Candidate(anchor=1.0, flat=True, lr_scale=3.0) and "flat loss" in flat.name and "lr x3" in flat.name
    loss = LWayLoss(lpips_alex)
    config, flat_loss = flat.configure(AdaptConfig(lr=1e-5), loss)
    assert config.lr == pytest.approx(3e-5) and config.anchor == 1.0 and not config.hf_weight
    assert not flat_loss.hf_weight and flat_loss.lpips is loss.lpips
    assert Candidate().configure(AdaptConfig(), loss)[1] is loss and Candidate().name == "anchor 0, texture 0"
    cross = Candidate.parse("cross_scale=0.3")
    assert cross.configure(AdaptConfig(), loss)[0].cross_scale == 0.3 and "cross-scale 0.3" in cross.name
    weighted = Candidate.parse("lpips=2.5")
    _, weighted_loss = weighted.configure(AdaptConfig(), loss)
    assert weighted_loss.lpips_weight == 2.5 and weighted_loss.hf_weight and "LR LPIPS x2.5" in weighted.name
    with pytest.raises(ValueError, match="fields: anchor"):
        Candidate.parse("anchr=1")


def _expecting(reconstruction, error: float) -> None:
    """An error model expecting ``error`` on every LR: tiny opens the gate (every mismatch is the SR model's), huge
    keeps it shut (R is never better than its own error)."""
    from lway_engine.reconstruction.error_model import ErrorModel

    reconstruction.error_model = ErrorModel.constant(reconstruction.config.embed_dim, error)


def _lr_files(tmp_path: Path, photo) -> list[Path]:
    from lway_engine.media.images import Image, write_image

    files = []
    for name in ("astronaut", "coffee"):
        files.append(tmp_path / "lr" / f"{name}.png")
        write_image(files[-1], Image(photo(name, 48), None, 8))
    return files


def test_report_states_the_decision_and_plots_the_signal(tmp_path: Path, fresh_compact, small_reconstruction,
                                                         photo) -> None:
    import json

    from lway_engine.adaptation.run import run_adaptation
    from lway_engine.media.images import read_image

    files = _lr_files(tmp_path, photo)
    _expecting(small_reconstruction, 1e-6)
    config = AdaptConfig(iterations=4, lr=1e-3, batch=2, crop=32, eval_every=2)
    runs = run_adaptation(fresh_compact, files, tmp_path / "out", small_reconstruction, config, per_image=False,
                          progress=False)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    decision = report["decisions"]["all"]
    assert set(decision["runs"]) == {c.name for c in DEFAULT_CANDIDATES}
    for r in decision["runs"].values():  # a run stopped early (lr 1e-3 can diverge) keeps the points it scored
        steps = [0, 2, 4] if r["status"] == "done" else [0, 2, 4][: len(r["signal"])]
        assert [p["step"] for p in r["signal"]] == steps
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert decision["reason"] in markdown and "signal.png" in markdown and decision["reason"] in runs["all"].message
    assert "| amp | fp32 |" in markdown  # no autocast reads as the --amp choice, not "None"
    plot = read_image(tmp_path / "out" / "signal.png")
    assert plot.size[0] > 200 and plot.size[1] > 200


def test_closed_gate_writes_the_unadapted_weights_and_says_why(tmp_path: Path, fresh_compact, small_reconstruction,
                                                               photo) -> None:
    import json

    from lway_engine.adaptation.run import run_adaptation

    _expecting(small_reconstruction, 1e3)
    original = {k: v.clone() for k, v in fresh_compact.module.state_dict().items()}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "signal.png").write_bytes(b"an earlier run's plot")
    config = AdaptConfig(iterations=4, lr=1e-3, batch=2, crop=32, eval_every=2)
    runs = run_adaptation(fresh_compact, _lr_files(tmp_path, photo), tmp_path / "out", small_reconstruction, config,
                          per_image=False, progress=False)
    decision = json.loads((tmp_path / "out" / "report.json").read_text())["decisions"]["all"]
    assert not decision["adapted"] and decision["runs"] == {}
    assert decision["reason"].startswith("adaptation would not help these images: the reconstructor cannot be "
                                         "trusted") and "the gated candidate was not tried" in decision["reason"]
    assert decision["reason"] in (tmp_path / "out" / "report.md").read_text() and not (
        tmp_path / "out" / "signal.png").exists()
    assert runs["all"].message == decision["reason"]
    assert all(torch.equal(v, original[k]) for k, v in fresh_compact.module.state_dict().items())


def _pairs(photo, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(HR, LR) crops of real photos through a real degradation, of varying strength (seeded)."""
    from lway_engine.degradations import degrade

    pairs = []
    for i in range(count):
        hr = torch.from_numpy(photo(("astronaut", "coffee", "chelsea")[i % 3], 128).transpose(2, 0, 1).copy())
        pairs.append((hr, degrade(hr, "defocus_noise", i, scale=4)))
    return pairs


def test_error_model_travels_with_its_checkpoint_only(tmp_path: Path, small_reconstruction, lpips_alex,
                                                      photo, fresh_compact) -> None:
    from lway_engine.reconstruction import load_checkpoint, save_checkpoint
    from lway_engine.reconstruction.checkpoint import CheckpointError, read_checkpoint_info
    from lway_engine.reconstruction.error_model import error_samples, fit_error_model, sidecar

    path = tmp_path / "er.safetensors"
    save_checkpoint(path, small_reconstruction)
    assert load_checkpoint(path).error_model is None
    pairs = _pairs(photo, 12)
    loss = LWayLoss(lpips_alex, hf_weight=False)
    model = fit_error_model(small_reconstruction, fresh_compact, "compact", pairs, lpips_alex,
                            read_checkpoint_info(path).content_sha256)
    model.save(sidecar(path))
    loaded = load_checkpoint(path)
    assert loaded.error_model.colour_fit is True  # fitted as adapt runs R: its colour map fitted to the LR
    # the S0 whose outputs its residual features describe
    assert (loaded.error_model.sr_model, loaded.error_model.sr_sha256) == ("compact", fresh_compact.sha256)
    x, _ = error_samples(small_reconstruction, fresh_compact.module, pairs[:3], lpips_alex)
    predicted = loaded.error_model.predict(x)
    assert predicted.shape == (3,) and bool((predicted > 0).all())
    torch.testing.assert_close(predicted, model.predict(x))
    from lway_engine.adaptation.gate import explainability

    images = [lr for _, lr in pairs[:2]]
    assert explainability(fresh_compact, loaded, images, loss).value > 0
    loaded.reconstructor.colour_fit = False  # R's other colour mode: the error model would misjudge it, no gate
    assert explainability(fresh_compact, loaded, images, loss) is None
    config = AdaptConfig(iterations=2, lr=1e-3, batch=2, crop=32, eval_every=1)
    _, decision = adapt_and_select(fresh_compact, _images(photo), loaded, LWayLoss(lpips_alex), config,
                                   (Candidate(anchor=1.0, flat=True, gate=1e-9),), progress=False)
    assert not decision.adapted and "error model was fitted with R's colour map fitted to the LR" in decision.reason
    with torch.no_grad():  # other weights under the same name: the sidecar no longer describes them
        next(small_reconstruction.parameters()).add_(0.1)
    save_checkpoint(path, small_reconstruction)
    with pytest.raises(CheckpointError, match="fitted on other weights"):
        load_checkpoint(path)
    save_checkpoint(path, small_reconstruction)  # a sidecar of the older kind (flat loss, LR features only)
    from safetensors.torch import save_file

    save_file({"mean": torch.zeros(3)}, str(sidecar(path)), metadata={"colour_fit": "1"})
    with pytest.raises(CheckpointError, match="another kind .* refit it with bench/fit_error_model.py"):
        load_checkpoint(path)


def test_gate_uncertainty_spread_is_the_ridge_posterior(bench) -> None:
    """``bench/gate_uncertainty.py``: the spread's squares over the fitted rows sum to the ridge hat matrix's trace
    (its degrees of freedom, just under the 5 features), sigma is the noise put in, and a row far off the samples
    gets a spread many times a fitted row's."""
    from lway_engine.reconstruction.error_model import RIDGE, fit_features

    module = bench("gate_uncertainty")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=generator, dtype=torch.float64)
    y = x @ torch.tensor([0.5, -0.3, 0.2, 0.0, 0.1], dtype=torch.float64) + 0.1 * torch.randn(
        400, generator=generator, dtype=torch.float64)
    model = fit_features(x, y, "", True)
    precision, sigma = module.posterior(model, x, y)
    assert sigma == pytest.approx(0.1, rel=0.15)
    spreads = torch.tensor([module.spread(model, precision, sigma, row) for row in x])
    z = (x - model.mean) / model.scale
    eigen = torch.linalg.eigvalsh(z.T @ z)
    assert float((spreads / sigma).pow(2).sum()) == pytest.approx(float((eigen / (eigen + RIDGE)).sum()), rel=1e-6)
    assert module.spread(model, precision, sigma, x[0] + 20) > 10 * float(spreads.median())


@pytest.mark.parametrize("length", [32, 63, 64, 65, 127, 128, 191, 192])
def test_gate_tiles_cover_the_crop_at_the_error_models_size(length: int) -> None:
    """The gate applies the error model to tiles of its fitting size (64 px), whatever the image's size: as few
    as cover the crop, overlapping evenly, none past its edge; a side under 64 px is one tile."""
    from lway_engine.adaptation.gate import _starts
    from lway_engine.reconstruction.error_model import TILE

    starts = _starts(length)
    side = min(TILE, length)
    assert starts[0] == 0 and starts[-1] + side == length and len(starts) == max(1, -(-length // TILE))
    assert all(b - a <= side for a, b in zip(starts, starts[1:]))


def test_tile_errors_read_r_from_s0_and_from_the_hr(fresh_compact, small_reconstruction, lpips_alex, photo) -> None:
    """``gate.tile_errors``: per tile, R's L1 from S0's output, the prediction and (given the HR) the truth, all
    computed from the same embedding; a 96 x 80 LR is 2 x 2 tiles."""
    from lway_engine.adaptation.gate import tile_errors
    from lway_engine.degradations import degrade

    hr = torch.from_numpy(photo("astronaut", 384)[:320].transpose(2, 0, 1).copy())
    lr = degrade(hr, "defocus_noise", 0, scale=4)[None]
    _expecting(small_reconstruction, 0.05)
    tiles = tile_errors(fresh_compact, small_reconstruction, lr, lpips_alex, hr=hr[None])
    assert len(tiles) == 4 and all(t.predicted == pytest.approx(0.05) for t in tiles)
    assert all(0 < t.actual < 1 and 0 < t.true < 1 for t in tiles) and len({t.actual for t in tiles}) == 4
    width = small_reconstruction.error_model.mean.numel()  # the feature row each prediction was made from
    assert all(t.features.shape == (width,) and torch.isfinite(t.features).all() for t in tiles)
    assert len({float(t.features[-5]) for t in tiles}) == 4  # per tile: R's log L1 from S0's output differs
    assert all(t.true is None for t in tile_errors(fresh_compact, small_reconstruction, lr, lpips_alex))


def test_gated_candidate_runs_only_past_its_threshold_and_is_judged_by_fidelity(
        fresh_compact, small_reconstruction, lpips_alex, photo) -> None:
    from lway_engine.adaptation.signal import fidelity_room
    from lway_engine.reconstruction.error_model import fit_error_model

    small_reconstruction.error_model = fit_error_model(small_reconstruction, fresh_compact, "compact",
                                                       _pairs(photo, 12), lpips_alex, "")
    config = AdaptConfig(iterations=4, lr=1e-3, batch=2, crop=32, eval_every=2)
    original = {k: v.clone() for k, v in fresh_compact.module.state_dict().items()}
    never = Candidate(anchor=1.0, flat=True, gate=1e9)
    log, decision = adapt_and_select(fresh_compact, _images(photo), small_reconstruction, LWayLoss(lpips_alex),
                                     config, (never,), progress=False)
    assert not decision.adapted and decision.runs == {} and "the gated candidate was not tried" in decision.reason
    assert all(torch.equal(v, original[k]) for k, v in fresh_compact.module.state_dict().items())
    assert "extrapolation" not in decision.reason  # fitted on this very model's outputs
    small_reconstruction.error_model.sr_sha256 = "0" * 64  # as if fitted on another model's: the reason says so
    _, decision = adapt_and_select(fresh_compact, _images(photo), small_reconstruction, LWayLoss(lpips_alex),
                                   config, (never,), progress=False)
    assert "fitted on compact's outputs, so for this model the value is an extrapolation" in decision.reason
    always = Candidate(anchor=1.0, flat=True, gate=1e-9)
    log, decision = adapt_and_select(fresh_compact, _images(photo), small_reconstruction, LWayLoss(lpips_alex),
                                     config, (always,), progress=False)
    run = decision.runs[always.name]
    assert "the gated candidate was tried" in decision.reason and "gated at explainability" in always.name
    # detail removed is what the gate cleared; detail added (noise painted in) still counts against the run, and
    # the fidelity gain is credited only up to the room the images' explainability leaves; the texture over the
    # watched area (held out and trained) is recorded beside the signal, not in it
    assert decision.explainability is not None and decision.explainability > 0
    room = fidelity_room(decision.explainability)
    assert all(p.value == pytest.approx(max(p.fidelity, -room) + max(-p.fidelity - room, 0)
                                        + 4 * max(p.copying, 0) + 4 * max(p.texture, 0)) for p in run.signal)
    assert any(p.copying != 0 for p in run.signal[1:]) and any(p.texture_all != 0 for p in run.signal[1:])
    small_reconstruction.error_model = None  # no error model: the gated candidate is skipped, and the reason says so
    _, decision = adapt_and_select(fresh_compact, _images(photo), small_reconstruction, LWayLoss(lpips_alex),
                                   config, (Candidate(), always), progress=False)
    assert list(decision.runs) == [Candidate().name] and "has no error model" in decision.reason


def test_added_only_signal_ignores_detail_removed_and_counts_detail_added() -> None:
    from lway_engine.adaptation.signal import combine

    # City100's gated run: S0's excess texture removed (both moves negative): fidelity alone decides
    assert combine(-0.35, -0.51, -0.49, added_only=True) == pytest.approx(-0.35)
    assert combine(-0.35, -0.51, -0.49) == pytest.approx(-0.35 + 4 * 0.51 + 4 * 0.49)
    # RNI15's: noise painted into flat areas (+0.61) and textured ones (+0.65): rejected either way
    assert combine(-0.106, 0.612, 0.650, added_only=True) == pytest.approx(-0.106 + 4 * 0.612 + 4 * 0.650)
    assert math.isnan(combine(math.nan, 0.0, 0.0, added_only=True))


def test_fidelity_gain_is_credited_only_within_the_room_explainability_leaves() -> None:
    from lway_engine.adaptation.signal import combine, fidelity_room

    assert fidelity_room(0.9) == 0 and fidelity_room(1.0) == 0 and fidelity_room(math.nan) == 0
    assert fidelity_room(2.0) == pytest.approx(0.5) and fidelity_room(3.1) == pytest.approx(1 - 1 / 3.1)
    # City100's medium run (explainability 3.10, fidelity -0.40 at its best step): inside the room, unchanged
    assert combine(-0.40, -0.5, -0.5, added_only=True, explainability=3.1) == pytest.approx(-0.40)
    # a motion crop (explainability 1.00): R cannot tell S0's output from the truth, so the same fidelity gain is
    # R's own error being fitted and counts against the run
    assert combine(-0.154, -0.39, -0.33, added_only=True, explainability=1.0) == pytest.approx(0.154)
    # past the room, the excess counts against: 0.5 of room, a 0.7 fall scores -0.5 + 0.2
    assert combine(-0.7, 0.0, 0.0, explainability=2.0) == pytest.approx(-0.3)
    assert combine(0.1, 0.0, 0.0, explainability=0.5) == pytest.approx(0.1)  # a worse fidelity counts in full
    assert math.isnan(combine(math.nan, 0.0, 0.0, explainability=2.0))


def test_per_image_gate_answers_to_its_set(tmp_path: Path, fresh_compact, small_reconstruction, lpips_alex,
                                           photo) -> None:
    import json

    from lway_engine.adaptation.run import run_adaptation

    _expecting(small_reconstruction, 1e-9)  # on its own, every image opens the gate
    config = AdaptConfig(iterations=2, lr=1e-3, batch=2, crop=32, eval_every=1)
    gated = Candidate(anchor=1.0, flat=True, gate=1.0)
    _, decision = adapt_and_select(fresh_compact, _images(photo)[:1], small_reconstruction, LWayLoss(lpips_alex),
                                   config, (gated,), progress=False, set_explainability=Reading(0.5, 100))
    assert not decision.adapted and decision.explainability == 0.5
    assert "the lower of this image's" in decision.reason and "its set's 0.50" in decision.reason
    # adapt --per-image measures the set once and passes it to every image
    run_adaptation(fresh_compact, _lr_files(tmp_path, photo), tmp_path / "out", small_reconstruction, config,
                   per_image=True, progress=False)
    decisions = json.loads((tmp_path / "out" / "report.json").read_text())["decisions"]
    assert len(decisions) == 2 and all("and its set's" in d["reason"] for d in decisions.values())
    for d in decisions.values():  # the lower of the two, as the reason prints them
        own, whole = (float(d["reason"].split(key)[1].split()[0].rstrip("),")) for key in ("this image's ", "set's "))
        assert d["explainability"] == pytest.approx(min(own, whole), rel=1e-6)


def test_gate_reading_lower_bound_shrinks_with_its_tiles() -> None:
    from lway_engine.adaptation.gate import CONFIDENCE, TILE_SPREAD

    one, many = Reading(2.0, 1), Reading(2.0, 100)
    assert one.lower() == pytest.approx(2.0 * math.exp(-CONFIDENCE * TILE_SPREAD))
    assert one.lower() < many.lower() < 2.0 and Reading(2.0, 1).lower(0.0) == 2.0
    # a set's reading: the median of its images' values, over all their tiles
    assert Reading.pooled([Reading(1.0, 1), Reading(3.0, 6), Reading(1.6, 2)]) == Reading(1.6, 9)


def test_benchmarks_redecide_recorded_runs_on_the_bound(bench) -> None:
    signal_check = bench("signal_check")
    run = {"gate_threshold": 1.5, "explainability": 1.7, "explainability_tiles": 1, "set_explainability": 1.9,
           "set_explainability_tiles": 6}
    assert not signal_check.gate_opens(run)  # one tile: 1.7 is trusted only down to 1.45
    assert signal_check.gate_opens(run, confidence=0.0)
    assert signal_check.gate_opens({**run, "explainability_tiles": 36})  # the set's bound: 1.9 x 0.937
    assert not signal_check.gate_opens({**run, "explainability_tiles": 36, "set_explainability": 1.55})
    # a run recorded before the bound (no tiles) is decided as adapt decided it then: on the values
    assert signal_check.gate_opens({"gate_threshold": 1.5, "explainability": 1.7, "set_explainability": 1.9})
    assert not signal_check.gate_opens({**run, "explainability": None})
    assert signal_check.gate_opens({"gate_threshold": 0, "explainability": None})


def test_gate_decides_on_the_lower_bound_of_its_reading(fresh_compact, small_reconstruction, lpips_alex,
                                                        photo) -> None:
    """One image's reading rests on few tiles: a threshold between the bound and the value keeps the gate shut."""
    from lway_engine.adaptation.gate import explainability

    _expecting(small_reconstruction, 1e-2)
    images, loss = _images(photo)[:1], LWayLoss(lpips_alex)
    reading = explainability(fresh_compact, small_reconstruction, images, loss)
    assert reading.tiles >= 1 and reading.lower() < reading.value
    config = AdaptConfig(iterations=2, lr=1e-3, batch=2, crop=32, eval_every=1)
    between = Candidate(anchor=1.0, flat=True, gate=(reading.lower() + reading.value) / 2)
    _, decision = adapt_and_select(fresh_compact, images, small_reconstruction, loss, config, (between,),
                                   progress=False)
    tiles = f"over {reading.tiles} tile"
    assert not decision.adapted and "was not tried" in decision.reason and tiles in decision.reason
    assert f"{reading.lower():.2f} at its lower confidence bound" in decision.reason
    assert decision.explainability == pytest.approx(reading.value)  # the signal's cap keeps the point value
    below = Candidate(anchor=1.0, flat=True, gate=reading.lower() * 0.99)
    _, decision = adapt_and_select(fresh_compact, images, small_reconstruction, loss, config, (below,),
                                   progress=False)
    assert "was tried" in decision.reason


def test_odd_sized_images_pass_the_gate_and_the_default_candidate(fresh_compact, small_reconstruction, lpips_alex,
                                                                  photo) -> None:
    """Users' photos have odd sides: the gate's LR statistics (a Haar band of 2x2 blocks) once crashed on them."""
    from dataclasses import replace

    from lway_engine.reconstruction.error_model import lr_statistics

    images = [image[:, :47, :45] for image in _images(photo, 52)]
    odd, trimmed = lr_statistics(images[0][None]), lr_statistics(images[0][None, :, :46, :44])
    torch.testing.assert_close(odd[:, :2], trimmed[:, :2])  # the Haar band's statistics: the odd edge dropped
    _expecting(small_reconstruction, 1e-9)
    config = AdaptConfig(iterations=2, lr=1e-3, batch=2, crop=32, eval_every=1)
    default = replace(DEFAULT_CANDIDATES[0], gate=1.0)
    _, decision = adapt_and_select(fresh_compact, images, small_reconstruction, LWayLoss(lpips_alex), config,
                                   (default,), progress=False)
    assert decision.explainability is not None and decision.explainability > 1.0
    assert all(math.isfinite(p.value) for p in decision.runs[default.name].signal)
