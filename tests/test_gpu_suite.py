"""``bench/gpu_suite.sh --dry-run``: the GPU suite's every step, end to end on this CPU at tiny sizes, so the one
command a lent GPU runs has been run before device time is spent on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.platform != "linux", reason="bash + coreutils timeout")
def test_dry_run_passes_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(REPO / "bench" / "gpu_suite.sh"), "--dry-run", str(tmp_path)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    statuses = {s["step"]: s["status"] for s in summary["steps"]}
    assert {"tests", "kernels", "reconstructor", "adapt_speed", "deploy", "quality"} <= set(statuses)
    assert all(status in ("ok", "skipped") for status in statuses.values()), statuses
    assert summary["tests"]["counts"]["failure"] == summary["tests"]["counts"]["error"] == 0
    assert summary["tests"]["counts"]["passed"] > 0  # the CPU-runnable compile and self-check tests ran
    figures = summary["figures"]
    assert any(k.startswith("adapt_step_s[") for k in figures) and any(k.startswith("deploy[") for k in figures)
    assert (tmp_path / "summary.md").read_text().startswith("# GPU suite")
    # nothing was written beside the committed results
    assert not any(p.stat().st_mtime > tmp_path.stat().st_ctime for p in (REPO / "bench" / "results").iterdir())
