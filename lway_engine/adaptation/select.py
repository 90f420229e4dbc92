"""Automatic selection: which candidate loss, which step, or no adaptation at all, decided by the no-HR signal.

A user adapts on images that have no HR, so cannot see whether adapting helped. Each candidate (a strength of the
texture-keeping terms of ``step.py``) is run from the same pretrained weights with the quality monitor of
``signal.py``; each run keeps its best-scoring step. The candidate whose best point scores lowest wins, if it beats
the unadapted model (signal 0) by ``min_gain`` (``MIN_GAIN``, more on small held-out areas); otherwise the unadapted
weights are kept and the decision says so plainly. Images too small to hold a region out get no signal: the fixed
schedule runs, and the decision says that.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch

from lway_engine.adaptation.gate import Reading, explainability
from lway_engine.adaptation.loop import AdaptConfig, AdaptLog, Hooks, adapt
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.signal import Holdout, SignalPoint, hold_out
from lway_engine.distributed import Topology
from lway_engine.models import LoadedModel
from lway_engine.reconstruction import MIN_LR_SIZE

# The signal must fall this far below the unadapted model's 0 to count as an improvement. Measured (post hoc) on the
# 38 runs that cleared the gate with a best point under -0.01 in six per-image samples of bench/signal_check.py: the
# three whose best point lay above -0.1 gained nothing (City100 040 +0.0003 LPIPS; film kodim09 +0.006 and kodim11
# +0.067, where the gate opened on film grain); the other 35 lay at -0.18 or below: 30 better, 2 within 0.002, 3
# worse (City100 037, 043, 050, all with the previous default). A held-out fidelity gain under 10% is within what
# R's own error and a few held-out tiles move by themselves.
MIN_GAIN = 0.1
# That margin holds for the held-out area of those runs, most of them City100's, whose per-image strip holds two
# 48 x 48 LR tiles. The signal averages over the held-out pixels, so a smaller area scatters more and the margin
# grows as 1/sqrt(area) (``min_gain``; a larger one keeps 0.1). Session 31, on the recorded samples
# (bench/margin_evidence.py): a 64-px family LR holds out one 16 x 48 tile (margin 0.245); of its forced runs whose
# best point lay in (-0.245, -0.1], 28 were worse and 14 better, where City100's in that band were 1 worse, 14 better.
# Re-deciding the eleven samples (bench/gate_redecide.py): under today's gate it refuses one kept run, gif_palette
# 219090 (best -0.122, +0.034 LPIPS), and none kept better; with the gate decided on its value instead of its bound,
# it refuses 9 unseen-type runs: 5 worse (+0.008 to +0.045), 3 better (-0.005 to -0.015), 1 level, +0.074 LPIPS in
# all. Chosen on these recorded runs, not on a fresh sample (no unused set of an unseen type opens the gate).
MIN_GAIN_AREA = 2 * 48 * 48  # LR px


@dataclass(frozen=True)
class Candidate:
    """One way to adapt, as selection tries it: strengths of the flat-area anchor, the texture (LPIPS-to-S0) and
    the above-LR-band detail terms of ``step.py`` (all 0 with ``flat`` False and ``lr_scale`` 1: the paper's loss);
    ``flat`` drops the HF weight map from the LR-scale loss (W = 1, ``adapt --no-hf-weight``); ``lr_scale``
    multiplies the learning rate (selection's best-step choice can still stop early); ``lpips`` scales the LR-scale
    loss's LPIPS term (x2 and x4 moved City100's LPIPS change by under 0.002 with today's E+R, README);
    ``cross_scale`` weights the cross-scale pseudo-pair S(R(y, e)) against the LR y (``step.py``); ``gate``
    runs the candidate only where R explains the images well enough (``gate.py``), and then its signal counts only
    detail *added* (``signal.combine``): the gate has said that moving away from S0's texture is what R's loss is
    right about, not that painting noise in is (on 128 px crops of the real noisy RNI15 photos the gate read 2.01
    and, without this, the candidate was kept with LR fidelity -10.6% while flat-area detail rose 85%: noise
    copied)."""

    anchor: float = 0.0
    texture: float = 0.0
    detail: float = 0.0
    lr_scale: float = 1.0
    flat: bool = False
    gate: float = 0.0  # > 0: runs only where the images' explainability (gate.py) reaches it
    lpips: float = 1.0  # weight of the LR-scale loss's LPIPS term (LWayLoss.lpips_weight; the paper's: 1)
    cross_scale: float = 0.0  # weight of the cross-scale pseudo-pair term (step.py): S(R(y, e)) against y

    @property
    def name(self) -> str:
        parts = [f"anchor {self.anchor:g}", f"texture {self.texture:g}"]
        parts += [f"detail {self.detail:g}"] * bool(self.detail) + ["flat loss (W = 1)"] * self.flat
        parts += [f"lr x{self.lr_scale:g}"] * (self.lr_scale != 1) + [f"LR LPIPS x{self.lpips:g}"] * (self.lpips != 1)
        parts += [f"cross-scale {self.cross_scale:g}"] * bool(self.cross_scale)
        parts += [f"gated at explainability {self.gate:g}"] * bool(self.gate)
        return ", ".join(parts)

    def configure(self, config: AdaptConfig, loss_fn: LWayLoss) -> tuple[AdaptConfig, LWayLoss]:
        """The fixed-schedule settings and loss that run this candidate."""
        config = replace(config, anchor=self.anchor, texture=self.texture, detail=self.detail,
                         cross_scale=self.cross_scale,
                         lr=config.lr * self.lr_scale, hf_weight=config.hf_weight and not self.flat,
                         added_detail_only=self.gate > 0)
        if (self.flat and loss_fn.hf_weight) or self.lpips != 1:
            loss_fn = LWayLoss(loss_fn.lpips, hf_weight=loss_fn.hf_weight and not self.flat,
                               lpips_weight=loss_fn.lpips_weight * self.lpips)
        return config, loss_fn

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """``"anchor=1,flat=1,lr_scale=3"`` (fields left out keep their defaults), for benchmarks and tests."""
        values: dict[str, float | bool] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = part.partition("=")
            if key not in cls.__dataclass_fields__ or not value:
                raise ValueError(f"bad candidate field {part!r} in {text!r}; fields: "
                                 f"{', '.join(cls.__dataclass_fields__)}")
            values[key] = bool(int(value)) if key == "flat" else float(value)
        return cls(**values)


# One candidate, gated (2026-11-30, bench/quality.py --quick, bf16, the broad L1 reconstructor): the LR-scale loss
# without the HF map (W = 1: the whole LR is matched; LPIPS came out better than with W on all four sets measured
# both ways), flat areas held to the unadapted output by the anchor, at 3x the learning rate, run only where the
# explainability gate (gate.py) says R can be trusted. On City100 it gives +1.92 dB / -0.020 LPIPS; on motion,
# bayer_jpeg, film and the demo photos it made LPIPS worse on a fixed schedule, and the gate keeps it off them.
# The paper's loss is no longer a default candidate: under selection it passed the held-out signal on motion and
# halftone_scan with this reconstructor and made both worse (+0.013, +0.011), where the gate was 0.66 and 0.59;
# `adapt --no-select` runs it on the fixed schedule.
# 2026-12-01: plus the cross-scale pseudo-pair at weight 0.3 (step.py), the one term that asks for detail above the
# LR band. bench/quality.py --quick, fp32, City100 031-038: +1.37 dB / -0.034 LPIPS against +1.18 / -0.015 without
# it (weight 0.5: +1.16 / -0.031), every pair better; the fresh pairs 039-046: +1.32 / -0.035 against +1.52 / -0.015.
# On noisy real photos it asks S to restore the LR's noise too: on RNI15 crops the signal's copying part read +0.69
# by step 40 (+0.54 without the term) and refused every step, as on OldPhotos (bench/real_decisions.py).
# 2026-12-01 (later): gated at 1.5 on the L1, per-tile explainability (gate.py; 2 was the flat loss's threshold).
DEFAULT_CANDIDATES = (Candidate(anchor=1.0, flat=True, lr_scale=3.0, gate=1.5, cross_scale=0.3),)


@dataclass
class Decision:
    """What selection chose and why; ``runs`` holds every candidate's log (their signal curves)."""

    adapted: bool
    reason: str
    candidate: Candidate | None = None
    step: int | None = None
    runs: dict[str, AdaptLog] | None = None
    explainability: float | None = None  # the images' gate value (gate.py), when a gated candidate measured it


def adapt_and_select(model: LoadedModel, images: list[torch.Tensor], reconstruction: torch.nn.Module,
                     loss_fn: LWayLoss, config: AdaptConfig, candidates: tuple[Candidate, ...] = DEFAULT_CANDIDATES,
                     progress: bool = True, hooks: Hooks | None = None, topology: Topology = Topology.single(),
                     set_explainability: Reading | None = None) -> tuple[AdaptLog, Decision]:
    """Run the candidates, leave ``model.module`` with the chosen weights; the chosen (or last) log and why
    (``topology``: as ``adapt`` takes it). ``set_explainability``: per-image mode's value for the whole set these
    images come from (``gate.explainability`` over it); the gate then uses the lower of the two, because one
    image's value is far noisier than a set's median: a film-family photo read 2.12 where its set read 1.09, and
    adapting it alone made LPIPS worse by +0.245 (``bench/signal_check.py``, per-image runs)."""
    shapes = [tuple(img.shape[-2:]) for img in images]
    holdout = selection_holdout(shapes, config.crop, model.size.multiple_of)
    if holdout is None:
        log = adapt(model, images, reconstruction, loss_fn, config, progress, hooks=hooks, topology=topology)
        reason = (f"the no-HR quality signal is unavailable: the images ({', '.join(f'{h}x{w}' for h, w in shapes)} "
                  f"LR px) are too small to hold a region out beside a {config.crop} px training crop; ran the "
                  f"fixed schedule: {len(log.loss)} of {config.iterations} steps ({log.status}). Check the result "
                  "by eye.")
        return log, Decision(adapted=bool(log.loss), reason=reason, runs={"fixed schedule": log})
    gated = _gate(model, images, reconstruction, loss_fn, config, candidates, set_explainability)
    candidates = tuple(c for c in candidates if c.gate <= 0 or gated.bound is not None and gated.bound >= c.gate)
    if not candidates:
        reason = ("adaptation would not help these images: the reconstructor cannot be trusted to steer the model "
                  "on them, so nothing was adapted and the unadapted weights are kept" + gated.note)
        return AdaptLog(status="done"), Decision(adapted=False, reason=reason, runs={},
                                                 explainability=gated.value)
    if gated.value is not None:
        config = replace(config, explainability=gated.value)
    original = copy.deepcopy(model.module.state_dict())
    runs: dict[str, AdaptLog] = {}
    best_log: AdaptLog | None = None
    best_state, best_candidate = None, None
    for candidate in candidates:
        model.module.load_state_dict(original)
        config_c, loss_c = candidate.configure(config, loss_fn)
        log = adapt(model, images, reconstruction, loss_c, config_c, progress, holdout, hooks=hooks,
                    topology=topology)
        runs[candidate.name] = log
        point = log.best
        if point is not None and math.isfinite(point.value) and point.step > 0 and (
                best_log is None or point.value < best_log.best.value):
            best_log, best_candidate = log, candidate
            best_state = copy.deepcopy(model.module.state_dict())
        if log.status in ("interrupted", "cancelled"):
            break
    margin = min_gain(held_out_area(holdout))
    if best_log is None or best_log.best.value > -margin:
        model.module.load_state_dict(original)
        return next(iter(runs.values())), Decision(adapted=False, reason=_no_help(runs, margin) + gated.note,
                                                   runs=runs, explainability=gated.value)
    model.module.load_state_dict(best_state)
    point = best_log.best
    reason = (f"adapted with {best_candidate.name}, stopped at step {point.step} of {config.iterations}: held-out "
              f"signal {point.value:+.4f} ({_parts(point)}) against 0 for the unadapted model" + gated.note)
    return best_log, Decision(adapted=True, reason=reason, candidate=best_candidate, step=point.step, runs=runs,
                              explainability=gated.value)


def min_gain(area: int) -> float:
    """How far below 0 the best point must lie when the signal reads ``area`` held-out LR pixels: ``MIN_GAIN``,
    scaled by sqrt(MIN_GAIN_AREA / area) below the area it was measured on, never below ``MIN_GAIN``."""
    return MIN_GAIN * math.sqrt(max(1.0, MIN_GAIN_AREA / max(area, 1)))


def held_out_area(holdout: Holdout) -> int:
    """The LR pixels of the held-out tiles the signal scores."""
    return sum(height * width for _, _, _, height, width in holdout.tiles)


def selection_holdout(shapes: list[tuple[int, int]], crop: int, multiple_of: int) -> Holdout | None:
    """The held-out strips selection scores on. Small images train on smaller crops (effective_crop); keep room for
    a strip beside such a crop, but never below MIN_LR_SIZE: the loss's LPIPS (AlexNet's pooling) needs crops of
    about that size."""
    room = max(MIN_LR_SIZE, 3 * min(min(s) for s in shapes) // 4)
    return hold_out(shapes, min(crop, room), multiple_of)


@dataclass
class _Gated:
    value: float | None  # the images' explainability: caps the signal's fidelity credit (signal.fidelity_room)
    note: str
    bound: float | None = None  # its lower confidence bound (gate.Reading.lower): what the threshold is held to


def _gate(model: LoadedModel, images: list[torch.Tensor], reconstruction: torch.nn.Module, loss_fn: LWayLoss,
          config: AdaptConfig, candidates: tuple[Candidate, ...], set_explainability: Reading | None = None) -> _Gated:
    """The images' explainability and its lower bound (each the lower of theirs and ``set_explainability``'s), when
    a candidate is gated, and what the decision should say about it."""
    gates = [c.gate for c in candidates if c.gate > 0]
    if not gates:
        return _Gated(None, "")
    error_model = getattr(reconstruction, "error_model", None)
    if error_model is None:
        return _Gated(None, "; the gated candidate was not tried: this reconstructor has no error model to gate "
                            "it (bench/fit_error_model.py)")
    if not error_model.fits(reconstruction.reconstructor.colour_fit):
        return _Gated(None, "; the gated candidate was not tried: this reconstructor's error model was fitted with "
                            "R's colour map " + ("fitted to the LR" if error_model.colour_fit else "predicted")
                            + ", not as R runs now (refit it: bench/fit_error_model.py)")
    own = explainability(model, reconstruction, images, loss_fn, config.amp)
    if own is None:
        return _Gated(None, f"; the gated candidate was not tried: no image reaches {MIN_LR_SIZE} px, the least "
                            "the explainability gate can measure")
    readings = [own] if set_explainability is None else [own, set_explainability]
    value, weakest = min(r.value for r in readings), min(readings, key=Reading.lower)
    source = "" if set_explainability is None else (f" (the lower of this image's {own.value:.2f} and its set's "
                                                    f"{set_explainability.value:.2f})")
    verdict = "tried" if weakest.lower() >= min(gates) else "not tried"
    # the error model reads R's reconstruction from the SR model's output: fitted on another model's, it extrapolates
    other = error_model.sr_sha256 and error_model.sr_sha256 != model.sha256
    caveat = (f" (its error model was fitted on {error_model.sr_model or 'another SR model'}'s outputs, so for "
              "this model the value is an extrapolation)") if other else ""
    tiles = f"{weakest.tiles} tile{'s' * (weakest.tiles > 1)}"
    return _Gated(value, f"; explainability {value:.2f}{source}, {weakest.lower():.2f} at its lower confidence "
                         f"bound over {tiles} (threshold {min(gates):g}; R explains the unadapted output's mismatch "
                         f"with the LR {value:.2f}x its own expected error){caveat}: the gated candidate was "
                         f"{verdict}", weakest.lower())


def _parts(point: SignalPoint) -> str:
    """The signal's parts as the console and the report state them."""
    return (f"LR fidelity {point.fidelity:+.1%}, copying {point.copying:+.3f}, texture {point.texture:+.3f} "
            f"({point.texture_all:+.3f} with the trained area), perceptual departure {point.departure:.4f} (held "
            f"out), {point.movement:.4f} (trained area)")


def _no_help(runs: dict[str, AdaptLog], margin: float) -> str:
    """The plain message for a run that keeps the unadapted weights, with the numbers behind it."""
    details = []
    for name, log in runs.items():
        finite = [p for p in log.signal[1:] if math.isfinite(p.value)]
        if not finite:
            details.append(f"{name}: no valid signal ({log.status})")
            continue
        p = min(finite, key=lambda q: q.value)
        details.append(f"{name}: best {p.value:+.4f} at step {p.step} ({_parts(p)})")
    return ("adaptation would not help these images: no candidate beat the unadapted model by the held-out signal "
            f"(needs <= {-margin:+.2f} on this held-out area); kept the unadapted weights. " + "; ".join(details))
