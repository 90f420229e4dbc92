"""Save and resume the training runs of bench experiments (``target_denoiser.py``, ``mosaic_phase.py``): one file
with the model, the Adam state and the step, one JSON log beside it, both written atomically
(``lway_engine.atomic``), so a run killed mid-write resumes from its previous checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from lway_engine.atomic import atomic_write


def save_run(weights: Path, log_path: Path, model: nn.Module, optimiser: torch.optim.Optimizer, step: int,
             log: dict, **extra: object) -> None:
    """The checkpoint of ``step`` (``extra``: what rebuilding the model needs, e.g. its width), then the log."""
    state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step, **extra}
    atomic_write(weights, lambda tmp: torch.save(state, tmp))
    atomic_write(log_path, lambda tmp: tmp.write_text(json.dumps(log)))


def resume_run(weights: Path, log_path: Path, model: nn.Module, optimiser: torch.optim.Optimizer
               ) -> tuple[int, dict] | None:
    """Load the checkpoint into ``model`` and ``optimiser``: (its step, its log), or None where there is none."""
    if not weights.exists():
        return None
    state = torch.load(weights, map_location="cpu")
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    print(f"resumed at step {state['step']}", flush=True)
    return state["step"], json.loads(log_path.read_text())
