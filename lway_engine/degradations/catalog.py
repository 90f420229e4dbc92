"""Pipeline names and one-line descriptions, importable without torch (the CLI's --help stays fast)."""

from __future__ import annotations

TRAINING_PIPELINES = ("bsrgan", "realesrgan")
EVALUATION_FAMILIES = ("defocus_noise", "motion", "bayer_jpeg", "film")
CONTROLS = ("bicubic",)

DESCRIPTIONS: dict[str, str] = {
    "bicubic": "control: antialiased bicubic downsampling only (no randomness)",
    "bsrgan": "training: BSRGAN shuffled Gaussian blur x2 / downsample / Gaussian noise / JPEG, then JPEG",
    "realesrgan": "training: Real-ESRGAN second-order blur/resize/noise/JPEG with sinc filters",
    "defocus_noise": "evaluation: defocus disc blur, downsample, Poisson-Gaussian sensor noise",
    "motion": "evaluation: linear motion blur, downsample, mild sensor noise",
    "bayer_jpeg": "evaluation: downsample, RGGB mosaic + bilinear demosaic, JPEG q 40-70",
    "film": "evaluation: mild defocus, downsample, faded colours, film grain",
}
assert set(DESCRIPTIONS) == {*CONTROLS, *TRAINING_PIPELINES, *EVALUATION_FAMILIES}
