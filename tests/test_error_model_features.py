"""``bench/error_model_features.py`` (candidate features for R's error model, tried on saved fit samples): each LR
feature reads what it is named for on a real photo, and the tool tells a bias a feature can remove from one that only
the samples' origin could (the resize crops' case)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image as PILImage


def _lr(photo, size: int = 256) -> torch.Tensor:
    """(1, 3, size/4, size/4): a photo area-downsampled 4x, a clean downscale."""
    hr = torch.from_numpy(photo("astronaut", size)).permute(2, 0, 1)[None]
    return F.avg_pool2d(hr, 4)


def _jpeg(x: torch.Tensor, quality: int, subsampling: int) -> torch.Tensor:
    image = PILImage.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    return torch.from_numpy(np.asarray(PILImage.open(buffer)).astype(np.float32) / 255).permute(2, 0, 1)[None]


def test_lr_features_read_blur_jpeg_and_chroma(photo, bench) -> None:
    module = bench("error_model_features")
    lr = _lr(photo)
    binomial = torch.tensor([1.0, 2.0, 1.0]) / 4
    kernel = (binomial[:, None] * binomial[None, :]).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(lr, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    assert (module.nyquist(blurred) < module.nyquist(lr) - 1).all()  # a blur empties the band near Nyquist
    assert module.slope(blurred) < module.slope(lr) - 1
    compressed = _jpeg(lr, 20, 2)  # 4:2:0 at a low quality: the 8x8 grid shows, colour detail goes
    assert (module.blocks(compressed) > module.blocks(lr) + 0.05).all()
    assert module.chroma(compressed) < module.chroma(_jpeg(lr, 95, 0)) - 0.3


def test_knn_reads_the_neighbours_error_leaving_each_fitted_row_out(bench) -> None:
    module = bench("error_model_features")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, module.EMBED))
    cluster = np.repeat([0, 1], 40)
    x = torch.from_numpy(centres[cluster] + 0.01 * rng.normal(size=(80, module.EMBED)))
    y = torch.from_numpy(np.where(cluster == 0, -5.0, -3.0) + 0.1 * rng.normal(size=80))
    value = module.knn(x, y, torch.arange(0, 80, 2))
    assert torch.allclose(value[:, 0], torch.from_numpy(np.where(cluster == 0, -5.0, -3.0)), atol=0.1)
    alone = module.knn(x[:17], y[:17], torch.arange(17))  # 16 neighbours: every other row, never the row itself
    assert torch.isclose(alone[0, 0], y[1:17].mean())


def test_tool_separates_an_invisible_bias_from_a_missing_feature(tmp_path: Path, photo, bench, monkeypatch) -> None:
    """Planted: the error rises with a visible feature, and the "resize" crops' error is lower by 0.3 in log
    whatever they look like. The oracle removes the bias, the classifier of "looks like a resize" (half right) only
    in part; in every band of the lookalike table that holds enough of both, the resize crops' error is
    over-predicted relative to the others'."""
    module = bench("error_model_features")
    rng = np.random.default_rng(1)
    n, plain = 1300, 1000
    origins = np.array(["resize" if i % 3 == 0 else "broad" for i in range(plain)] + ["outlier:impulse"] * 300)
    visible = rng.normal(size=(n, 1))
    looks = (origins == "resize") + rng.normal(0, 0.7, size=n)  # a classifier reads it half right
    x = np.concatenate([rng.normal(size=(n, module.EMBED)), visible, looks[:, None], rng.normal(size=(n, 8))], 1)
    y = 0.5 * visible[:, 0] - 4 - 0.3 * (origins == "resize") + 0.05 * rng.normal(size=n)
    lr = np.repeat(_lr(photo, 128).numpy(), n, 0).astype(np.float16)
    np.savez(tmp_path / "s.npz", features=x, log_error=y, plain=plain, origin=origins, lr=lr)
    monkeypatch.setenv("LWAY_BENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(sys, "argv", ["error_model_features.py", str(tmp_path / "s.npz")])
    module.main()
    written = json.loads(next((tmp_path / "results").glob("error_model_features_s_*.json")).read_text())
    shipped = written["variants"]["shipped"]["plain"]["by_origin"]
    oracle = written["variants"]["oracle"]["plain"]["by_origin"]
    assert shipped["resize"]["true_over_predicted"] < 0.9 and abs(oracle["resize"]["true_over_predicted"] - 1) < 0.03
    classifier = written["variants"]["classifier"]["plain"]["by_origin"]
    assert 0.6 < written["lookalikes"]["auc"] < 0.95 and classifier["resize"]["true_over_predicted"] < 0.95
    bands = [b for b in written["lookalikes"]["bands"] if b["resize"]["samples"] >= 10 and b["others"]["samples"] >= 10]
    assert bands and all(b["resize"]["true_over_predicted"] < b["others"]["true_over_predicted"] for b in bands)


def test_auc_against_its_definition(bench) -> None:
    """The rank AUC equals the share of (positive, negative) pairs the score orders right."""
    module = bench("error_model_features")
    rng = np.random.default_rng(2)
    score, positive = torch.from_numpy(rng.normal(size=60)), torch.from_numpy(rng.random(60) < 0.4)
    pairs = [(a, b) for a in score[positive] for b in score[~positive]]
    assert abs(module.auc(score, positive) - sum(float(a > b) for a, b in pairs) / len(pairs)) < 1e-12
    assert module.auc(positive.double(), positive) == 1.0 and module.auc(-positive.double(), positive) == 0.0
