"""What the GPU suite needs that a lent GPU machine lacks, packed under 64 MiB with the repository (``make gpu-carry``).

    .venv/bin/python bench/gpu_carry.py pack      # here: builds .gpu-suite/ (git-ignored), prints its size
    python3 bench/gpu_carry.py unpack             # there (bench/gpu_suite.sh does it): weights into LWAY_HOME

The GPU machine has no network, no lpips or spandrel and none of ../shared. The pack holds: the lpips and spandrel
wheels; Real-ESRGAN x4plus with its conv weights in float16 and biases in float32 (the ncnn source stores weights
in fp16, so this is lossless: ``unpack`` rewrites the float32 cache file byte for byte, same sha256); the LPIPS
AlexNet backbone; City100 pairs 031-040 (quality at the paper's settings on part of the evaluation split). Run the
device call with ``carry: [".gpu-suite"]`` after moving bench/training's resume files out of the work tree if
they are still there (the call carries 64 MiB in all).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from training_split import CITY100, CITY100_TRAINING

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / ".gpu-suite"
DATA = ROOT.parent / "shared" / "data" / CITY100
EVALUATION_PAIRS = range(CITY100_TRAINING.stop, CITY100_TRAINING.stop + 10)  # 031-040: the first ten that evaluate
WHEELS = ("lpips==0.1.4", "spandrel==0.4.2")
MODELS = ("realesrgan-x4plus", "alexnet-imagenet")
LIMIT = 64 * 2**20


def pack() -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from lway_engine.weights import fetch

    shutil.rmtree(PACK, ignore_errors=True)
    (PACK / "wheels").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(PACK / "wheels"), *WHEELS],
                   check=True)
    for name in MODELS:
        path = fetch(name)
        dest = PACK / "home" / "weights" / name / path.name
        dest.parent.mkdir(parents=True)
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata()
        tensors = load_file(str(path))
        # float16 wherever that is exact: the cache file is then rebuilt bit for bit by unpack()
        packed = {k: v.half() if v.is_floating_point() and torch.equal(v.half().float(), v) else v
                  for k, v in tensors.items()}
        save_file(packed, str(dest.with_suffix(".packed")), metadata=metadata)
    data = PACK / "data" / DATA.name
    data.mkdir(parents=True)
    for i in EVALUATION_PAIRS:
        for kind in "HL":
            shutil.copy2(DATA / f"{i:03d}{kind}.png", data)
    pack_size = sum(p.stat().st_size for p in PACK.rglob("*") if p.is_file())
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    repo_size = sum((ROOT / f).stat().st_size for f in tracked.decode().split("\0") if f and (ROOT / f).is_file())
    print(f"{PACK}: {pack_size / 2**20:.1f} MiB; with the repository's tracked files "
          f"{(pack_size + repo_size) / 2**20:.1f} MiB of the {LIMIT / 2**20:.0f} MiB a device call carries")
    if pack_size + repo_size > LIMIT:
        print("too large: move bench/training/lway-er-x4-broad.* out of the work tree for the device call")


def unpack(home: Path) -> None:
    """The packed weights as the float32 cache files ``load_model`` expects, under ``home``."""
    import hashlib

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    for packed in sorted((PACK / "home").rglob("*.packed")):
        dest = home / packed.relative_to(PACK / "home").with_suffix(".safetensors")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with safe_open(str(packed), "pt") as f:
            metadata = f.metadata()
        save_file({k: v.float() if v.is_floating_point() else v for k, v in load_file(str(packed)).items()},
                  str(dest), metadata=metadata)
        digest = hashlib.sha256(dest.read_bytes()).hexdigest()
        if not digest.startswith(dest.stem):
            raise SystemExit(f"{dest}: sha256 {digest[:16]} does not match its cache name; the pack is damaged")
        print(f"{dest} ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["pack", "unpack"])
    parser.add_argument("--home", type=Path, default=PACK / "lway-home", help="unpack: the LWAY_HOME to fill")
    args = parser.parse_args()
    pack() if args.command == "pack" else unpack(args.home)


if __name__ == "__main__":
    main()
