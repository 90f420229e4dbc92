"""``bench/naturalness.py`` (the NIQE-style probe): its distribution fits against scipy's own distributions, and its
distance on real photos against what noise and blur do to them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.stats import gennorm


@pytest.mark.parametrize("shape", [0.7, 1.0, 2.0, 3.5])
def test_ggd_fit_recovers_scipy_gennorm(bench, shape: float) -> None:
    naturalness = bench("naturalness")
    scale = 0.6
    samples = gennorm.rvs(shape, scale=scale, size=(3, 200_000), random_state=np.random.default_rng(0))
    fitted_shape, variance = naturalness.ggd_fit(samples)
    expected_variance = gennorm.var(shape, scale=scale)
    assert np.allclose(fitted_shape, shape, rtol=0.05)
    assert np.allclose(variance, expected_variance, rtol=0.03)


def test_aggd_fit_recovers_side_variances_and_shape(bench) -> None:
    naturalness = bench("naturalness")
    shape, left, right = 1.3, 0.5, 1.5
    magnitude = np.abs(gennorm.rvs(shape, size=(2, 400_000), random_state=np.random.default_rng(1)))
    sign = np.random.default_rng(2).random(magnitude.shape) < left / (left + right)  # AGGD: mass ∝ side scale
    samples = np.where(sign, -left * magnitude, right * magnitude)
    fitted_shape, mean, left_var, right_var = naturalness.aggd_fit(samples)
    unit = gennorm.var(shape)  # the variance of the unit-scale GGD, which each side's second moment scales
    assert np.allclose(fitted_shape, shape, rtol=0.05)
    assert np.allclose(left_var, left**2 * unit, rtol=0.03) and np.allclose(right_var, right**2 * unit, rtol=0.03)
    assert np.all(mean > 0)  # the heavier right side pulls the mean up


def test_distance_rises_with_noise_and_blur(bench, photo) -> None:
    naturalness = bench("naturalness")
    pristine = naturalness.fit_pristine(photo(name).astype(np.float64) for name in ("astronaut", "chelsea",
                                                                                   "rocket", "immunohistochemistry"))
    clean = photo("coffee", 256).astype(np.float64)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)
    blurred = gaussian_filter(clean, (2.0, 2.0, 0))
    features, sharpness = naturalness.patch_features(clean)
    assert features.shape == (64, naturalness.FEATURES) and sharpness.shape == (64,)
    distance = naturalness.naturalness_distance(clean, pristine)
    assert np.isfinite(distance)
    assert naturalness.naturalness_distance(noisy, pristine) > distance + 1
    assert naturalness.naturalness_distance(blurred, pristine) > distance + 1
    assert np.isnan(naturalness.naturalness_distance(clean[:20, :20], pristine))  # no whole patch: no reading


def test_missing_pristine_model_says_how_to_fit(bench, tmp_path: Path) -> None:
    naturalness = bench("naturalness")
    with pytest.raises(FileNotFoundError, match="naturalness.py fit"):
        naturalness.load_pristine(tmp_path / "absent.json")
