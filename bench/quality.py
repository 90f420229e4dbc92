"""Baseline vs LWay-adapted Real-ESRGAN x4plus on real camera pairs and on unseen synthetic degradations.

    .venv/bin/python bench/quality.py --quick   # CPU profile, about an hour on 2 cores
    .venv/bin/python bench/quality.py --medium  # CPU profile: more steps, larger crops (about 2 hours)
    .venv/bin/python bench/quality.py --full --device cuda

(a) City100 (real lens blur, Nikon D5500): LR4 = area-downsample(NNNL, 4), compared with NNNH. Only pairs 031-060
    are used: 001-030 trained the bundled E+R checkpoint. ``--only city100_iphone``: the smartphone City100 (iPhone
    X; pairs 051-100, fetched by ``bench/fetched_data.py``), the same protocol on a camera no checkpoint has seen;
    it runs only when asked for, since it lives outside ``../shared/data``.
(b) Clean HR sets under the evaluation families and the two unseen families (never used for training; Sun_Hays80
    only from its second half, the first half trained E+R), and the control ``bicubic``: the same crops only
    bicubic-downsampled, a plainly downscaled image. PSNR/SSIM on Y with a 4-px border crop, LPIPS-alex on RGB.
    Ablations: --no-hf-weight and per-image vs whole-set adaptation. Adaptation is ``adapt``'s default: automatic
    selection by the no-HR signal (``lway_engine/adaptation/select.py``), which may keep the unadapted model;
    ``--no-select`` runs the fixed schedule with ``--anchor``/``--texture``.
Prints a table per set and writes
bench/results/quality_<profile>[_fixed[_anchor<W>][_texture<T>]][_bf16]_<device>.json (``_fixed``: with
``--no-select``; ``_bf16``: adaptation under ``--amp bf16``; evaluation is float32 either way).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lway_engine.adaptation.gate import explainability
from lway_engine.adaptation.loop import AdaptConfig, adapt
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.adaptation.select import DEFAULT_CANDIDATES, Candidate, adapt_and_select
from lway_engine.adaptation.step import above_lr_band
from lway_engine.degradations import EVALUATION_FAMILIES, UNSEEN_FAMILIES, degrade
from lway_engine.degradations.catalog import CONTROLS
from lway_engine.hardware import cpu_features, resolve_amp
from lway_engine.inference.upscale import UpscaleOptions, upscale_image
from lway_engine.media.images import Image, read_image, to_array, to_tensor
from lway_engine.metrics import lpips_arrays, psnr_y, ssim_y
from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import LoadedModel, load_model
from lway_engine.reconstruction import load_checkpoint
from lway_engine.reconstruction.colour_fit import fit_colour
from results_dir import results_dir
from fetched_data import city100_iphone_folder
from training_split import CITY100, CITY100_IPHONE_TRAINING, CITY100_TRAINING, SUN, SUN_TRAINING

DATA = Path(os.environ.get("LWAY_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
PROFILES = {
    # images per set, HR crop side (0 = whole image), adaptation settings
    # sized for ~45 min on a 2-core CPU (x4plus: ~4 s per step at batch 2 x 48 px)
    "quick": dict(city100=8, per_family=6, crop=256, sets=("Kodak24",), per_image=2,
                  adapt=AdaptConfig(iterations=40, lr=1e-5, batch=2, crop=48)),
    "medium": dict(city100=8, per_family=6, crop=256, sets=("Kodak24",), per_image=2,
                   adapt=AdaptConfig(iterations=100, lr=1e-5, batch=2, crop=64)),
    "full": dict(city100=30, per_family=0, crop=0, sets=("Kodak24", "Set14", "CBSD68", "Sun_Hays80"), per_image=6,
                 adapt=AdaptConfig(iterations=300, lr=2e-6, batch=6, crop=128)),
}


def _q8(x: np.ndarray) -> np.ndarray:
    """Quantise like a saved 8-bit LR image."""
    return (np.rint(np.clip(x, 0, 1) * 255) / 255).astype(np.float32)


def _centre(img: np.ndarray, side: int) -> np.ndarray:
    if not side or min(img.shape[:2]) < side:
        h, w = img.shape[0] // 4 * 4, img.shape[1] // 4 * 4
        return img[:h, :w]
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    return img[top : top + side, left : left + side]


def city100(n: int, skip: int = 0, first: int = CITY100_TRAINING.stop) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """City100 pairs ``first``+skip ...: by default the evaluation pairs 031-060 (those after the training pairs,
    bench/training_split.py); ``first=1`` gives the training pairs, for designs that must not see evaluation images."""
    return registered_pairs(DATA / CITY100, n, first + skip)


def city100_iphone(n: int, skip: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The smartphone City100's evaluation pairs 051-100 (``bench/fetched_data.py``), from 051+skip: a second real
    camera, one no checkpoint has trained on."""
    return registered_pairs(city100_iphone_folder(), n, CITY100_IPHONE_TRAINING.stop + skip)


def registered_pairs(folder: Path, n: int, first: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Pairs ``first`` ... ``first + n - 1`` of a City100-layout folder (``NNNH.png`` / ``NNNL.png``, the LR shot
    registered to the HR's grid): the LR is the registered shot area-downsampled by 4, as City100's protocol has it."""
    items = []
    for i in range(first, first + n):
        hr = read_image(folder / f"{i:03d}H.png").rgb()
        lr_full = torch.from_numpy(read_image(folder / f"{i:03d}L.png").rgb().transpose(2, 0, 1).copy())
        lr = F.avg_pool2d(lr_full[None], 4)[0].numpy().transpose(1, 2, 0)
        items.append((f"{i:03d}", _q8(lr), hr))
    return items


FAMILY_SEED = 1000  # the k-th image of a family set is degraded with seed FAMILY_SEED + k


def hr_images(name: str) -> list[Path]:
    """The evaluation images of the HR set ``name``, sorted by name (Sun_Hays80: its second half only)."""
    files = sorted(p for p in (DATA / name).iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp", ".tif"))
    return files[SUN_TRAINING:] if name == SUN else files


def family_set(name: str, family: str, limit: int, crop: int, skip: int = 0) -> list[tuple[str, np.ndarray,
                                                                                            np.ndarray]]:
    """The first ``limit`` images of ``name`` after ``skip``, centre-cropped and degraded by ``family``; the k-th
    image by name always gets seed FAMILY_SEED + k, so a skipped sample degrades like the full one."""
    files = hr_images(name)
    items = []
    for k, path in enumerate(files[skip : (skip + limit) if limit else None], start=skip):
        hr = _centre(read_image(path).rgb(), crop)
        lr = degrade(torch.from_numpy(hr.transpose(2, 0, 1).copy()), family, FAMILY_SEED + k)
        lr = lr.numpy().transpose(1, 2, 0)
        items.append((path.stem, _q8(lr), np.ascontiguousarray(hr)))
    return items


def colour_matched(sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """``sr`` through the global colour map (``reconstruction/colour_fit.py``: 3x3 mix, offset, curves) that brings
    it closest to ``hr``: what is left of its difference from the HR once global colour and tone are forgiven."""
    with torch.no_grad():
        return to_array(fit_colour(to_tensor(sr).float(), to_tensor(hr).float()).clamp(0, 1))


METRICS = ("psnr", "ssim", "lpips", "lpips_colour_matched")


def upscale_all(model: LoadedModel, items: list) -> list[np.ndarray]:
    """The model's SR output of each item's LR."""
    return [upscale_image(model, Image(lr, None, 8), UpscaleOptions(tile=512)).pixels for _, lr, _ in items]


def score(metric: LPIPS, items: list, outputs: list[np.ndarray]) -> list[dict]:
    """Per image of ``outputs`` (``upscale_all``): PSNR/SSIM on Y, LPIPS, and LPIPS after a global colour map
    fitted to the HR (``colour_matched``): City100's LR was shot with other colours than its HR, and adapt keeps
    the LR's colours on purpose (R's map is fitted to the LR), so this column shows how much of a set's LPIPS change
    is structure rather than colour."""
    rows = []
    for (name, _, hr), sr in zip(items, outputs, strict=True):
        rows.append({"image": name, "psnr": psnr_y(sr, hr), "ssim": ssim_y(sr, hr),
                     "lpips": lpips_arrays(metric, sr, hr),
                     "lpips_colour_matched": lpips_arrays(metric, colour_matched(sr, hr), hr)})
    return rows


def band_split(metric: LPIPS, items: list, trained: list[np.ndarray], unadapted: list[np.ndarray], scale: int
               ) -> list[dict]:
    """Per image, LPIPS against the HR of the unadapted output plus only the LR band, or only the part above it,
    of the trained model's change (both outputs from ``upscale_all``)."""
    rows = []
    for (name, _, hr), after, before in zip(items, trained, unadapted, strict=True):
        base = to_tensor(before)
        change = to_tensor(after) - base
        above = above_lr_band(change, scale)
        row = {"image": name}
        for key, part in (("lr_band_only", change - above), ("above_band_only", above)):
            row[key] = lpips_arrays(metric, to_array((base + part).clamp(0, 1)), hr)
        rows.append(row)
    return rows


BANDS = ("lr_band_only", "above_band_only")


def summarise(before: list[dict], after: list[dict], bands: list[dict]) -> dict:
    """Set means of every metric before and after, their gain, and the LPIPS change of each ``band_split``
    hybrid against the unadapted outputs' mean LPIPS."""
    mean = lambda rows, k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    summary: dict = {k: {"before": mean(before, k), "after": mean(after, k), "gain": mean(after, k) - mean(before, k)}
                     for k in METRICS}
    summary["lpips_by_band"] = {key: mean(bands, key) - summary["lpips"]["before"] for key in BANDS}
    return summary


def print_summary(summary: dict) -> None:
    """``summarise``'s table: each metric before, after and its gain, then the LPIPS change by band."""
    print(f"{'':20} {'before':>9} {'after':>9} {'gain':>9}")
    for k in METRICS:
        print(f"{k:20} {summary[k]['before']:>9.4f} {summary[k]['after']:>9.4f} {summary[k]['gain']:>+9.4f}")
    bands = summary["lpips_by_band"]
    print("LPIPS change with only the LR band / only the part above it of the adapted model's change: "
          f"{bands['lr_band_only']:+.4f} / {bands['above_band_only']:+.4f}", flush=True)


def run_set(model, original, recon, metric, items, config, per_image, hf_weight, device,
            candidates: tuple[Candidate, ...] = DEFAULT_CANDIDATES) -> dict:
    """Score the baseline, adapt (whole set or per image), score again."""
    model.module.load_state_dict(original)
    unadapted = upscale_all(model, items)
    before = score(metric, items, unadapted)
    loss_fn = LWayLoss(metric, hf_weight=hf_weight)
    lrs = [torch.from_numpy(lr.transpose(2, 0, 1).copy()).to(device) for _, lr, _ in items]
    groups = [[i] for i in range(len(items))] if per_image else [list(range(len(items)))]
    after, bands, logs, started = [], [], [], time.perf_counter()
    set_value = None  # per image, each image's gate also answers to its set's (as adapt --per-image does)
    if per_image and config.select and len(items) > 1:
        set_value = explainability(model, recon, lrs, loss_fn, config.amp)
    for group in groups:
        model.module.load_state_dict(original)
        tensors = [lrs[i] for i in group]
        decision = None
        if config.select:
            log, decision = adapt_and_select(model, tensors, recon, loss_fn, config, candidates,
                                             set_explainability=set_value)
        else:
            log = adapt(model, tensors, recon, loss_fn, config)
        logs.append({"status": log.status, "first": log.loss[:3], "last": log.loss[-3:],
                     "s_per_step": float(np.median(log.step_seconds)) if log.step_seconds else None,
                     "decision": None if decision is None else {
                         "adapted": decision.adapted, "reason": decision.reason, "step": decision.step,
                         "candidate": None if decision.candidate is None else decision.candidate.name,
                         "signal": {name: [p.__dict__ for p in run.signal] for name, run in decision.runs.items()}}})
        group_items = [items[i] for i in group]
        trained = upscale_all(model, group_items)
        after += score(metric, group_items, trained)
        bands += band_split(metric, group_items, trained, [unadapted[i] for i in group], model.scale)
    summary = summarise(before, after, bands)
    return {"summary": summary, "before": before, "after": after, "bands": bands, "adapt": logs,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--medium", action="store_true")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reconstructor", type=Path, default=DEFAULT_RECONSTRUCTOR)
    parser.add_argument("--colour", choices=("fitted", "predicted"), default="fitted",
                        help="R's colour map: fitted to the LR (adapt's default) or predicted by its colour head")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--crop", type=int, help="LR crop side for adaptation (default: the profile's)")
    parser.add_argument("--batch", type=int, help="adaptation batch (default: the profile's)")
    parser.add_argument("--trainable", help="adapt --trainable: a fraction or comma-separated name globs")
    parser.add_argument("--anchor", type=float, help="adapt --anchor weight (with --no-select; 0 = paper's loss)")
    parser.add_argument("--texture", type=float, help="adapt --texture weight (with --no-select)")
    parser.add_argument("--detail", type=float, help="adapt --detail weight (with --no-select)")
    parser.add_argument("--candidates", help="selection's candidates joined by ';', each as fields of "
                        "select.Candidate, e.g. 'anchor=0;anchor=1,flat=1,lr_scale=3' (default: adapt's, "
                        "lway_engine/adaptation/select.py)")
    parser.add_argument("--no-select", action="store_true", help="fixed schedule instead of adapt's selection")
    parser.add_argument("--no-hf-weight", action="store_true", help="every run with W = 1 (adapt --no-hf-weight)")
    parser.add_argument("--amp", default="fp32", help="adapt --amp (auto, bf16, fp32); fp32 by default so that "
                        "results compare across machines")
    parser.add_argument("--hr-crop", type=int, help="centre crop of the families' HR (default: the profile's; "
                        "512 gives 128-px LRs, where the previous gate opened on four families)")
    parser.add_argument("--limit", type=int, help="at most this many images per set (dry runs)")
    parser.add_argument("--only", help="comma-separated subset of runs, e.g. city100,defocus_noise")
    parser.add_argument("--city100-skip", type=int, default=0,
                        help="start City100 this many pairs after 031: a fresh sample to confirm a setting chosen "
                             "on the profile's own pairs (e.g. 8: pairs 039-046)")
    parser.add_argument("--out", type=Path,
                        help="JSON path (default: bench/results/quality_<profile>[_fixed...]_<device>.json)")
    args = parser.parse_args()
    profile_name = "full" if args.full else "medium" if args.medium else "quick"
    profile = PROFILES[profile_name]
    config: AdaptConfig = profile["adapt"]
    overrides = {k: v for k, v in (("iterations", args.iterations), ("lr", args.lr), ("crop", args.crop),
                                   ("batch", args.batch), ("anchor", args.anchor),
                                   ("texture", args.texture), ("detail", args.detail)) if v is not None}
    if args.trainable:
        try:
            overrides["trainable_fraction"] = float(args.trainable)
        except ValueError:
            overrides["trainable_patterns"] = tuple(p.strip() for p in args.trainable.split(",") if p.strip())
    overrides["select"] = not args.no_select
    overrides["amp"] = resolve_amp(args.amp, args.device)
    config = AdaptConfig(**{**config.__dict__, **overrides})
    candidates = tuple(Candidate.parse(c) for c in args.candidates.split(";")) if args.candidates else (
        DEFAULT_CANDIDATES)
    torch.manual_seed(0)
    model = load_model("realesrgan-x4plus", device=args.device)
    original = copy.deepcopy(model.module.state_dict())
    recon = load_checkpoint(args.reconstructor, expect_scale=4).to(args.device)
    recon.reconstructor.colour_fit = args.colour == "fitted"
    metric = LPIPS("alex").to(args.device)

    limit = args.limit or 10**9
    keep = set(args.only.split(",")) if args.only else None

    def wanted(prefix: str) -> bool:  # load a set's images only when one of its runs is asked for
        return keep is None or any(k.split(" ")[0] == prefix for k in keep)

    runs: dict[str, tuple] = {}
    if wanted("city100"):
        runs["city100"] = (city100(min(profile["city100"], limit), args.city100_skip), False, True)
        runs["city100 --no-hf-weight"] = (runs["city100"][0], False, False)
    if keep is not None and "city100_iphone" in keep:  # fetched, not in ../shared/data: only when asked for
        runs["city100_iphone"] = (city100_iphone(min(profile["city100"], limit), args.city100_skip), False, True)
    for family in (*EVALUATION_FAMILIES, *UNSEEN_FAMILIES, *CONTROLS):  # bicubic: a plainly downscaled image
        if not wanted(family):
            continue
        items = [x for s in profile["sets"]
                 for x in family_set(s, family, profile["per_family"], args.hr_crop or profile["crop"])][:limit]
        runs[family] = (items, False, True)
        if family == EVALUATION_FAMILIES[0]:
            runs[f"{family} --no-hf-weight"] = (items, False, False)
            n = profile["per_image"]
            runs[f"{family} --per-image"] = (items[:n], True, True)
            runs[f"{family} whole-set (same {n} images)"] = (items[:n], False, True)
    if keep is not None:
        runs = {k: v for k, v in runs.items() if k in keep}

    results = {}
    for name, (items, per_image, hf) in runs.items():
        hf = hf and not args.no_hf_weight
        print(f"\n== {name}: {len(items)} images", flush=True)
        results[name] = run_set(model, original, recon, metric, items, config, per_image, hf, args.device,
                                candidates)
        results[name]["hf_weight"] = hf  # config.hf_weight is the base setting; --no-hf-weight applies per run
        print_summary(results[name]["summary"])

    print(f"\n{'run':<40} {'images':>6} {'PSNR gain':>10} {'SSIM gain':>10} {'LPIPS change':>13}")
    for name, r in results.items():
        s = r["summary"]
        print(f"{name:<40} {len(r['before']):>6} {s['psnr']['gain']:>+10.3f} {s['ssim']['gain']:>+10.4f} "
              f"{s['lpips']['gain']:>+13.4f}")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.machine()} CPU"
    variant = "" if config.select else "_fixed" + (f"_anchor{config.anchor:g}" if config.anchor else "") + (
        f"_texture{config.texture:g}" if config.texture else "") + (
        f"_detail{config.detail:g}" if config.detail else "") + (f"_{config.amp}" if config.amp else "") + (
        "_flat" if args.no_hf_weight else "")
    default = f"quality_{profile_name}{variant}_{device.replace(' ', '_')}.json"
    out = args.out or results_dir() / default
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"profile": profile_name, "device": device, "cpu": cpu_features().as_dict(),
                               "config": config.__dict__,
                               "candidates": [c.name for c in candidates] if config.select else None,
                               "reconstructor": str(args.reconstructor), "colour": args.colour,
                               "city100_first": f"{CITY100_TRAINING.stop + args.city100_skip:03d}",
                               "family_hr_crop": args.hr_crop or profile["crop"], "results": results},
                              indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
