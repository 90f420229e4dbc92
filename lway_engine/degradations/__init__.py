"""Seeded, reproducible HR -> LR degradation synthesis.

Training pipelines (BSRGAN, Real-ESRGAN) make pairs for the degradation encoder/reconstructor; the evaluation
families use degradations that neither those nor Real-ESRGAN's own training uses, to test generalisation;
"bicubic" is the control. Heavy modules (torch) load on first use, so importing the CLI command stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lway_engine.degradations.catalog import EVALUATION_FAMILIES, TRAINING_MIX, TRAINING_PIPELINES, UNSEEN_FAMILIES

if TYPE_CHECKING:
    from lway_engine.degradations.files import degrade_files, file_seed
    from lway_engine.degradations.pipelines import (
        PIPELINES, Pipeline, Step, apply_plan, crop_to_scale, degrade, degrade_with_plan, noise_free, optics_kernel,
        plan)

_LAZY = {
    "PIPELINES": "pipelines", "Pipeline": "pipelines", "Step": "pipelines", "apply_plan": "pipelines",
    "crop_to_scale": "pipelines", "degrade": "pipelines", "degrade_with_plan": "pipelines",
    "noise_free": "pipelines", "optics_kernel": "pipelines", "plan": "pipelines",
    "degrade_files": "files", "file_seed": "files",
}

__all__ = ["EVALUATION_FAMILIES", "TRAINING_MIX", "TRAINING_PIPELINES", "UNSEEN_FAMILIES", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"lway_engine.degradations.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lway_engine.degradations' has no attribute {name!r}")
