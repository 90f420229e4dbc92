"""``lway-engine evaluate``: benchmark layouts, name matching, errors, and the table/CSV/JSON it writes.

The RealSR V3 and DRealSR trees are built in tmp_path from crops of real photos, with the datasets' documented
folder structure and file names; City100 runs on the real pairs where ../shared/data is present.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lway_engine.cli import app
from lway_engine.evaluation import PairingError, SizeMismatchError, evaluate_pairs, match_pairs
from lway_engine.evaluation.layouts import detect_layout
from lway_engine.media.images import Image, ImageReadError, read_image, to_tensor, write_image
from lway_engine.metrics import psnr, ssim


def _write(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, Image(np.ascontiguousarray(pixels, dtype=np.float32), None, 8))
    return path


def _crops(photo, count: int, size: int = 64) -> list[np.ndarray]:
    """Distinct real-photo crops (different regions of scikit-image's astronaut)."""
    img = photo("astronaut")
    return [img[40 * i : 40 * i + size, 60 + 30 * i : 60 + 30 * i + size] for i in range(count)]


def _lr(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w, _ = hr.shape
    return hr.reshape(h // scale, scale, w // scale, scale, 3).mean(axis=(1, 3))


def _realsr_tree(root: Path, photo) -> list[np.ndarray]:
    """RealSR V3: <Camera>/{Train,Test}/{2,3,4}/<Camera>_NNN_HR.png + _LR<scale>.png."""
    hrs = _crops(photo, 4)
    for camera, hr in (("Canon", hrs[0]), ("Nikon", hrs[1])):
        test4 = root / camera / "Test" / "4"
        _write(test4 / f"{camera}_001_HR.png", hr)
        _write(test4 / f"{camera}_001_LR4.png", _lr(hr, 4))
        _write(root / camera / "Test" / "2" / f"{camera}_001_HR.png", hrs[2])  # another scale's crop
        _write(root / camera / "Train" / "4" / f"{camera}_900_HR.png", hrs[3])  # training data
    return hrs


def test_realsr_layout_pairs_test_set_of_the_scale(tmp_path, photo) -> None:
    hrs = _realsr_tree(tmp_path / "RealSR(V3)", photo)
    sr = tmp_path / "sr"
    _write(sr / "Canon_001_LR4.png", hrs[0])  # named after the LR input
    _write(sr / "Nikon_001.png", hrs[1])  # named after the key
    root = tmp_path / "RealSR(V3)"
    assert detect_layout(root, 4) == "realsr"
    pairs = match_pairs(sr, root, "auto", 4)
    assert [(p.key, p.sr.name, p.hr.relative_to(root).as_posix()) for p in pairs] == [
        ("Canon_001", "Canon_001_LR4.png", "Canon/Test/4/Canon_001_HR.png"),
        ("Nikon_001", "Nikon_001.png", "Nikon/Test/4/Nikon_001_HR.png"),
    ]
    # one Test/4 folder directly works too
    only_canon = tmp_path / "sr_canon"
    _write(only_canon / "Canon_001_HR.png", hrs[0])
    assert [p.key for p in match_pairs(only_canon, root / "Canon" / "Test" / "4", "realsr", 4)] == ["Canon_001"]


def test_drealsr_layout(tmp_path, photo) -> None:
    """DRealSR: Test_x4/test_HR/<name>_x1.png with test_LR/<name>_x4.png; Train_x4 is skipped."""
    hrs = _crops(photo, 3)
    root = tmp_path / "DRealSR" / "x4"
    for i, hr in enumerate(hrs[:2]):
        _write(root / "Test_x4" / "test_HR" / f"DSC_{i:04d}_x1.png", hr)
        _write(root / "Test_x4" / "test_LR" / f"DSC_{i:04d}_x4.png", _lr(hr, 4))
    _write(root / "Train_x4" / "train_HR" / "DSC_0900_x1.png", hrs[2])
    sr = tmp_path / "sr"
    _write(sr / "DSC_0000_x4.png", hrs[0])
    _write(sr / "DSC_0001.png", hrs[1])
    assert detect_layout(root, 4) == "drealsr"
    pairs = match_pairs(sr, root, "auto", 4)
    assert [(p.key, p.sr.name, p.hr.name) for p in pairs] == [
        ("DSC_0000", "DSC_0000_x4.png", "DSC_0000_x1.png"), ("DSC_0001", "DSC_0001.png", "DSC_0001_x1.png")]


def test_city100_layout_and_the_registered_shot_as_a_baseline(shared_file) -> None:
    """The real City100 folder as both --hr and --sr: each NNNL (same size, real lens blur) pairs with its NNNH."""
    root = shared_file("City100_NikonD5500_crop768")
    assert detect_layout(root, 4) == "city100"
    pairs = match_pairs(root, root, "auto", 4)
    assert len(pairs) == 60
    assert all(p.sr.name == f"{p.key}L.png" and p.hr.name == f"{p.key}H.png" for p in pairs)
    result = evaluate_pairs(pairs[30:32], ["psnr", "ssim"], y_channel=True, crop=4, progress=False)
    for row, pair in zip(result.rows, pairs[30:32]):
        sr, hr = (to_tensor(read_image(p).rgb()) for p in (pair.sr, pair.hr))
        assert row["psnr"] == float(psnr(sr[..., 4:-4, 4:-4], hr[..., 4:-4, 4:-4], y_channel=True))
        assert row["ssim"] == float(ssim(sr[..., 4:-4, 4:-4], hr[..., 4:-4, 4:-4], y_channel=True))
        assert 15 < row["psnr"] < 40 and 0.3 < row["ssim"] < 1


def test_missing_extra_and_duplicate_sr_files_are_named(tmp_path, photo) -> None:
    hrs = _crops(photo, 3)
    for i, hr in enumerate(hrs):
        _write(tmp_path / "hr" / f"{i:03d}H.png", hr)
        _write(tmp_path / "hr" / f"{i:03d}L.png", hr)
    _write(tmp_path / "sr" / "000.png", hrs[0])
    _write(tmp_path / "sr" / "000L.png", hrs[0])  # second SR image for the same reference
    _write(tmp_path / "sr" / "stray.png", hrs[1])
    with pytest.raises(PairingError) as err:
        match_pairs(tmp_path / "sr", tmp_path / "hr")
    message = str(err.value)
    assert "2 of 3 references have no SR image" in message and "001, 002" in message
    assert "1 SR images match no reference" in message and "stray.png" in message
    assert "000 (000.png, 000L.png)" in message


def test_size_mismatch_is_an_error_before_scoring(tmp_path, photo) -> None:
    hr = _crops(photo, 1, size=64)[0]
    _write(tmp_path / "hr" / "a.png", hr)
    _write(tmp_path / "sr" / "a.png", hr[:60])
    pairs = match_pairs(tmp_path / "sr", tmp_path / "hr", "plain")
    with pytest.raises(SizeMismatchError, match=r"a\.png 64x60 vs a\.png 64x64"):
        evaluate_pairs(pairs, ["psnr"], progress=False)
    (tmp_path / "hr" / "a.png").write_bytes(b"junk")  # an unreadable reference is named, not a Pillow traceback
    with pytest.raises(ImageReadError, match=r"a\.png: not a readable image"):
        evaluate_pairs(pairs, ["psnr"], progress=False)


def test_cli_writes_table_csv_and_json(tmp_path, photo) -> None:
    from lway_engine.evaluation.ladders import distort

    hrs = _crops(photo, 3, size=96)
    expected = {}
    for i, hr in enumerate(hrs):
        _write(tmp_path / "hr" / f"img{i}.png", hr)
        degraded = distort(to_tensor(hr), "noise", i, seed=i)
        _write(tmp_path / "sr" / f"img{i}.png", degraded[0].numpy().transpose(1, 2, 0))
        expected[f"img{i}"] = float(psnr(degraded, to_tensor(hr)))
    out_csv, out_json = tmp_path / "out" / "scores.csv", tmp_path / "out" / "scores.json"
    result = CliRunner().invoke(app, ["evaluate", "--sr", str(tmp_path / "sr"), "--hr", str(tmp_path / "hr"),
                                      "--metrics", "psnr,ssim,nlpd,psnr", "--csv", str(out_csv), "--json",
                                      str(out_json)])
    assert result.exit_code == 0, result.output
    assert "psnr ↑" in result.output and "nlpd ↓" in result.output and "mean" in result.output
    assert out_csv.read_text().splitlines()[0] == "name,psnr,ssim,nlpd,sr,hr"  # a metric named twice: once
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["name"] for r in rows] == ["img0", "img1", "img2", "mean"]
    for row in rows[:3]:
        assert float(row["psnr"]) == pytest.approx(expected[row["name"]], abs=1e-12)
    assert float(rows[3]["psnr"]) == pytest.approx(np.mean(list(expected.values())), abs=1e-9)
    doc = json.loads(out_json.read_text())
    assert doc["settings"] == {"y_channel": False, "crop": 0, "layout": "plain"}
    assert doc["metrics"]["psnr"]["higher_is_better"] and not doc["metrics"]["nlpd"]["higher_is_better"]
    assert [img["name"] for img in doc["images"]] == ["img0", "img1", "img2"]
    assert doc["mean"]["nlpd"] == pytest.approx(np.mean([img["nlpd"] for img in doc["images"]]), abs=1e-12)
    assert doc["images"][0]["psnr"] > doc["images"][2]["psnr"]  # stronger noise, lower PSNR


def test_cli_reports_pairing_errors_and_bad_options(tmp_path, photo) -> None:
    _write(tmp_path / "hr" / "a.png", _crops(photo, 1)[0])
    (tmp_path / "sr").mkdir()
    runner = CliRunner()
    base = ["evaluate", "--sr", str(tmp_path / "sr"), "--hr", str(tmp_path / "hr")]
    result = runner.invoke(app, [*base, "--metrics", "psnr"])
    assert result.exit_code == 2 and "1 of 1 references have no SR image" in result.output
    result = runner.invoke(app, [*base, "--metrics", "psnr,brisque"])
    assert result.exit_code == 2 and "brisque" in result.output


def test_identical_folders_give_ideal_scores(tmp_path, photo) -> None:
    for i, crop in enumerate(_crops(photo, 2, size=96)):
        _write(tmp_path / "hr" / f"{i}.png", crop)
        _write(tmp_path / "sr" / f"{i}.png", crop)
    pairs = match_pairs(tmp_path / "sr", tmp_path / "hr")
    result = evaluate_pairs(pairs, ["psnr", "ssim", "lpips-alex", "nlpd", "mad"], progress=False)
    mean = result.mean()
    assert mean["psnr"] == float("inf") and mean["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert mean["lpips-alex"] == pytest.approx(0, abs=1e-9) and mean["nlpd"] == 0 and mean["mad"] == 0
