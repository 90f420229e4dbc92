"""Pipeline names and one-line descriptions, importable without torch (the CLI's --help stays fast)."""

from __future__ import annotations

TRAINING_PIPELINES = ("bsrgan", "realesrgan", "broad", "resize")
# E+R pretraining draws its synthetic pairs from the training pipelines with these odds (``pretrain --mix`` sets
# others; the bundled checkpoint's last phase was trained on this mix, its earlier ones without ``resize`` on broad
# 0.6, BSRGAN 0.2, Real-ESRGAN 0.2).
TRAINING_MIX = {"broad": 0.45, "bsrgan": 0.15, "realesrgan": 0.15, "resize": 0.25}
EVALUATION_FAMILIES = ("defocus_noise", "motion", "bayer_jpeg", "film")
# Evaluation families whose degradation *types* no training pipeline contains (the four above now lie inside the
# broad space's types, with their images and parameter draws kept out of training).
UNSEEN_FAMILIES = ("halftone_scan", "gif_palette")
CONTROLS = ("bicubic",)  # a plain downsample: one of the ``resize`` training pipeline's draws, never its images

DESCRIPTIONS: dict[str, str] = {
    "bicubic": "control: antialiased bicubic downsampling only (no randomness)",
    "bsrgan": "training: BSRGAN shuffled Gaussian blur x2 / downsample / Gaussian noise / JPEG, then JPEG",
    "realesrgan": "training: Real-ESRGAN second-order blur/resize/noise/JPEG with sinc filters",
    "broad": "training: optics (defocus, Gaussian, motion lines and arcs, chromatic aberration, vignetting), "
             "resize chains, camera ISP (linear light, white balance and colour errors, Bayer + 3 demosaics, "
             "shot/read noise, tone curve, sharpening) or film scan (fading, grain, scan blur), JPEG 4:2:0/4:4:4 "
             "and double, global tone",
    "resize": "training: the broad space's resize chain alone (area, bilinear, bicubic, Lanczos, nearest; up to two "
              "intermediate sizes): downscaled web images and thumbnails",
    "defocus_noise": "evaluation: defocus disc blur, downsample, Poisson-Gaussian sensor noise",
    "motion": "evaluation: linear motion blur, downsample, mild sensor noise",
    "bayer_jpeg": "evaluation: downsample, RGGB mosaic + bilinear demosaic, JPEG q 40-70",
    "film": "evaluation: mild defocus, downsample, faded colours, film grain",
    "halftone_scan": "evaluation, unseen type: CMY halftone print, scanner blur, downsample",
    "gif_palette": "evaluation, unseen type: downsample, 16-96 colour palette with Floyd-Steinberg dithering",
}
assert set(DESCRIPTIONS) == {*CONTROLS, *TRAINING_PIPELINES, *EVALUATION_FAMILIES, *UNSEEN_FAMILIES}
assert set(TRAINING_MIX) <= set(TRAINING_PIPELINES) and abs(sum(TRAINING_MIX.values()) - 1) < 1e-9


def parse_mix(text: str) -> dict[str, float]:
    """``"broad=0.45,resize=0.25,..."`` -> {pipeline: odds}, for ``pretrain --mix``; odds need not sum to 1 (they
    are normalised when drawn). Raises ValueError naming what is wrong."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"--mix entry {part!r} is not NAME=ODDS")
        if name not in TRAINING_PIPELINES:
            raise ValueError(f"--mix: {name!r} is not a training pipeline ({', '.join(TRAINING_PIPELINES)})")
        if name in mix:
            raise ValueError(f"--mix names {name!r} twice")
        try:
            odds = float(value)
        except ValueError:
            raise ValueError(f"--mix: the odds of {name!r} must be a number, not {value.strip()!r}") from None
        if not odds >= 0 or odds == float("inf"):
            raise ValueError(f"--mix: the odds of {name!r} must be finite and >= 0, not {value.strip()}")
        mix[name] = odds
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("--mix needs at least one pipeline with odds above 0")
    return mix
