"""A NIQE-style no-reference naturalness distance, for ``bench/signal_probes.py``'s ``niqe`` readings.

    .venv/bin/python bench/naturalness.py fit [DATA]   # the pristine model, from the training split's photos

Why: inside a degradation set the true LPIPS changes of adaptation runs are small and of both signs, and no reading
of the held-out LR ranks them, while the held-out strip's own true change ranks the whole image's at +0.86
(``bench/results/signal_check_movement_preregistration.md``): the SR pixels hold the ranking. Natural-scene
statistics (Mittal et al., "Making a completely blind image quality analyzer", 2013) ask of the SR output alone
whether it left the statistics of sharp photos: painted-in noise and grain, smoothing and ringing each move them.
No HR and no reconstructor enter, so the trained area can be scored as well as the held-out strip.

Features, per ``PATCH``-px patch and at two scales (the second a 2x area downsample, patches of half the side): the
mean-subtracted contrast-normalised (MSCN) luma's generalised Gaussian shape and variance, and for its four
neighbour products (horizontal, vertical, both diagonals) an asymmetric generalised Gaussian's shape, mean and two
side variances: 18 per scale, 36 in all. The pristine model is their mean and covariance over the sharpest patches
(local contrast above ``SHARPNESS`` of each image's sharpest) of the training split's photos: Urban100, Sun_Hays80
files 1-40 and City100 pairs 001-030's HR (``bench/training_split.py``); Manga109's drawn pages are not photos.
The distance of an image is the Mahalanobis distance between its patches' mean and the pristine mean under the two
covariances' average, as NIQE's. Our own implementation with our patch size (the SR outputs scored are 256 px);
its values are not comparable with published NIQE numbers.

Outcome (``bench/results/signal_check_niqe_preregistration.md``): +0.41 on the whole image and +0.39 on the strip,
short of 0.6. On City100 the adapted output moves towards its HR and away from sharp photos' statistics at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import gamma as gamma_fn

PATCH = 32  # px at the first scale: 64 patches on a 256-px SR output, 16 on its held-out strip
SHARPNESS = 0.75  # NIQE's: pristine patches are those at least this fraction of the image's sharpest
FEATURES = 36
PRISTINE = Path(__file__).resolve().parent / "results" / "niqe_pristine.json"

_SHAPES = np.arange(0.2, 10.0, 0.001)
_GGD_RATIO = gamma_fn(1 / _SHAPES) * gamma_fn(3 / _SHAPES) / gamma_fn(2 / _SHAPES) ** 2  # falls with the shape
_AGGD_RATIO = gamma_fn(2 / _SHAPES) ** 2 / (gamma_fn(1 / _SHAPES) * gamma_fn(3 / _SHAPES))  # rises with it


def luma255(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an (H, W, 3) image in [0, 1], on NIQE's 0-255 scale (its stabilising constant is 1)."""
    return 255.0 * (rgb[..., :3] @ np.array([0.299, 0.587, 0.114]))


def mscn(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean-subtracted contrast-normalised coefficients and the local contrast (7/6-px Gaussian window)."""
    mean = gaussian_filter(luma, 7 / 6, mode="nearest", truncate=2.5)
    contrast = np.sqrt(np.abs(gaussian_filter(luma * luma, 7 / 6, mode="nearest", truncate=2.5) - mean * mean))
    return (luma - mean) / (contrast + 1.0), contrast


def _blocks(values: np.ndarray, side: int) -> np.ndarray:
    """(patches, side * side) view of the whole ``side``-px tiles of ``values`` (a partial edge is dropped)."""
    rows, cols = values.shape[0] // side, values.shape[1] // side
    tiles = values[: rows * side, : cols * side].reshape(rows, side, cols, side).swapaxes(1, 2)
    return tiles.reshape(rows * cols, side * side)


def ggd_fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalised Gaussian (zero mean) shape and variance per row, by moment matching as BRISQUE/NIQE do."""
    variance = np.mean(samples**2, axis=1)
    ratio = variance / (np.mean(np.abs(samples), axis=1) ** 2 + 1e-12)
    shape = _SHAPES[np.argmin(np.abs(_GGD_RATIO[None] - ratio[:, None]), axis=1)]
    return shape, variance


def aggd_fit(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian shape, mean, left and right variance per row (moment matching)."""
    negative, positive = samples < 0, samples > 0
    left = np.sqrt(np.sum(samples**2 * negative, axis=1) / np.maximum(negative.sum(axis=1), 1))
    right = np.sqrt(np.sum(samples**2 * positive, axis=1) / np.maximum(positive.sum(axis=1), 1))
    skew = left / np.maximum(right, 1e-12)
    r_hat = np.mean(np.abs(samples), axis=1) ** 2 / np.maximum(np.mean(samples**2, axis=1), 1e-12)
    normalised = r_hat * (skew**3 + 1) * (skew + 1) / (skew**2 + 1) ** 2
    shape = _SHAPES[np.argmin(np.abs(_AGGD_RATIO[None] - normalised[:, None]), axis=1)]
    mean = (right - left) * gamma_fn(2 / shape) / gamma_fn(1 / shape) * np.sqrt(gamma_fn(1 / shape) /
                                                                                 gamma_fn(3 / shape))
    return shape, mean, left**2, right**2


def _scale_features(luma: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """18 features per ``side``-px patch of one scale, and each patch's mean local contrast (its sharpness)."""
    coefficients, contrast = mscn(luma)
    columns = list(ggd_fit(_blocks(coefficients, side)))
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        shifted = np.roll(coefficients, (-dy, -dx), axis=(0, 1))
        columns += aggd_fit(_blocks(coefficients * shifted, side))
    return np.stack(columns, axis=1), _blocks(contrast, side).mean(axis=1)


def patch_features(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(patches, 36) features of an (H, W, 3) image in [0, 1], and each patch's sharpness at the first scale."""
    luma = luma255(rgb)
    fine, sharpness = _scale_features(luma, PATCH)
    height, width = (s - s % 2 for s in luma.shape)
    half = luma[:height, :width].reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    coarse, _ = _scale_features(half, PATCH // 2)
    count = min(len(fine), len(coarse))
    return np.concatenate([fine[:count], coarse[:count]], axis=1), sharpness[:count]


def naturalness_distance(rgb: np.ndarray, pristine: dict[str, np.ndarray]) -> float:
    """NIQE-style distance of an image from the pristine model (higher: less like sharp photos); NaN with fewer
    than two whole patches."""
    features, _ = patch_features(rgb)
    features = features[np.all(np.isfinite(features), axis=1)]
    if len(features) < 2:
        return float("nan")
    gap = features.mean(axis=0) - pristine["mean"]
    pooled = (pristine["cov"] + np.cov(features, rowvar=False)) / 2
    return float(np.sqrt(max(gap @ np.linalg.pinv(pooled) @ gap, 0.0)))


def fit_pristine(images: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Mean and covariance of the sharpest patches' features over ``images`` ((H, W, 3) in [0, 1])."""
    kept = []
    for rgb in images:
        features, sharpness = patch_features(rgb)
        keep = (sharpness >= SHARPNESS * sharpness.max()) & np.all(np.isfinite(features), axis=1)
        kept.append(features[keep])
    features = np.concatenate(kept)
    return {"mean": features.mean(axis=0), "cov": np.cov(features, rowvar=False), "patches": len(features)}


def load_pristine(path: Path = PRISTINE) -> dict[str, np.ndarray]:
    """The pristine model written by ``fit``; a clear error when it has not been fitted."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `.venv/bin/python bench/naturalness.py fit` first")
    model = json.loads(path.read_text())
    return {"mean": np.asarray(model["mean"]), "cov": np.asarray(model["cov"])}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] != "fit":
        sys.exit(__doc__)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from training_split import CITY100, SUN, city100_hr_files, sun_files

    from lway_engine.media.images import read_image

    data = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[2] / "shared" / "data"
    files = sorted((data / "Urban100_HR_jpeg").glob("*.jpg")) + sun_files(data) + city100_hr_files(data)
    model = fit_pristine(read_image(p).rgb().astype(np.float64) for p in files)
    PRISTINE.write_text(json.dumps({"sources": ["Urban100_HR_jpeg", f"{SUN} files 1-40", f"{CITY100} 001-030 HR"],
                                    "images": len(files), "patch": PATCH, "sharpness": SHARPNESS,
                                    "patches": model["patches"], "mean": model["mean"].tolist(),
                                    "cov": model["cov"].tolist()}))
    print(f"written {PRISTINE}: {model['patches']} patches of {len(files)} images")


if __name__ == "__main__":
    main()
