"""LPIPS-alex on one photo under known degradations, and Real-ESRGAN x4plus vs bicubic (issue: foundation).

Run: .venv/bin/python bench/lpips_sanity.py   -> prints a table, writes bench/results/lpips_sanity.json
"""

from __future__ import annotations

import io
import json
import platform
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFilter
from skimage import data

from lway_engine.demo import resize
from lway_engine.hardware import cpu_features
from lway_engine.inference.upscale import UpscaleOptions, upscale_image
from lway_engine.media.images import Image
from lway_engine.metrics import lpips_arrays
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import load_model


def main() -> None:
    hr = data.astronaut()[:384, 64:448].astype(np.float32) / 255  # 384 x 384 crop
    pil = PILImage.fromarray(np.rint(hr * 255).astype(np.uint8))
    metric = LPIPS("alex")
    cases: dict[str, np.ndarray] = {"identical": hr}
    for sigma in (1, 2, 4):
        blurred = pil.filter(ImageFilter.GaussianBlur(sigma))
        cases[f"gaussian blur sigma {sigma}"] = np.asarray(blurred, np.float32) / 255
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=10)
    cases["JPEG q10"] = np.asarray(PILImage.open(buffer).convert("RGB"), np.float32) / 255
    lr = resize(hr, 0.25)
    cases["bicubic x4 of the 4x-downscaled photo"] = resize(lr, 4)
    model = load_model("realesrgan-x4plus")
    cases["Real-ESRGAN x4plus of the 4x-downscaled photo"] = upscale_image(model, Image(lr, None, 8),
                                                                           UpscaleOptions(tile=0)).pixels
    rows = {name: lpips_arrays(metric, img, hr) for name, img in cases.items()}
    print(f"{'astronaut 384x384 vs':<48} LPIPS-alex")
    for name, value in rows.items():
        print(f"{name:<48} {value:.4f}")
    out = Path(__file__).resolve().parent / "results" / "lpips_sanity.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": f"{platform.processor() or platform.machine()} CPU",
                               "cpu": cpu_features().as_dict(), "lpips_alex": rows}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
