"""Video: frames/s of ``upscale`` on a fixed clip per backend, and what adaptation gains on a degraded clip.

    .venv/bin/python bench/video.py                 # CPU: both parts (~10 min on 2 cores)
    .venv/bin/python bench/video.py --gain-only --no-select   # the paper's loss, fixed schedule
    .venv/bin/python bench/video.py --speed-only --models realesr-animevideov3
    .venv/bin/python bench/video.py --device cuda

Speed: the clip is ``demo --video``'s (pans and zooms over scikit-image's photos, degraded, with a tone), at
``--lr`` size; each model runs as a checkpoint the way ``upscale`` opens it by default (``auto``: OpenVINO on CPUs
with AMX or AVX512_BF16 where installed), in PyTorch (as ``upscale`` picks its precision: bf16 on those CPUs, and
float32), and exported to ONNX in ONNX Runtime (with lway-engine's Winograd CPU kernels)
and OpenVINO where installed. Each row times the whole ``upscale_video`` (decode, upscale, encode x264, join
with the audio) after one warm-up frame, so it is what a user waits for.

Gain: ``demo --video``'s pipeline on the same kind of clip (one ``defocus_noise`` draw for the whole clip):
adapt Real-ESRGAN x4plus on frames sampled from the LR clip (adapt's selection by default), upscale every frame
before and after, and score each against its HR frame (PSNR-Y, LPIPS-alex; per frame and mean). Writes
bench/results/video_<device>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from lway_engine.hardware import cpu_features
from lway_engine.inference.upscale import upscale_image
from lway_engine.inference.upscaler import Upscaler
from lway_engine.media.demo_video import ITERATIONS, make_demo_clip, run_video_demo
from lway_engine.media.images import Image
from lway_engine.media.video import probe, read_frames
from results_dir import results_dir


def backends(model: str, device: str, workdir: Path) -> dict[str, Upscaler]:
    """``Upscaler``s over one model for every backend this machine has."""
    from lway_engine.backends import openvino_installed
    from lway_engine.export.onnx import export_onnx

    auto = Upscaler(model, device=device, tile=0)  # what `upscale` runs on this machine, named in the label
    pytorch = auto if auto.backend == "pytorch" else Upscaler(model, device=device, tile=0, backend="pytorch")
    found = {f"auto ({auto.backend})": auto, "pytorch": pytorch}
    if pytorch.options.bf16:
        found["pytorch-fp32"] = Upscaler(model, device=device, tile=0, precision="fp32", backend="pytorch")
    onnx = export_onnx(model, workdir / f"{model}.onnx", verify_sizes=[(32, 32)]).path
    found["onnxruntime"] = Upscaler(onnx, device=device, tile=0, backend="onnxruntime")
    if device == "cpu" and openvino_installed():
        found["openvino"] = Upscaler(onnx, device=device, tile=0, backend="openvino")
    return found


def speed(models: list[str], device: str, lr: tuple[int, int], frames_per_photo: int, workdir: Path) -> list[dict]:
    clip, _ = make_demo_clip(workdir / "clip", 4, lr[0] * 4, lr[1] * 4, frames_per_photo)
    first = next(read_frames(probe(clip)))
    rows = []
    for model in models:
        for label, upscaler in backends(model, device, workdir).items():
            upscale_image(upscaler.model, Image(first, None, 8), upscaler.options)  # warm-up
            started = time.perf_counter()
            outcome = upscaler.upscale_video(clip, workdir / f"{model}-{label}.mp4")
            seconds = time.perf_counter() - started
            rows.append({"model": model, "backend": label, "frames": outcome.frames, "seconds": seconds,
                         "frames_per_s": outcome.frames / seconds, "lr": list(lr)})
            print(f"{model:<22} {label:<18} {outcome.frames / seconds:7.2f} frames/s  ({outcome.frames} frames "
                  f"{lr[0]}x{lr[1]} -> {lr[0] * 4}x{lr[1] * 4}, {seconds:.1f} s)", flush=True)
    return rows


def gain(device: str, iterations: int, frames: int, select: bool, workdir: Path) -> dict:
    from lway_engine.demo import DEMO_CONFIG

    config = dataclasses.replace(DEMO_CONFIG, iterations=iterations, select=select)
    result = run_video_demo("realesrgan-x4plus", workdir / "gain", config, frames=frames, device=device)
    b, a = result.before, result.after
    print(f"\nadapt decided: {result.decision}")
    print(f"{'frame':>5} {'PSNR-Y before':>14} {'after':>7} {'LPIPS before':>13} {'after':>7}")
    for i in range(len(b.psnr)):
        print(f"{i:>5} {b.psnr[i]:>14.2f} {a.psnr[i]:>7.2f} {b.lpips[i]:>13.4f} {a.lpips[i]:>7.4f}")
    print(f"{'mean':>5} {b.mean[0]:>14.2f} {a.mean[0]:>7.2f} {b.mean[1]:>13.4f} {a.mean[1]:>7.4f}")
    return {"model": "realesrgan-x4plus", "config": dataclasses.asdict(config), "adapted_on": len(result.sampled),
            "decision": result.decision, "before": dataclasses.asdict(b), "after": dataclasses.asdict(a),
            "mean_psnr_y_before": b.mean[0], "mean_psnr_y_after": a.mean[0],
            "mean_lpips_before": b.mean[1], "mean_lpips_after": a.mean[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["realesr-animevideov3", "realesrgan-x4plus"])
    parser.add_argument("--lr", type=int, nargs=2, default=[96, 72], metavar=("W", "H"), help="LR frame size")
    parser.add_argument("--frames-per-photo", type=int, default=4, help="speed clip: 3 photos x this many frames")
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="gain: adaptation steps (as demo "
                        "--video)")
    parser.add_argument("--no-select", action="store_true", help="gain: the paper's loss on a fixed schedule "
                        "instead of adapt's selection (which may keep the unadapted weights)")
    parser.add_argument("--adapt-frames", type=int, default=6, help="gain: frames sampled to adapt on")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--gain-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = [] if args.gain_only else speed(args.models, args.device, tuple(args.lr), args.frames_per_photo,
                                               workdir)
        gained = None if args.speed_only else gain(args.device, args.iterations, args.adapt_frames,
                                                   not args.no_select, workdir)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"{platform.machine()} CPU"
    kind = "cuda" if args.device.startswith("cuda") else f"cpu_{cpu_features().kind}"
    suffix = ("_speed" if args.speed_only else "_gain" if args.gain_only else "") + (
        "_fixed" if args.no_select and not args.speed_only else "")
    out = results_dir() / f"video{suffix}_{kind}.json"
    out.write_text(json.dumps({"device": name, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                               "cpu": cpu_features().as_dict(), "speed": rows, "gain": gained}, indent=1))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
