"""Scaling under torchrun: per-image ``adapt`` and ``upscale`` on 1 and on N processes, side by side in one run.

    .venv/bin/python bench/scaling.py                                  # CPU: 1 and 2 processes (~5 min on 2 cores)
    .venv/bin/python bench/scaling.py --device cuda --processes 1 8 --images 64 --iterations 100   # 8 GPUs

Each job is the real command, started as a user starts it (``torchrun --nproc-per-node N --standalone
.venv/bin/lway-engine ...``, also for N = 1, so every row pays the same launcher start), on a fixed set of LR
images (centre crops of scikit-image's photos, area-downscaled 4x), each row in a fresh output folder. Throughput is
images per second of the whole command's wall time, start-up included: what a user waits for. The N-process outputs
are then compared with the 1-process ones (adapted weights and every written image): same seeds, so they must be
identical, and the JSON says whether they are. On the CPU every process runs one torch thread (torchrun's default),
so N processes use N cores; the adaptation runs ``adapt``'s defaults (selection by the no-HR signal) at a short
schedule. Writes a table and bench/results/scaling_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from safetensors.torch import load_file

from lway_engine.hardware import cpu_features
from lway_engine.media.images import Image, read_image, write_image
from results_dir import results_dir

PHOTOS = ("astronaut", "chelsea", "coffee", "colorwheel", "hubble_deep_field", "immunohistochemistry", "retina",
          "rocket")


def write_inputs(folder: Path, count: int, size: tuple[int, int]) -> None:
    """``count`` LR images of ``size`` (height, width): centre crops of the photos at up to 4x that size (each
    photo's shifted by its turn, so repeats differ), area-downscaled."""
    from skimage import data

    height, width = size
    for i in range(count):
        photo = getattr(data, PHOTOS[i % len(PHOTOS)])()[..., :3]
        crop_h, crop_w = min(4 * height, photo.shape[0]), min(4 * width, photo.shape[1])
        shift = 8 * (i // len(PHOTOS))
        top = min((photo.shape[0] - crop_h) // 2 + shift, photo.shape[0] - crop_h)
        left = min((photo.shape[1] - crop_w) // 2 + shift, photo.shape[1] - crop_w)
        crop = PILImage.fromarray(photo[top : top + crop_h, left : left + crop_w])
        lr = np.asarray(crop.resize((width, height), PILImage.Resampling.BOX), np.float32) / 255
        write_image(folder / f"img{i:03d}.png", Image(lr, None, 8))


def run(command: list[str], processes: int, device: str) -> float:
    """The command on ``processes`` processes through torchrun; its wall time in seconds."""
    env = {**os.environ, "LWAY_OFFLINE": "1"}
    if device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    bin_dir = Path(sys.executable).parent
    started = time.perf_counter()
    result = subprocess.run([str(bin_dir / "torchrun"), "--nproc-per-node", str(processes), "--standalone",
                             str(bin_dir / "lway-engine"), *command], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} on {processes} processes failed:\n{result.stderr[-3000:]}")
    return seconds


def differences(reference: Path, other: Path) -> dict:
    """Largest absolute difference over every image and weights file of ``reference`` against ``other``."""
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.suffix in (".png", ".safetensors"))
    image_diff = weight_diff = 0.0
    missing = [str(f) for f in files if not (other / f).exists()]
    for f in files:
        if str(f) in missing:
            continue
        if f.suffix == ".png":
            a, b = read_image(reference / f).pixels, read_image(other / f).pixels
            image_diff = max(image_diff, float(np.abs(a - b).max()))
        else:
            a, b = load_file(str(reference / f)), load_file(str(other / f))
            weight_diff = max(weight_diff, max(float((a[k] - b[k]).abs().max()) for k in a))
    return {"files": len(files), "missing": missing, "max_image_diff": image_diff, "max_weight_diff": weight_diff,
            "identical": not missing and image_diff == 0 and weight_diff == 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="the first is the reference")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=[96, 112], metavar=("H", "W"), help="LR size")
    parser.add_argument("--iterations", type=int, default=8, help="adaptation steps per candidate")
    parser.add_argument("--adapt-model", default="realesr-animevideov3")
    parser.add_argument("--upscale-model", default="realesrgan-x4plus")
    args = parser.parse_args()

    jobs = {
        "adapt --per-image": lambda src, out: ["adapt", str(src), "-o", str(out), "--per-image", "--model",
                                               args.adapt_model, "--iterations", str(args.iterations), "--batch",
                                               "2", "--crop", "48", "--lr", "1e-4", "--device", args.device],
        "upscale": lambda src, out: ["upscale", str(src), "-o", str(out), "--model", args.upscale_model,
                                     "--device", args.device],
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "lr"
        write_inputs(inputs, args.images, tuple(args.size))
        for job, command in jobs.items():
            outputs = {}
            for processes in args.processes:
                outputs[processes] = Path(tmp) / f"{job.split()[0]}_{processes}"
                seconds = run(command(inputs, outputs[processes]), processes, args.device)
                rows.append({"job": job, "processes": processes, "seconds": seconds,
                             "images_per_s": args.images / seconds})
                print(f"{job}: {processes} processes, {seconds:.1f} s", flush=True)
            reference = outputs[args.processes[0]]
            for row in rows[-len(args.processes):]:
                row["speedup"] = rows[-len(args.processes)]["seconds"] / row["seconds"]
                row["vs_reference"] = differences(reference, outputs[row["processes"]])

    header = (f"{'job':<18} {'processes':>9} {'wall s':>8} {'images/s':>9} {'speed-up':>9}  outputs vs "
              f"{args.processes[0]} process(es)")
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        same = row["vs_reference"]
        verdict = "identical" if same["identical"] else (f"differ: images {same['max_image_diff']:.2g}, weights "
                                                         f"{same['max_weight_diff']:.2g}, missing {same['missing']}")
        print(f"{row['job']:<18} {row['processes']:>9} {row['seconds']:>8.1f} {row['images_per_s']:>9.3f} "
              f"{row['speedup']:>8.2f}x  {verdict} ({same['files']} files)")
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.machine()} CPU"
    out = results_dir() / f"scaling_{'cuda' if args.device.startswith('cuda') else 'cpu'}.json"
    out.write_text(json.dumps({"device": device_name, "torch": torch.__version__, "cpu": cpu_features().as_dict(),
                               "cores": os.cpu_count(), "threads_per_process": 1 if args.device == "cpu" else None,
                               "load_average_at_end": os.getloadavg(), "settings": vars(args), "rows": rows},
                              indent=1))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
