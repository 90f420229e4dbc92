"""A learned no-HR signal: a ridge model from the monitor's readings to the true LPIPS change, fitted on training-split
adaptation runs only and scored on every recorded evaluation sample of today's default candidate.

    .venv/bin/python bench/signal_check.py --split training --probes niqe ... --out T.json   # the training runs
    .venv/bin/python bench/signal_model.py fit T1.json T2.json ...     # writes bench/results/signal_model.json
    .venv/bin/python bench/signal_model.py score                       # Spearman per recorded sample and pooled

Why: the hand-made signal scores +0.12 to +0.46 on fresh samples, each of its parts alone less, and which way a part
points flips between samples (``bench/results/signal_check_history.md``); several readings rank part of the runs
(the gate's room the sets, ``movement`` and ``niqe`` the family runs at +0.44 to +0.48 on the NIQE sample). How much
each should count is an empirical question, like the gate's error model (``bench/fit_error_model.py``), so it is
fitted, on images no evaluation uses (``signal_check.py --split training``: City100 001-030, Urban100 crops).
Pre-registered in ``bench/results/signal_model_preregistration.md``: the features, the model, its fit and the rule.
Outcome there: +0.24 pooled over the 188 recorded evaluation runs, and about 0 already when a training set is held
out: what the readings say about the LPIPS change differs from set to set. Not adopted.

Features at each evaluation point, all recorded by every sample of today's default: the signal's parts (fidelity,
signed and absolute copying and texture, coarse), the held-out departure, the room the gate leaves
(``signal.fidelity_room`` of the run's effective gate) and fidelity times that room. ``EXTENDED`` adds ``movement``
and ``niqe``, recorded only by the last two samples and the last one. Target: the true whole-image LPIPS change,
clipped to +-``CLIP`` so that film's large losses do not decide the fit of every other set. Ridge on standardised
features, its strength chosen by leave-one-set-out cross-validation on the training runs.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from signal_check import WORSE, effective_gate, ranked_inside, spearman

from lway_engine.adaptation.signal import fidelity_room

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = RESULTS / "signal_model.json"
FEATURES = ("fidelity", "copying", "texture", "abs_copying", "abs_texture", "coarse", "departure", "room",
            "fidelity_room")
EXTENDED = (*FEATURES, "movement", "niqe")
DERIVED = ("abs_copying", "abs_texture", "room", "fidelity_room")  # computed from the others and the run's gate
CLIP = 0.1
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
MARGIN = 0.005  # a kept step must be predicted to gain at least this much LPIPS
# the recorded evaluation samples of today's default candidate, in the order they were run
SAMPLES = ("cross0.3", "cross0.3_fresh", "cross0.3_next", "cross0.3_larger_lr", "cross0.3_movement", "cross0.3_niqe")


def features(run: dict, point: dict, names: tuple[str, ...]) -> list[float]:
    """The named readings of one evaluation point (``room``: what the run's gate leaves the fidelity gain)."""
    gate = effective_gate(run)
    room = fidelity_room(gate) if gate is not None else 0.0
    derived = {"abs_copying": abs(point["copying"]), "abs_texture": abs(point["texture"]), "room": room,
               "fidelity_room": point["fidelity"] * room}
    assert set(derived) == set(DERIVED)
    return [derived[n] if n in derived else point[n] for n in names]


def records(runs: list[dict], names: tuple[str, ...]) -> bool:
    """Whether every run records the readings ``names`` are computed from."""
    return all(n in r["points"][-1] for r in runs for n in names if n not in DERIVED)


def _design(runs: list[dict], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of every point after step 0: features, clipped targets, and each row's set (for cross-validation)."""
    rows = [(features(r, p, names), p["lpips_change"], r["set"]) for r in runs for p in r["points"][1:]]
    x = np.array([row[0] for row in rows], dtype=float)
    y = np.clip([row[1] for row in rows], -CLIP, CLIP)
    return x, y, np.array([row[2] for row in rows])


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> dict:
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-12
    z = (x - mean) / std
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return {"mean": mean.tolist(), "std": std.tolist(), "coef": coef.tolist(), "intercept": float(y.mean())}


def _apply(model: dict, x: np.ndarray) -> np.ndarray:
    return ((x - np.asarray(model["mean"])) / np.asarray(model["std"])) @ np.asarray(model["coef"]) + model["intercept"]


def fit(runs: list[dict], names: tuple[str, ...]) -> dict:
    """The ridge model, its strength by leave-one-set-out Spearman of the held-out set's points, refitted on all."""
    x, y, sets = _design(runs, names)
    cv = {}
    for alpha in ALPHAS:
        predicted = np.empty_like(y)
        for name in np.unique(sets):
            held = sets == name
            predicted[held] = _apply(_ridge(x[~held], y[~held], alpha), x[held])
        cv[alpha] = spearman(predicted.tolist(), y.tolist())
    alpha = max(ALPHAS, key=lambda a: cv[a] if math.isfinite(cv[a]) else -math.inf)
    return {"features": list(names), "alpha": alpha, "cv_spearman": {str(a): v for a, v in cv.items()},
            "points": len(y), "runs": len(runs), **_ridge(x, y, alpha)}


def predict(model: dict, run: dict, point: dict) -> float:
    """The predicted LPIPS change of one evaluation point (0 at step 0, as the signal is)."""
    if point["step"] == 0:
        return 0.0
    return float(_apply(model, np.array([features(run, point, tuple(model["features"]))]))[0])


def score(model: dict, runs: list[dict], gate_threshold: float) -> dict:
    """Spearman of the prediction at the last step (all runs, within sets, families alone), and the decisions it
    gives behind the gate: the lowest predicted point if the gate opens and it is predicted to gain ``MARGIN``."""
    for r in runs:
        for p in r["points"]:
            p["learned"] = predict(model, r, p)
    final = spearman([r["points"][-1]["learned"] for r in runs], [r["points"][-1]["lpips_change"] for r in runs])
    kept = []
    for r in runs:
        gate = effective_gate(r)
        best = min(r["points"], key=lambda p: p["learned"])
        open_ = gate is not None and gate >= (r.get("gate_threshold") or gate_threshold)
        kept.append(best["lpips_change"] if open_ and best["learned"] <= -MARGIN else 0.0)
    return {"runs": len(runs), "spearman_final": final, **ranked_inside(runs, "learned"),
            "adapted": int(sum(k != 0.0 for k in kept)), "kept_lpips_change": float(np.mean(kept)),
            "kept_worse": int(sum(k > WORSE for k in kept))}


def _runs(paths: list[Path]) -> list[dict]:
    return [r for path in paths for r in json.loads(path.read_text())["runs"]]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("fit", "score"):
        sys.exit(__doc__)
    if sys.argv[1] == "fit":
        runs = _runs([Path(p) for p in sys.argv[2:]])
        MODEL.write_text(json.dumps({"trained_on": sys.argv[2:], "base": fit(runs, FEATURES),
                                     "extended": fit(runs, EXTENDED)}, indent=1))
        print(f"written {MODEL}")
        return
    from gate_setup import THRESHOLD

    models = json.loads(MODEL.read_text())
    samples = {name: _runs([RESULTS / f"signal_check_per_image_{name}_x86_64_CPU.json"]) for name in SAMPLES}
    table = {}
    for kind in ("base", "extended"):
        model = models[kind]
        names = tuple(model["features"])
        scored = {name: score(model, runs, THRESHOLD) for name, runs in samples.items() if records(runs, names)}
        scored["pooled"] = score(model, [r for name in scored for r in samples[name]], THRESHOLD)
        table[kind] = scored
        cv = model["cv_spearman"][str(model["alpha"])]
        print(f"\n{kind} model (alpha {model['alpha']:g}, training leave-one-set-out Spearman {cv:+.3f})")
        print("| sample | runs | Spearman | within sets | families | adapted | kept LPIPS | kept worse |")
        print("|---|---|---|---|---|---|---|---|")
        for sample, s in scored.items():
            print(f"| {sample} | {s['runs']} | {s['spearman_final']:+.3f} | {s['spearman_within_sets']:+.3f} | "
                  f"{s['spearman_families']:+.3f} | {s['adapted']} | {s['kept_lpips_change']:+.4f} | "
                  f"{s['kept_worse']} |")
    out = RESULTS / "signal_model_score_x86_64_CPU.json"
    out.write_text(json.dumps(table, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
