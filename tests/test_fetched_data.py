"""The smartphone City100's extraction from a git snapshot and its reader (``bench/fetched_data.py``,
``bench/quality.py``): on a tiny repository built here, so that CI needs neither the network nor the real set."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image


def _snapshot(root, pairs: int) -> str:
    """A git repository laid out as CameraSR's (``City100/City100_iPhoneX/NNN{H,L}.PNG``); its commit."""
    folder = root / "City100" / "City100_iPhoneX"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, pairs + 1):
        for side in "HL":
            Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(folder / f"{i:03d}{side}.PNG")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "pairs"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def test_extracted_pairs_read_with_city100s_protocol(bench, tmp_path) -> None:
    fetched, quality = bench("fetched_data"), bench("quality")
    commit = _snapshot(tmp_path / "mirror", 2)
    out = tmp_path / "fetched" / "City100_iPhoneX"
    assert fetched.extract_city100_iphone(tmp_path / "mirror", out, commit, pairs=2) == 2
    source = tmp_path / "mirror" / "City100" / "City100_iPhoneX" / "002L.PNG"
    assert (out / "002L.png").read_bytes() == source.read_bytes()  # byte for byte
    (stem, lr, hr), = quality.registered_pairs(out, 1, 2)
    registered = np.asarray(Image.open(source), dtype=np.float32) / 255
    expected = registered.reshape(4, 4, 6, 4, 3).mean(axis=(1, 3))  # area-downsampled by 4
    assert stem == "002" and hr.shape == (16, 24, 3) and lr.shape == (4, 6, 3)
    np.testing.assert_allclose(lr, np.rint(expected * 255) / 255, atol=1e-6)


def test_missing_set_says_how_to_get_it(bench, tmp_path, monkeypatch) -> None:
    fetched = bench("fetched_data")
    monkeypatch.setattr(fetched, "FETCHED", tmp_path)
    with pytest.raises(FileNotFoundError, match="fetch github:ngchc/CameraSR"):
        fetched.city100_iphone_folder()
