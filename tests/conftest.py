"""Shared fixtures: a private weights cache for the session and the real models and photos tests run on."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load_bench(name: str):
    """A ``bench/`` script as a module (bench is not a package): its directory is on ``sys.path`` while it imports,
    because scripts import their neighbours (``signal_check``, ``gate_setup``) by plain name."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="session", autouse=True)
def lway_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tests never touch the user's cache; real sources fill this one (offline: no official URL is reachable)."""
    home = tmp_path_factory.mktemp("lway_home")
    old = os.environ.get("LWAY_HOME")
    os.environ["LWAY_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("LWAY_HOME", None)
    else:
        os.environ["LWAY_HOME"] = old


@pytest.fixture(scope="session")
def x4plus(lway_home: Path):
    from lway_engine.models import load_model

    return load_model("realesrgan-x4plus")


@pytest.fixture(scope="session")
def compact(lway_home: Path):
    from lway_engine.models import load_model

    return load_model("realesr-animevideov3")


@pytest.fixture(scope="session")
def lpips_alex(lway_home: Path):
    from lway_engine.metrics.lpips_net import LPIPS

    return LPIPS("alex")


def _photo(name: str = "astronaut", size: int | None = None) -> np.ndarray:
    """A scikit-image photo as float (H, W, 3) in [0, 1], optionally a centre crop of ``size``."""
    from skimage import data

    img = getattr(data, name)().astype(np.float32) / 255.0
    if size:
        top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        img = img[top : top + size, left : left + size]
    return np.ascontiguousarray(img)


def _shared_file(relative: str) -> Path:
    """A file from ../shared/data, skipping the test where that folder is absent (a fresh machine)."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="session")
def photo():
    """``photo(name, size)``: a scikit-image photo (see ``_photo``)."""
    return _photo


@pytest.fixture(scope="session")
def bench():
    """``bench(name)``: the ``bench/<name>.py`` script as a module (see ``_load_bench``)."""
    return _load_bench


@pytest.fixture(scope="session")
def shared_file():
    """``shared_file(relative)``: a path under ../shared/data, or skip (see ``_shared_file``)."""
    return _shared_file


@pytest.fixture()
def small_reconstruction():
    """A randomly initialised, small E+R (fast; adaptation tests need its mechanics, not its quality)."""
    from lway_engine.reconstruction import LWayReconstruction, ReconstructionConfig

    torch.manual_seed(0)
    return LWayReconstruction(ReconstructionConfig(scale=4, embed_dim=32, encoder_width=16, reconstructor_width=16,
                                                   num_blocks=1))


@pytest.fixture()
def fresh_compact(lway_home: Path):
    """Real-ESRGAN animevideov3 (the real, small Compact model), loaded fresh for each test that changes it."""
    from lway_engine.models import load_model

    return load_model("realesr-animevideov3")
