"""Where benchmarks write their JSON: ``bench/results/``, or ``$LWAY_BENCH_RESULTS`` (the GPU suite's dry run
points it at a scratch folder so that it never overwrites measured results)."""

from __future__ import annotations

import os
from pathlib import Path


def results_dir() -> Path:
    folder = Path(os.environ.get("LWAY_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
