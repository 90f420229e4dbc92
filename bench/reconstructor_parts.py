"""R taken apart: which of its parts reproduces a family's LR from the true HR, and which costs fidelity?

    .venv/bin/python bench/reconstructor_parts.py                                   # the bundled checkpoint
    .venv/bin/python bench/reconstructor_parts.py --checkpoint blur=A.safetensors --checkpoint kernel=B.safetensors

Why: a reconstructor with a learned blur kernel was still 2-6 dB short on synthetic families, and its total
fidelity (``bench/reconstruction_fidelity.py``) cannot say whether the kernel, the residual blocks or the colour
map was at fault. Per synthetic family (Kodak24 crops, the LR images of ``bench/quality.py``), PSNR against the
LR of R's output built up part by part, from the true HR and E(LR):

- ``true kernel``: the plan's own optics kernel (``degradations.optics_kernel``) then the area downsample: the
  best R's blur path could do;
- ``kernel``: R's predicted kernel, then the area downsample (the blur path alone);
- ``+colour head`` / ``+colour fit``: that, through the colour map predicted by E or fitted to the LR;
- ``+residual``: the blur path plus the modulated residual blocks, no colour map;
- ``R predicted`` / ``R fitted``: the whole of R, with either colour map (adapt uses the fitted one).

Also the squared error of R's kernel against the true one (``kernel err``; ``delta err``: a delta kernel's, for
scale). City100 pairs 031-060 have no known kernel: their rows leave those columns empty. Prints a table and writes
bench/results/reconstructor_parts_<device>.json.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from quality import FAMILY_SEED, city100, family_set
from reconstruction_fidelity import finite_mean, psnr, write_results

from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES, optics_kernel, plan
from lway_engine.media.images import to_tensor
from lway_engine.reconstruction import load_checkpoint
from lway_engine.reconstruction.colour_fit import fit_colour
from lway_engine.reconstruction.reconstructor import apply_colour, blur_downsample

PARTS = ("true kernel", "kernel", "+colour head", "+colour fit", "+residual", "R predicted", "R fitted")


def _with_area(kernel: torch.Tensor, scale: int) -> torch.Tensor:
    """An HR kernel (B, K, K) folded with the area downsample, as ``reconstructor.blur_kernels`` folds R's."""
    box = torch.full((1, 1, scale, scale), 1 / scale**2, dtype=kernel.dtype)
    return F.conv2d(F.pad(kernel[:, None], [scale - 1] * 4), box)[:, 0]


def parts(recon: torch.nn.Module, hr: torch.Tensor, lr: torch.Tensor, true_kernel: torch.Tensor | None
          ) -> dict[str, float | None]:
    """PSNR of each partial reconstruction (see the module docstring) and the kernel errors, for one image;
    without ``true_kernel`` (real pairs) the parts that need it are None."""
    r = recon.reconstructor
    e = recon.encoder(lr)
    styles = r.prepare(e)
    blurred = blur_downsample(hr, styles.blur, r.scale)
    residual = r(hr, styles=replace(styles, colour=None))
    predicted = r(hr, styles=styles)  # no reference: the colour head's map
    outputs = {
        "kernel": blurred,
        "+colour head": apply_colour(blurred, styles.colour),
        "+colour fit": fit_colour(blurred, lr),
        "+residual": residual,
        "R predicted": predicted,
        "R fitted": r(hr, styles=styles, reference=lr),
    }
    row: dict[str, float | None] = {name: psnr(out, lr) for name, out in outputs.items()}
    row["true kernel"] = row["kernel err"] = row["delta err"] = None
    if true_kernel is not None:
        kernel = r.hr_kernel(e)
        truth = true_kernel[None].to(kernel.dtype)
        delta = torch.zeros_like(truth)
        delta[:, truth.shape[-2] // 2, truth.shape[-1] // 2] = 1
        row["true kernel"] = psnr(blur_downsample(hr, _with_area(truth, r.scale), r.scale), lr)
        row["kernel err"] = float(((kernel - truth) ** 2).sum())
        row["delta err"] = float(((delta - truth) ** 2).sum())
    return row


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", metavar="NAME=PATH",
                        help=f"a reconstructor with a blur head (repeatable); default: bundled={DEFAULT_RECONSTRUCTOR}")
    parser.add_argument("--per-family", type=int, default=8, help="Kodak24 crops per family")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    checkpoints = dict(c.split("=", 1) for c in args.checkpoint or [f"bundled={DEFAULT_RECONSTRUCTOR}"])
    recons = {name: load_checkpoint(path, expect_scale=4) for name, path in checkpoints.items()}
    for name, recon in recons.items():
        if recon.reconstructor.blur is None or recon.reconstructor.colour is None:
            raise SystemExit(f"{name}: R needs a blur head and a colour head to be taken apart")
    started = time.perf_counter()
    results: dict[str, dict] = {}
    sets = {"city100": city100(30), **{family: family_set("Kodak24", family, args.per_family, 256)
                                       for family in (*EVALUATION_FAMILIES, *UNSEEN_FAMILIES)}}
    for set_name, items in sets.items():
        rows: dict[str, list[dict]] = {name: [] for name in recons}
        for index, (stem, lr_np, hr_np) in enumerate(items):
            lr, hr = to_tensor(lr_np), to_tensor(hr_np)
            steps = None if set_name == "city100" else plan(tuple(hr.shape[-2:]), set_name, FAMILY_SEED + index)
            with torch.no_grad():
                for name, recon in recons.items():
                    true_kernel = None if steps is None else torch.from_numpy(
                        optics_kernel(steps, recon.reconstructor.blur_size)).float()
                    rows[name].append({"image": stem, **parts(recon, hr, lr, true_kernel)})
        results[set_name] = {}
        for name, images in rows.items():
            mean = {k: finite_mean([r[k] for r in images]) for k in images[0] if k != "image"}
            results[set_name][name] = {"mean": mean, "images": images}
            cells = "  ".join(f"{k} {_cell(mean[k], 2)}" for k in PARTS)
            print(f"{set_name:<14} {name:<10} {cells}  kernel err {_cell(mean['kernel err'], 3)} "
                  f"(delta {_cell(mean['delta err'], 3)})", flush=True)
    write_results("reconstructor_parts", args.out, checkpoints, args.per_family, started, results)


if __name__ == "__main__":
    main()
