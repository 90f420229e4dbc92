"""Does the LWay loss point towards the true HR? R(HR, E(LR)) vs R(S(LR), E(LR)), scored against the LR, per set.

    .venv/bin/python bench/objective_check.py           # CPU, about 2 minutes; needs ../shared/data

Adaptation moves the SR model S so that the frozen reconstructor R, given S's output and the LR's embedding,
reproduces the LR. That helps only where R reproduces the LR better from the true HR than from S's current output;
where it does not (a degradation R never learned to produce, such as faded colours), the loss is lower for an SR
image that keeps the degradation, and adapting moves S away from the HR. This measures which case each set is in,
with no adaptation: the LWay loss (HF-weighted L1 + LPIPS, as ``adapt`` computes it) and plain L1 for R applied to
the HR and to Real-ESRGAN x4plus's output. Sets and crops are those of ``bench/quality.py --quick``.
Prints a table and writes bench/results/objective_check_<device>.json.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch
from quality import PROFILES, city100, family_set

from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.degradations import EVALUATION_FAMILIES
from lway_engine.hardware import cpu_features
from lway_engine.inference.upscale import UpscaleOptions, upscale_image
from lway_engine.media.images import Image, to_tensor
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import load_model
from lway_engine.reconstruction import load_checkpoint


def main() -> None:
    torch.manual_seed(0)
    model = load_model("realesrgan-x4plus")
    recon = load_checkpoint(DEFAULT_RECONSTRUCTOR, expect_scale=4)
    loss_fn = LWayLoss(LPIPS("alex"))
    profile = PROFILES["quick"]
    sets = {"city100": city100(profile["city100"])}
    for family in EVALUATION_FAMILIES:
        sets[family] = [x for s in profile["sets"] for x in family_set(s, family, profile["per_family"],
                                                                       profile["crop"])]
    results = {}
    print(f"{'set':<16} {'images':>6} {'LWay loss R(HR)':>16} {'R(S(LR))':>10} {'L1 R(HR)':>10} {'R(S(LR))':>10}"
          f"  loss points to HR")
    for name, items in sets.items():
        rows = []
        with torch.no_grad():
            for stem, lr, hr in items:
                x = to_tensor(lr)
                styles = recon.reconstructor.prepare(recon.encoder(x))
                sr = upscale_image(model, Image(lr, None, 8), UpscaleOptions(tile=512)).pixels
                from_hr = recon.reconstructor(to_tensor(hr), styles=styles, reference=x)
                from_sr = recon.reconstructor(to_tensor(sr), styles=styles, reference=x)
                rows.append({"image": stem, "loss_hr": float(loss_fn(from_hr, x).total),
                             "loss_sr": float(loss_fn(from_sr, x).total),
                             "l1_hr": float((from_hr - x).abs().mean()), "l1_sr": float((from_sr - x).abs().mean())})
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("loss_hr", "loss_sr", "l1_hr", "l1_sr")}
        results[name] = {"mean": mean, "images": rows}
        print(f"{name:<16} {len(rows):>6} {mean['loss_hr']:>16.4f} {mean['loss_sr']:>10.4f} {mean['l1_hr']:>10.4f} "
              f"{mean['l1_sr']:>10.4f}  {'yes' if mean['loss_hr'] < mean['loss_sr'] else 'NO'}")
    device = f"{platform.machine()} CPU"
    out = Path(__file__).resolve().parent / "results" / f"objective_check_{device.replace(' ', '_')}.json"
    out.write_text(json.dumps({"device": device, "cpu": cpu_features().as_dict(),
                               "reconstructor": str(DEFAULT_RECONSTRUCTOR), "results": results}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
