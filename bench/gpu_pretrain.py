"""The E+R pretraining run of ``bench/pretrain_broad.sh`` on a lent GPU, in one command of at most 8 minutes.

A GPU machine here has no network, no ``lpips`` or ``pypng`` and none of ``../shared``, and a call carries at most
64 MiB with the repository. So, on this machine first:

    .venv/bin/python bench/gpu_pretrain.py pack            # builds .gpu/ (git-ignored), prints its size

which writes the training split in a form that fits: Sun_Hays80 files 1-40 as they are, City100 pairs 001-030 with
the HR as lossless WebP and the LR already area-downsampled by 4 (exactly what pretraining computes from it), and
Urban100 / Manga109 resized by ``--hr-scale`` (Lanczos, JPEG q92 4:4:4 like their sources); plus the AlexNet
backbone for LPIPS and the two missing wheels. Then the device tool runs, with ``carry: [".gpu"]``:

    python3 bench/gpu_pretrain.py run --steps 15000        # there: trains on CUDA, results to $OUT

``run`` installs the wheels into /tmp/site, trains with 15 batch-synthesis workers (the degradations are CPU work:
about 20 ms per sample), stops itself before ``--budget`` seconds, and copies the checkpoint, its resume state and
log to $OUT; a later call resumes from them (``--resume-from``). ``--lr``, ``--lpips-weight``, ``--real-fraction``,
``--blur-kernel``, ``--kernel-weight``, ``--colour-fit`` and ``--init-from`` change the run's settings (defaults:
those of bench/pretrain_broad.sh).
``run --dry-run`` does the same on this machine's CPU for a few steps, which is how the command is tested before
device time is spent on it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from training_split import HR_FOLDERS, SUN, city100_hr_files, hr_files

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / ".gpu"
DATA = ROOT.parent / "shared" / "data"
WHEELS = ("lpips==0.1.4", "pypng==0.20220715.0")


def pack(hr_scale: float) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from lway_engine.weights import fetch

    data = PACK / "data"
    shutil.rmtree(PACK, ignore_errors=True)
    for path in hr_files(DATA):
        (data / path.parent.name).mkdir(parents=True, exist_ok=True)
        if path.parent.name not in HR_FOLDERS:  # SUN: small enough as it is
            shutil.copy(path, data / path.parent.name / path.name)
            continue
        with Image.open(path) as img:
            size = (round(img.width * hr_scale), round(img.height * hr_scale))
            img.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(
                data / path.parent.name / path.name, quality=92, subsampling=0)
    (data / "City100").mkdir()
    for hr_path in city100_hr_files(DATA):
        stem = hr_path.stem[:-1]  # "001H" -> "001"
        with Image.open(hr_path) as hr:
            hr.save(data / "City100" / f"{stem}H.webp", lossless=True, quality=100, method=6)
        with Image.open(hr_path.with_name(f"{stem}L.png")) as lr:
            full = torch.from_numpy(np.asarray(lr.convert("RGB")).transpose(2, 0, 1).copy())[None].float()
        small = F.avg_pool2d(full, 4)[0].round().to(torch.uint8).numpy().transpose(1, 2, 0)
        Image.fromarray(small).save(data / "City100" / f"{stem}L.png")
    weights = PACK / "home" / "weights" / "alexnet-imagenet"
    shutil.copytree(fetch("alexnet-imagenet").parent, weights)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d",
                    str(PACK / "wheels"), *WHEELS], check=True)
    total = sum(p.stat().st_size for p in PACK.rglob("*") if p.is_file())
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    names = [name for name in tracked.decode().split("\0") if name and (ROOT / name).is_file()]
    repo = sum((ROOT / name).stat().st_size for name in names)
    print(f"{PACK}: {total / 2**20:.1f} MiB + the repository's tracked files {repo / 2**20:.1f} MiB = "
          f"{(total + repo) / 2**20:.1f} MiB (the device tool carries at most 64 MiB). A CPU run's resume state in "
          "bench/training/ (about 20 MiB) is not needed there, the GPU run starts fresh: move it out of the work "
          "tree for the call if the sum is over.")


def run(steps: int, budget: float, workers: int, resume_from: Path | None, dry_run: bool,
        settings: list[str]) -> int:
    out = Path(os.environ.get("OUT", "/tmp/gpu-pretrain-out"))
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LWAY_HOME=str(PACK / "home"), LWAY_OFFLINE="1")
    if not dry_run:
        site = Path("/tmp/site")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target",
                        str(site), *map(str, (PACK / "wheels").glob("*.whl"))], check=True)
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    else:
        env["PYTHONPATH"] = str(ROOT)
    checkpoint = out / "lway-er-x4-broad.safetensors"
    if resume_from:
        for suffix in (".safetensors", ".state.pt", ".json"):
            shutil.copy(resume_from.with_suffix(suffix), checkpoint.with_suffix(suffix))
    args = [sys.executable, __file__, "train", "--out", str(checkpoint), "--steps", str(steps), "--workers",
            str(workers), "--device", "cpu" if dry_run else "cuda", *settings]
    try:  # stop well inside the call's limit; the last checkpoint (every 250 steps) is what comes back
        return subprocess.run(args, env=env, timeout=budget).returncode
    except subprocess.TimeoutExpired:
        print(f"stopped after {budget:.0f} s; the last checkpoint is in {out}")
        return 0


def train(out: Path, steps: int, workers: int, device: str, lr: float, lpips_weight: float, real_fraction: float,
          blur_kernel: int, kernel_weight: float, colour_fit: int, init_from: str) -> None:
    """The training itself (in a child process that ``run`` can stop): the settings of bench/pretrain_broad.sh, and
    the few a later phase changes (``_settings``)."""
    from lway_engine.reconstruction import ReconstructionConfig
    from lway_engine.training.pretrain import PretrainConfig, pretrain_files

    data = PACK / "data"
    hr = [data / folder for folder in (*HR_FOLDERS, SUN)]
    config = PretrainConfig(steps=steps, batch=16, crop=64, lr=lr, lpips_weight=lpips_weight,
                            kernel_weight=kernel_weight, colour_fit=bool(colour_fit), real_fraction=real_fraction,
                            checkpoint_every=250,
                            val_every=250, seed=0, workers=workers, device=device, init_from=init_from or None)
    model = ReconstructionConfig(scale=4, embed_dim=512, reconstructor_width=64, num_blocks=6, colour_head=1,
                                 blur_kernel=blur_kernel)
    pretrain_files(hr, sorted((data / "City100").glob("*H.webp")), out, config, model, resume=out.exists())


def _settings(parser: argparse.ArgumentParser) -> None:
    """The training settings ``run`` passes on to ``train`` (the blur-head phase of bench/training/README.md used
    --lr 1e-4 --lpips-weight 0.1 --real-fraction 0.5 --blur-kernel 21, from
    --init-from bench/training/lway-er-x4-broad-l1.safetensors)."""
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--lpips-weight", type=float, default=1.0)
    parser.add_argument("--real-fraction", type=float, default=0.3)
    parser.add_argument("--blur-kernel", type=int, default=0, help="R's HR blur head (0: none; odd, e.g. 21)")
    parser.add_argument("--kernel-weight", type=float, default=0.0,
                        help="supervise that head's kernel (training/pretrain.py)")
    parser.add_argument("--colour-fit", type=int, default=0, choices=(0, 1),
                        help="1: fit R's colour map to each LR, as adapt does (training/pretrain.py)")
    parser.add_argument("--init-from", default="", help="a tracked checkpoint whose weights start a fresh run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--hr-scale", type=float, default=0.45)
    r = sub.add_parser("run")
    r.add_argument("--steps", type=int, default=15000)
    r.add_argument("--budget", type=float, default=450.0, help="seconds of training before it stops itself")
    r.add_argument("--workers", type=int, default=15)
    r.add_argument("--resume-from", type=Path)
    r.add_argument("--dry-run", action="store_true", help="on this machine's CPU, to test the command")
    _settings(r)
    t = sub.add_parser("train", help="(used by run)")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--workers", type=int, required=True)
    t.add_argument("--device", required=True)
    _settings(t)
    args = parser.parse_args()
    settings = dict(lr=args.lr, lpips_weight=args.lpips_weight, real_fraction=args.real_fraction,
                    blur_kernel=args.blur_kernel, kernel_weight=args.kernel_weight, colour_fit=args.colour_fit,
                    init_from=args.init_from
                    ) if args.command != "pack" else {}
    if args.command == "pack":
        pack(args.hr_scale)
    elif args.command == "train":
        train(args.out, args.steps, args.workers, args.device, **settings)
    else:
        forwarded = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
        sys.exit(run(args.steps, args.budget, args.workers, args.resume_from, args.dry_run, forwarded))


if __name__ == "__main__":
    main()
