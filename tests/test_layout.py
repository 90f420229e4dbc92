"""The installed package has the product's layout: everything under ``lway_engine``, nothing bare."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import lway_engine

REPO = Path(__file__).resolve().parents[1]


def test_tests_run_against_the_installed_package() -> None:
    assert "site-packages" in Path(lway_engine.__file__).parts, lway_engine.__file__


def test_kernels_and_export_install_under_lway_engine() -> None:
    import lway_engine.export
    import lway_engine.kernels

    for module in (lway_engine.kernels, lway_engine.export):
        assert Path(module.__file__).parent.parent == Path(lway_engine.__file__).parent
    assert importlib.util.find_spec("kernels") is None
    assert importlib.util.find_spec("export") is None


def test_cli_help_lists_the_commands(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "lway-engine"  # the installed entry point, run away from the source tree
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True, cwd=tmp_path)
    for command in ("upscale", "weights", "demo", "adapt", "pretrain", "degrade", "export", "info"):
        assert command in out.stdout
