"""``bench/signal_model.py`` (the learned no-HR signal): its ridge fit finds a relation planted in synthetic runs, its
cross-validation holds whole sets out, and its decisions stay behind the gate."""

from __future__ import annotations

import numpy as np


def _runs(seed: int, gate: float, sets: tuple[str, ...] = ("city100", "motion", "film")) -> list[dict]:
    """Runs whose true change is planted: LPIPS rises with |copying| and falls with fidelity where the gate opens."""
    rng = np.random.default_rng(seed)
    runs = []
    for name in sets:
        for image in range(4):
            points = [{"step": 0, "fidelity": 0.0, "copying": 0.0, "texture": 0.0, "coarse": 0.0, "departure": 0.0,
                       "lpips_change": 0.0}]
            for step in (10, 20, 30, 40):
                fidelity, copying = rng.normal(-0.1, 0.1), rng.normal(0, 0.3)
                points.append({"step": step, "fidelity": fidelity, "copying": copying, "texture": rng.normal(0, 0.2),
                               "coarse": rng.normal(0, 0.1), "departure": abs(rng.normal(0, 0.05)),
                               "lpips_change": 0.05 * abs(copying) + 0.2 * fidelity * (gate > 1.5)})
            runs.append({"set": name, "image": str(image), "explainability": gate, "set_explainability": gate,
                         "gate_threshold": 1.5, "points": points})
    return runs


def test_fit_recovers_a_planted_relation_and_scores_fresh_runs(bench) -> None:
    signal_model = bench("signal_model")
    model = signal_model.fit(_runs(0, 2.0) + _runs(1, 1.0), signal_model.FEATURES)
    assert model["runs"] == 24 and model["points"] == 96
    assert model["cv_spearman"][str(model["alpha"])] > 0.8  # held-out sets: the relation is the same in each
    fresh = _runs(2, 2.0)
    scored = signal_model.score(model, fresh, 1.5)
    assert scored["spearman_final"] > 0.8 and scored["runs"] == 12
    assert all(r["points"][0]["learned"] == 0.0 for r in fresh)  # step 0 is the unadapted model: no change


def test_decisions_stay_behind_the_gate(bench) -> None:
    signal_model = bench("signal_model")
    model = signal_model.fit(_runs(0, 2.0) + _runs(1, 1.0), signal_model.FEATURES)
    shut = signal_model.score(model, _runs(3, 1.0), 1.5)
    assert shut["adapted"] == 0 and shut["kept_lpips_change"] == 0.0
    opened = signal_model.score(model, _runs(3, 2.0), 1.5)
    assert opened["adapted"] > 0 and opened["kept_worse"] == 0


def test_records_needs_every_raw_reading(bench) -> None:
    signal_model = bench("signal_model")
    runs = _runs(0, 2.0)
    assert signal_model.records(runs, signal_model.FEATURES)
    assert not signal_model.records(runs, signal_model.EXTENDED)  # no movement or niqe recorded
