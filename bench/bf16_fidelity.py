"""How far the default CPU bf16 inference lands from float32, on photos: the number ``upscale --fp32``'s help quotes.

    .venv/bin/python bench/bf16_fidelity.py        # ~15 s on two threads

On a CPU with native bf16, ``upscale`` runs x4plus in bf16 (OpenVINO where installed, else PyTorch autocast) unless
``--fp32``. Each backend's 8-bit output of scikit-image's astronaut, coffee and chelsea (128 px centre crops,
resized from the largest square) is compared with the float32 output: PSNR, the share of identical values and the
largest difference in 8-bit levels. Writes bench/results/bf16_fidelity_<device>.json.
"""

from __future__ import annotations

import json
import math
import platform

import numpy as np
from PIL import Image as PILImage
from results_dir import results_dir
from skimage import data

from lway_engine.inference.upscaler import Upscaler
from lway_engine.media.images import Image

PHOTOS = ("astronaut", "coffee", "chelsea")


def photo(name: str, size: int = 128) -> Image:
    """The photo's largest centred square, resized to ``size`` (bicubic), as an 8-bit ``Image``."""
    pixels = getattr(data, name)()
    side = min(pixels.shape[:2])
    top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
    square = PILImage.fromarray(pixels[top : top + side, left : left + side]).resize((size, size), PILImage.BICUBIC)
    return Image(np.asarray(square, np.float32) / 255, None, 8)


def levels(image: Image) -> np.ndarray:
    return np.rint(image.pixels * 255)


def main() -> None:
    reference = Upscaler("realesrgan-x4plus", precision="fp32", backend="pytorch")
    runs = {"auto": Upscaler("realesrgan-x4plus"), "pytorch bf16": Upscaler("realesrgan-x4plus", backend="pytorch")}
    rows = []
    for name in PHOTOS:
        image = photo(name)
        exact = levels(reference.upscale(image))
        for label, upscaler in runs.items():
            out = levels(upscaler.upscale(image))
            mse = float(((out - exact) ** 2).mean())
            rows.append({"photo": name, "run": label, "bf16": upscaler.options.bf16,
                         "psnr_db": 10 * math.log10(255**2 / mse) if mse else math.inf,
                         "identical": float((out == exact).mean()), "max_levels": int(np.abs(out - exact).max())})
            print(f"{name:<10} {label:<13} {rows[-1]['psnr_db']:5.1f} dB, {rows[-1]['identical']:.0%} identical, "
                  f"largest difference {rows[-1]['max_levels']} levels")
    device = f"{platform.machine()}_CPU"
    path = results_dir() / f"bf16_fidelity_{device}.json"
    path.write_text(json.dumps({"device": device, "backends": {k: type(u.model.module).__name__ for k, u in
                                                               runs.items()}, "rows": rows}, indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
