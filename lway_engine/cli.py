"""The ``lway-engine`` command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from lway_engine.degradations.catalog import TRAINING_MIX
from lway_engine.degradations.command import degrade_command
from lway_engine.evaluation.command import evaluate_command
from lway_engine.export.command import export_command

if TYPE_CHECKING:
    from lway_engine.distributed import Topology
    from lway_engine.inference.upscale import Outcome, UpscaleOptions
    from lway_engine.media.upscale_video import VideoJob
    from lway_engine.models import LoadedModel

app = typer.Typer(
    help="Self-supervised test-time adaptation of super-resolution models (LWay, CVPR 2024).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
weights_app = typer.Typer(help="List, fetch and verify pretrained weights in the cache ($LWAY_HOME).",
                          no_args_is_help=True)
app.add_typer(weights_app, name="weights")
app.command("degrade")(degrade_command)
app.command("export")(export_command)
app.command("evaluate")(evaluate_command)

AMP_HELP = ("Autocast precision: auto (bf16 on CPUs with AMX or AVX512_BF16, about 3x faster there; fp32 elsewhere), "
            "bf16, fp16 (CUDA only) or fp32. Weights and optimizer state stay fp32.")


def _amp(amp: str, device: str) -> str | None:
    """``--amp`` as the autocast setting of a training loop (None: float32), or a clear usage error."""
    from lway_engine.hardware import resolve_amp

    try:
        return resolve_amp(amp, device)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _mix(mix: str | None) -> dict[str, float] | None:
    """``--mix`` as {pipeline: odds}, or a clear usage error."""
    from lway_engine.degradations.catalog import parse_mix

    try:
        return None if mix is None else parse_mix(mix)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@contextmanager
def _launch(device: str) -> Iterator[tuple[Topology, str]]:
    """This process's place in a torchrun job (one process without torchrun) and its device (``cuda`` becomes the
    local rank's GPU); joins the process group for the command's length. A bad torchrun setup exits 2."""
    from lway_engine.distributed import session
    from lway_engine.distributed.group import BackendUnavailable

    with ExitStack() as stack:
        try:
            joined = stack.enter_context(session(device))
        except (ValueError, BackendUnavailable) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        yield joined


@contextmanager
def _sigterm_as_ctrl_c(active: bool) -> Iterator[None]:
    """SIGTERM (a job scheduler's stop, ``kill``) handled as Ctrl-C, so that an adaptation stopped that way still
    writes its results; one process only (under torchrun the launcher owns the ranks' signals)."""
    if not active:
        yield
        return
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@weights_app.command("list")
def weights_list() -> None:
    """Show every known weights entry, its sources in the order tried, and whether it is cached."""
    from lway_engine.weights import REGISTRY, cached_artefacts

    for name, entry in REGISTRY.items():
        cached = [c for c in cached_artefacts(name) if c.ok]
        status = f"cached: {cached[0].path}" if cached else "not cached"
        typer.echo(f"{name}  [{entry.kind}, {entry.license}]  {status}\n    {entry.description}")
        for i, source in enumerate(entry.sources, 1):
            typer.echo(f"    {i}. {source.label}  sha256={source.sha256}")


@weights_app.command("fetch")
def weights_fetch(
    names: Annotated[list[str], typer.Argument(help="Entries to fetch (see `weights list`).")],
    force: Annotated[bool, typer.Option(help="Produce again even if a verified copy is cached.")] = False,
) -> None:
    """Download or convert weights into the cache, checking each file's sha256 before it is used."""
    from lway_engine.weights import WeightsUnavailable, fetch

    failed = False
    for name in names:
        try:
            typer.echo(f"{name}: {fetch(name, force=force)}")
        except (KeyError, WeightsUnavailable) as exc:
            typer.echo(f"{name}: {exc.args[0]}", err=True)
            failed = True
    raise typer.Exit(1 if failed else 0)


@weights_app.command("verify")
def weights_verify(
    names: Annotated[Optional[list[str]], typer.Argument(help="Entries to check; default: all.")] = None,
) -> None:
    """Re-hash cached weights; exits 1 if any cached file is corrupt (fix with `weights fetch --force`)."""
    from lway_engine.weights import REGISTRY, verify

    unknown = [name for name in names or () if name not in REGISTRY]
    if unknown:
        typer.echo(f"error: unknown weights {', '.join(unknown)}; known: {', '.join(REGISTRY)}", err=True)
        raise typer.Exit(2)
    corrupt = False
    for name in names or list(REGISTRY):
        results = verify(name)
        if not results:
            typer.echo(f"{name}: not cached")
        for result in results:
            typer.echo(f"{name}: {'ok' if result.ok else 'CORRUPT'}  {result.path}")
            corrupt |= not result.ok
    raise typer.Exit(1 if corrupt else 0)


@app.command()
def upscale(
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders (PNG, JPEG, WebP, TIFF).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the results.")],
    model: Annotated[str, typer.Option(help="Registry name, checkpoint (.pth/.safetensors), exported .onnx (ONNX "
                                       "Runtime) or TensorRT .engine.")] = "realesrgan-x4plus",
    tile: Annotated[int, typer.Option(help="Tile size in input pixels; 0 runs each image whole.")] = 512,
    tile_pad: Annotated[int, typer.Option(
        help="Context pixels around each tile; 64 keeps Real-ESRGAN x4plus within 1/255 of untiled.")] = 64,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, cuda:1, ...")] = "cpu",
    fp16: Annotated[bool, typer.Option(help="Half precision (CUDA only).")] = False,
    fp32: Annotated[bool, typer.Option(help="Keep float32 on a CPU with native bf16, where checkpoints otherwise "
                                       "run in bf16 (about 4x faster, 51-54 dB PSNR from float32 on photos).")
                    ] = False,
    ext: Annotated[str, typer.Option(help="Output format: auto (the input's own), png, jpg, webp or tif.")] = "png",
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG / WebP quality.")] = 95,
    suffix: Annotated[str, typer.Option(help="Appended to each output file name, e.g. _x4 (Real-ESRGAN: _out).")
                      ] = "",
    outscale: Annotated[Optional[float], typer.Option(
        help="Final size as a multiple of the input (e.g. 2 from a 4x model, or 6); the model's output is resized "
             "with Lanczos. Default: the model's scale.")] = None,
    alpha_mode: Annotated[str, typer.Option(help="Alpha channel: 'model' (through the network) or 'bicubic'.")] = (
        "model"),
    cpu_kernels: Annotated[bool, typer.Option(help="ONNX models on the CPU: run 3x3 convolutions through "
                                              "lway-engine's Winograd kernel (faster than ONNX Runtime's).")] = True,
    backend: Annotated[str, typer.Option(help="Runtime: auto (OpenVINO on CPUs with native bf16 where installed, "
                                          "checkpoints converted once and cached; else PyTorch for checkpoints, "
                                          "ONNX Runtime for .onnx), pytorch, onnxruntime or openvino.")] = "auto",
    codec: Annotated[str, typer.Option(help="Video: FFmpeg encoder (libx264, libx265, libvpx-vp9, ffv1, ...).",
                                       rich_help_panel="Video")] = "libx264",
    crf: Annotated[int, typer.Option(min=0, max=63, help="Video: constant quality, 0 lossless; 18 looks like the "
                                     "source, 23 is x264's default.", rich_help_panel="Video")] = 18,
    preset: Annotated[Optional[str], typer.Option(help="Video: encoder speed/size trade-off (x264/x265: "
                                                  "ultrafast ... veryslow, default medium; SVT-AV1: 0-13).",
                                                  rich_help_panel="Video")] = None,
    pix_fmt: Annotated[str, typer.Option(help="Video: pixel format; yuv420p plays everywhere, yuv420p10le keeps "
                                         "10-bit input's depth.", rich_help_panel="Video")] = "yuv420p",
    fps: Annotated[str, typer.Option(help="Video: frame rate of a numbered frame folder (24, 25, 30000/1001).",
                                     rich_help_panel="Video")] = "24",
    segment_frames: Annotated[int, typer.Option(min=1, help="Video: frames per resumable segment.",
                                                rich_help_panel="Video")] = 240,
    batch: Annotated[int, typer.Option(min=0, help="Video: frames per network call; 0: 8 on a GPU, 1 on a CPU "
                                       "(where batches gain nothing).", rich_help_panel="Video")] = 0,
    resume: Annotated[bool, typer.Option(help="Video: continue an interrupted run from its finished segments "
                                         "(<output>.parts/); without it they are discarded.",
                                         rich_help_panel="Video")] = False,
    overwrite: Annotated[bool, typer.Option(help="Images: upscale again files whose output already exists (by "
                                            "default a rerun skips them, so a killed job resumes).")] = False,
) -> None:
    """Super-resolve images, or a video. Greyscale, 16-bit depth and alpha are kept; a failing file is reported and
    skipped, and the exit code is 1 if any file failed. Outputs that already exist are skipped (--overwrite).
    Under torchrun the images are shared among the processes (README: many GPUs and machines).

    A video file (or a folder of numbered frames with -o NAME.mp4) is upscaled frame by frame into one video:
    frame rate, timestamps and rotation are kept, audio and subtitles copied; an interrupted run continues with
    --resume."""
    from lway_engine.backends import OpenVinoUnavailable
    from lway_engine.export.tensorrt import TensorRTUnavailable
    from lway_engine.inference.upscale import UpscaleOptions, upscale_files
    from lway_engine.inference.upscaler import Upscaler
    from lway_engine.media.encode import EncodeSettings
    from lway_engine.media.upscale_video import VideoJob
    from lway_engine.media.video import is_video_job
    from lway_engine.models import ModelLoadError
    from lway_engine.weights import WeightsUnavailable

    checks = {"--ext": (ext in ("auto", "png", "tif", "webp", "jpg"), "auto, png, jpg, webp or tif"),
              "--alpha-mode": (alpha_mode in ("model", "bicubic"), "model or bicubic"),
              "--tile": (tile >= 0, "a size >= 0 (0: whole images)"), "--tile-pad": (tile_pad >= 0, "a size >= 0"),
              "--outscale": (outscale is None or 0 < outscale <= 16, "a factor F with 0 < F <= 16"),  # NaN too
              "--suffix": ("/" not in suffix, "a name part without '/'")}
    for name, (ok, expected) in checks.items():
        if not ok:
            raise typer.BadParameter(f"expected {expected}", param_hint=f"'{name}'")
    with _launch(device) as (topology, device):
        try:
            precision = "fp32" if fp32 or fp16 else "auto"
            upscaler = Upscaler(model, device=device, cpu_kernels=cpu_kernels, precision=precision, backend=backend)
            loaded = upscaler.model
            options = UpscaleOptions(tile=tile, tile_pad=tile_pad, fp16=fp16, bf16=upscaler.options.bf16, ext=ext,
                                     name_suffix=suffix, quality=quality, outscale=outscale, alpha_mode=alpha_mode)
            if is_video_job(inputs, output):
                if topology.distributed:
                    raise ValueError("a video is upscaled by one process, in order: run it without torchrun")
                job = VideoJob(EncodeSettings(codec, crf, preset, pix_fmt), segment_frames, resume, Fraction(fps),
                               batch or (8 if device.startswith("cuda") else 1))
                _upscale_video(loaded, inputs, output, options, job)  # exits with the video's status
            outcomes = upscale_files(loaded, inputs, output, options, progress=topology.leader,
                                     overwrite=overwrite, topology=topology)
        except (ModelLoadError, WeightsUnavailable, TensorRTUnavailable, OpenVinoUnavailable, FileNotFoundError,
                ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        failures = [o for o in outcomes if o.error]
        if topology.leader:  # every rank holds all outcomes; one prints them
            _upscale_summary(outcomes, output, topology.world_size)
    raise typer.Exit(1 if failures else 0)  # after leaving the process group: an exit raised inside skips its barrier


def _upscale_summary(outcomes: list[Outcome], output: Path, processes: int) -> None:
    """Each file's time, output or error, then the totals (the skipped ones counted apart)."""
    skipped = [o for o in outcomes if o.skipped]
    written = [o for o in outcomes if not o.error and not o.skipped]
    for outcome in outcomes:
        if outcome.error:
            typer.echo(f"FAILED {outcome.source} ({outcome.seconds:.1f} s): {outcome.error}", err=True)
        elif not outcome.skipped:
            typer.echo(f"{outcome.seconds:7.2f} s  {outcome.source} -> {outcome.output}")
    total = sum(o.seconds for o in outcomes)
    over = f" of processing over {processes} processes" if processes > 1 else ""
    typer.echo(f"{len(written) + len(skipped)} of {len(outcomes)} images written to {output} in {total:.1f} s{over}"
               + (f" ({len(skipped)} of them already there from an earlier run, skipped; --overwrite redoes them)"
                  if skipped else ""))


def _upscale_video(model: LoadedModel, inputs: list[Path], output: Path, options: UpscaleOptions, job: VideoJob
                   ) -> None:
    """``upscale`` for one video or frame folder; exits 0, or 1 when frames had to be repeated."""
    from lway_engine.media.upscale_video import upscale_video, video_output_path

    if len(inputs) != 1:
        raise typer.BadParameter("upscale one video per run (a video input or a video -o takes one input)")
    dest = video_output_path(inputs[0], output, options.name_suffix)
    try:
        outcome = upscale_video(model, inputs[0], dest, options, job)
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted: finished segments are kept in {dest}.parts/; the same command with --resume "
                   "continues from them", err=True)
        raise typer.Exit(130) from None
    resumed = f", {outcome.resumed} of them from an earlier run" if outcome.resumed else ""
    typer.echo(f"{outcome.frames} frames{resumed} -> {dest} in {outcome.seconds:.1f} s")
    for index, reason in outcome.bad_frames:
        typer.echo(f"frame {index} could not be decoded and repeats the previous one: {reason}", err=True)
    raise typer.Exit(1 if outcome.bad_frames else 0)


def _video_demo(output: Path, device: str) -> None:
    from dataclasses import replace

    from lway_engine.demo import DEMO_CONFIG
    from lway_engine.media.demo_video import FAMILY, ITERATIONS, run_video_demo

    c = replace(DEMO_CONFIG, iterations=ITERATIONS)
    typer.echo(f"Real-ESRGAN x4plus on a {FAMILY}-degraded clip of pans and zooms (64x48 LR, 36 frames, 12 fps, "
               f"tone); adapting on 6 sampled frames: {c.iterations} iterations, batch {c.batch}, {c.crop} px crops.")
    result = run_video_demo("realesrgan-x4plus", output, c, device=device)
    typer.echo(f"\nadapt decided: {result.decision}\nadapted on frames: "
               f"{', '.join(p.stem.rsplit('_f', 1)[1].lstrip('0') or '0' for p in result.sampled)}")
    typer.echo(f"\n{'frame':>5} {'PSNR-Y before':>14} {'after':>7} {'LPIPS before':>13} {'after':>7}")
    b, a = result.before, result.after
    for i in range(0, len(b.psnr), 4):
        typer.echo(f"{i:>5} {b.psnr[i]:>14.2f} {a.psnr[i]:>7.2f} {b.lpips[i]:>13.4f} {a.lpips[i]:>7.4f}")
    typer.echo(f"{'mean':>5} {b.mean[0]:>14.2f} {a.mean[0]:>7.2f} {b.mean[1]:>13.4f} {a.mean[1]:>7.4f}")
    typer.echo(f"\n(PSNR higher is better, LPIPS lower is better; every 4th frame shown)\noutputs: {output.resolve()}"
               "\n  lr.mp4 = the degraded clip, before.mp4 / after.mp4 = upscaled, adapt/ = frames, weights, report")


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the demo images.")] = Path("outputs/demo"),
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
    video: Annotated[bool, typer.Option(help="The video job instead: a clip of pans and zooms over the photos, "
                                        "degraded and with a tone as sound, adapted on sampled frames, upscaled "
                                        "before and after, scored per frame (in OUTPUT/video/).")] = False,
) -> None:
    """Degrade scikit-image's bundled photos with an unseen degradation, adapt Real-ESRGAN x4plus to them with the
    bundled E+R checkpoint, and score before/after against the originals (PSNR-Y, LPIPS-alex)."""
    if video:
        _video_demo(output / "video", device)
        return
    from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
    from lway_engine.demo import DEMO_CONFIG, FAMILY, run_demo
    from lway_engine.models import load_model
    from lway_engine.reconstruction import load_checkpoint

    loaded = load_model("realesrgan-x4plus", device=device)
    recon = load_checkpoint(DEFAULT_RECONSTRUCTOR, expect_scale=loaded.scale)
    c = DEMO_CONFIG
    typer.echo(f"Real-ESRGAN x4plus ({loaded.path}); LR = '{FAMILY}' degradation of 256 px photo crops.\n"
               f"CPU-sized settings: {c.iterations} iterations, batch {c.batch}, {c.crop} px crops, lr {c.lr} "
               "(the paper: 150-500 iterations, batch 6, 128 px, lr 2e-6 on a GPU).")
    rows, decision = run_demo(loaded, recon, output)
    typer.echo(f"\nadapt decided: {decision}")
    typer.echo(f"\n{'photo':<10} {'PSNR-Y before':>14} {'after':>7} {'LPIPS before':>13} {'after':>7}")
    for r in rows:
        typer.echo(f"{r.name:<10} {r.psnr_before:>14.2f} {r.psnr_after:>7.2f} {r.lpips_before:>13.4f} "
                   f"{r.lpips_after:>7.4f}")
    plot = ", adapt/signal.png = loss and signal per candidate" if (output / "adapt" / "signal.png").is_file() else ""
    typer.echo(f"\n(PSNR higher is better, LPIPS lower is better)\noutputs: {output.resolve()}\n"
               "  adapt/compare/<photo>.png = LR (enlarged) | before | after; hr/ = originals; "
               f"adapt/report.md = the decision and loss curves{plot}")


def _adaptation_files(inputs: list[Path], output: Path, frames: int | None) -> list[Path]:
    """The image files to adapt on: a video (or, with ``frames``, a numbered frame folder) gives frames sampled from
    it, written to OUTDIR/frames/; images and folders are taken as they are."""
    from lway_engine.atomic import writable_folder
    from lway_engine.inference.upscale import collect_inputs
    from lway_engine.media.sampling import write_sampled_frames
    from lway_engine.media.video import VIDEO_SUFFIXES, probe

    for item in inputs:
        if item.is_dir() and (output.resolve() == item.resolve() or item.resolve() in output.resolve().parents):
            raise ValueError(f"-o {output} is inside the input folder {item}: adapt writes sr_before/, sr_after/ and "
                             "compare/ there, and a rerun would read them as inputs; choose a folder outside it")
    writable_folder(output)  # sampled frames go there first
    sampled, images = [], []
    for item in inputs:
        if (item.is_file() and item.suffix.lower() in VIDEO_SUFFIXES) or (item.is_dir() and frames is not None):
            sampled += write_sampled_frames(probe(item), frames or 12, output / "frames")
        else:
            images.append(item)
    return sampled + [source for source, _ in collect_inputs(images)]


@app.command()
def adapt(
    inputs: Annotated[list[Path], typer.Argument(help="LR images, folders or videos to adapt on (no HR needed).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for results, weights and report.",
                                         file_okay=False)],
    frames: Annotated[Optional[int], typer.Option(
        min=1, help="Frames to sample from each video (default 12), evenly in time, skipping black or flat frames "
        "and near-duplicates; written to OUTDIR/frames/. Given, a folder of numbered frames is sampled too.")] = None,
    model: Annotated[str, typer.Option(help="Registry name or checkpoint path of the SR model.")] = (
        "realesrgan-x4plus"),
    reconstructor: Annotated[Optional[Path], typer.Option(help="E+R checkpoint (default: the bundled x4 one).")] = (
        None),
    iterations: Annotated[int, typer.Option(min=1, help="Adam steps (the paper uses 150-500).")] = 300,
    lr: Annotated[float, typer.Option(min=0.0, help="Learning rate (paper: 2e-6; 5e-5 for diffusion models).")] = (
        2e-6),
    batch: Annotated[int, typer.Option(min=1, help="LR crops per step; under torchrun the global batch, shared "
                                       "among the processes (a multiple of their number).")] = 6,
    crop: Annotated[int, typer.Option(help="LR crop side in pixels (at least 31: the loss's LPIPS network sees "
                                      "nothing smaller).")] = 128,
    trainable: Annotated[str, typer.Option(
        help="Fraction of parameters to train, from the output end (e.g. 0.65), or comma-separated name globs "
             "(e.g. 'model.1.sub.2*,model.3*').")] = "0.65",
    per_image: Annotated[bool, typer.Option("--per-image/--whole-set", help="One adapted model per image, or one "
                                            "for the whole set.")] = False,
    hf_weight: Annotated[bool, typer.Option("--hf-weight/--no-hf-weight", help="Weight the loss by the Haar "
                                            "high-frequency map (ablation: off).")] = True,
    anchor: Annotated[float, typer.Option(
        help="With --no-select: hold low-frequency areas to the unadapted output with this weight: adds anchor * "
             "mean((1-W) * |S(LR) - S0(LR)|). Less harm where the reconstructor cannot reproduce the degradation "
             "(noise grain, faded colours), smaller gains elsewhere; 0 is the paper's loss.")] = 0.0,
    texture: Annotated[float, typer.Option(
        help="With --no-select: weight of LPIPS(S(LR), S0(LR)) at SR size, keeping the unadapted model's texture "
             "while the LR-scale loss fixes colour and structure; 0 is the paper's loss.")] = 0.0,
    detail: Annotated[float, typer.Option(
        help="With --no-select: hold only what the model adds above the LR's Nyquist frequency to the unadapted "
             "output: adds detail * mean(|D(S(LR)) - D(S0(LR))|) at SR size, D = minus the LR band. The LR band "
             "(colour, structure) adapts freely, the model's own texture stays; 0 is the paper's loss.")] = 0.0,
    cross_scale: Annotated[float, typer.Option(
        help="With --no-select: weight of a cross-scale pseudo-pair, (L1 + LPIPS)(S(R(y, e)), y) on LR crops y "
             "twice --crop: the LR degraded once more by the reconstructor, upscaled, against the LR itself. The "
             "only term with real pixels above the LR's own detail as its target; 0 is the paper's loss.")] = 0.0,
    select: Annotated[bool, typer.Option(
        "--select/--no-select", help="Adapt only where the reconstructor can be trusted (its explainability "
        "gate), with a texture-keeping loss, stopping at the step a quality signal scored on LR regions never "
        "trained on prefers; keep the unadapted weights when the gate stays shut or nothing beats them (report.md "
        "says why). --no-select runs the fixed schedule with the paper's loss or --anchor/--texture/--detail/"
        "--cross-scale."
    )] = True,
    seed: Annotated[int, typer.Option(help="Seed for crops and initialisation.")] = 0,
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
    compile: Annotated[bool, typer.Option(
        "--compile/--no-compile", help="torch.compile the training step and the before/after inference; "
        "artefacts cached in $LWAY_HOME/torch-compile. Falls back to eager with a warning where it cannot.")] = False,
    amp: Annotated[str, typer.Option(help=AMP_HELP)] = "auto",
    deterministic: Annotated[bool, typer.Option(help="Deterministic kernels (slower; no cuDNN autotuning).")] = False,
    ext: Annotated[bool, typer.Option(
        "--ext/--no-ext", help="Run the frozen reconstructor through the C++ extension's fused op (faster, same "
        "result within float32 rounding); --no-ext uses the plain PyTorch path.")] = True,
    fit_colour: Annotated[bool, typer.Option(
        "--fit-colour/--predict-colour", help="R's global colour/tone map fitted to each LR it is compared with, "
        "so adaptation restores structure and keeps the LR's colours; --predict-colour takes it from the "
        "reconstructor's colour head, as the paper's R does (for an E+R trained on pairs with your colour shift; "
        "the gate then needs an error model fitted that way: bench/fit_error_model.py --colour predicted).")] = True,
) -> None:
    """Adapt an SR model to LR images with the LWay self-supervised loss; writes SR before/after, comparisons,
    adapted weights (same keys as the input checkpoint) and a report. Ctrl-C stops early and still writes them.

    A video is adapted on frames sampled from it (--frames), as one set: the adapted weights then upscale the whole
    video (`upscale film.mp4 -o film_x4.mp4 --model OUTDIR/weights/adapted.safetensors`).

    Under torchrun the processes share the work (README: many GPUs and machines): per image, each adapts its share
    of the images, and a rerun skips the images already finished; whole set, they train one model together."""
    from lway_engine.adaptation.loop import AdaptConfig
    from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR, run_adaptation
    from lway_engine.distributed import from_rank0
    from lway_engine.models import ModelLoadError, load_model
    from lway_engine.reconstruction import CheckpointError, load_checkpoint

    try:
        fraction, patterns = float(trainable), ()
    except ValueError:
        fraction, patterns = 0.65, tuple(p.strip() for p in trainable.split(",") if p.strip())
    with _launch(device) as (topology, device):
        try:
            loaded = load_model(model, device=device)
            recon = load_checkpoint(reconstructor or DEFAULT_RECONSTRUCTOR, expect_scale=loaded.scale)
            recon.reconstructor.colour_fit = fit_colour
            files = from_rank0(lambda: _adaptation_files(inputs, output, frames))  # sampled frames: written once
            config = AdaptConfig(iterations=iterations, lr=lr, batch=batch, crop=crop, trainable_fraction=fraction,
                                 trainable_patterns=patterns, hf_weight=hf_weight, seed=seed, compile=compile,
                                 amp=_amp(amp, device), deterministic=deterministic, extension=ext, anchor=anchor,
                                 texture=texture, detail=detail, cross_scale=cross_scale, select=select)
            with _sigterm_as_ctrl_c(not topology.distributed):
                runs = run_adaptation(loaded, files, output, recon, config, per_image, topology=topology)
        except (ModelLoadError, CheckpointError, FileNotFoundError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except KeyboardInterrupt:  # in training it ends the loop instead; here: loading, or writing the results
            typer.echo(f"\ninterrupted: the results in {output} are incomplete (its report.md, once written, says how "
                       "far the run got); run the command again to redo them", err=True)
            raise typer.Exit(130) from None
        if topology.leader:
            for name, log in runs.items():
                typer.echo(f"{name}: {log.status} after {len(log.loss)} steps. {log.message}")
            typer.echo(f"results, weights and report in {output.resolve()}")
    raise typer.Exit(0 if all(log.status == "done" for log in runs.values()) else 1)  # outside, as upscale's


@app.command()
def info(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Versions, devices, CPU instruction sets and which fast paths are active (C++ extension, ONNX Runtime
    Winograd op, TensorRT, bf16): paste it into a bug report."""
    import json

    from lway_engine.hardware import format_report, system_report

    report = system_report()
    typer.echo(json.dumps(report, indent=1) if json_output else format_report(report))


@app.command()
def pretrain(
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint to write (.safetensors).",
                                         dir_okay=False)],
    hr: Annotated[Optional[list[Path]], typer.Option(
        help="HR folders (searched recursively) or files for synthetic pairs (repeatable).")] = None,
    pairs: Annotated[Optional[list[Path]], typer.Option(
        help="Folders (or HR files) of real registered pairs: City100 NNNH/NNNL or RealSR *_HR/*_LR4 (repeatable); "
             "each folder is one camera, drawn equally often.")] = None,
    holdout: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Fraction of each folder's files (last by name) kept for validation; at least one "
        "per folder, and a folder of one file validates on it as well.")] = 0.1,
    steps: Annotated[int, typer.Option(min=1, help="Training steps (the cosine schedule spans them; --resume "
                                       "continues).")] = 3000,
    batch: Annotated[int, typer.Option(min=1, help="Pairs per step; under torchrun the global batch, shared among "
                                       "the processes (a multiple of their number).")] = 16,
    crop: Annotated[int, typer.Option(min=1, help="LR crop side.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate (cosine-decayed to 10%).")] = 2e-4,
    scale: Annotated[int, typer.Option(help="SR scale the reconstructor serves.")] = 4,
    embed_dim: Annotated[int, typer.Option(help="Degradation embedding size.")] = 512,
    blocks: Annotated[int, typer.Option(help="Modulated residual blocks in R.")] = 6,
    width: Annotated[int, typer.Option(help="Channels of R's blocks.")] = 64,
    colour_head: Annotated[bool, typer.Option(help="End R with an embedding-driven global colour/tone map.")] = True,
    blur_kernel: Annotated[int, typer.Option(
        help="Odd K > 0: R blurs the HR by a K x K kernel predicted from the embedding (defocus, motion) before "
             "its area downsample; 0: none.")] = 0,
    init_from: Annotated[Optional[Path], typer.Option(
        help="Start a fresh run from this checkpoint's weights; heads it lacks (--blur-kernel) start as the "
             "identity, so training continues where it ended.")] = None,
    real_fraction: Annotated[float, typer.Option(help="Share of real pairs among the samples, when both kinds are "
                                                 "given.")] = 0.5,
    lpips_weight: Annotated[float, typer.Option(
        help="Weight of LPIPS beside L1. Lower makes R predict the LR's mean (higher PSNR, smoother on noisy LR); "
             "higher makes it draw the LR's texture and noise. A resumed run may change it for a last phase.")] = 1.0,
    kernel_weight: Annotated[float, typer.Option(
        help="Weight of a squared-error loss between R's blur kernel and each synthetic sample's true optics "
             "kernel (needs --blur-kernel); 0: R's kernel learns from the LR alone.")] = 0.0,
    colour_fit: Annotated[bool, typer.Option(
        help="Fit R's colour map to each training LR by least squares, as adapt does, so the rest of R learns "
             "what adapt will use; the colour head is frozen (kept for adapt --predict-colour).")] = False,
    mix: Annotated[Optional[str], typer.Option(
        metavar="NAME=ODDS,...",
        help="Synthetic pipelines and their odds, e.g. broad=0.6,bsrgan=0.2,realesrgan=0.2 (names: lway-engine "
             "degrade --help); default: the bundled checkpoint's, "
             + ",".join(f"{name}={odds:g}" for name, odds in TRAINING_MIX.items()) + ".")] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Write checkpoint + resume state every N steps.")
                                ] = 250,
    workers: Annotated[int, typer.Option(help="Processes synthesising batches ahead of training.")] = 1,
    device: Annotated[str, typer.Option(help="torch device (a CPU run resumes on CUDA and back).")] = "cpu",
    amp: Annotated[str, typer.Option(help=AMP_HELP)] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue from OUTPUT and OUTPUT.state.pt.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for sampling, degradations and initialisation.")] = 0,
) -> None:
    """Step 1: train the degradation encoder + LR reconstructor on synthetic pairs (the broad camera/optics/scan
    space, BSRGAN and Real-ESRGAN degradations) and/or real pairs with L1 + LPIPS. Unreadable or too-small files
    are skipped, greyscale and 16-bit ones converted, with counts. Checkpoints are atomic; --resume continues a
    stopped run bit for bit (under torchrun: at the same number of processes; another number also resumes, with
    other samples drawn)."""
    from lway_engine.reconstruction import CheckpointError, ReconstructionConfig
    from lway_engine.training.pretrain import PretrainConfig, pretrain_files

    with _launch(device) as (topology, device):
        config = PretrainConfig(steps=steps, batch=batch, crop=crop, lr=lr, checkpoint_every=checkpoint_every,
                                val_every=checkpoint_every, seed=seed, workers=workers,
                                real_fraction=real_fraction, lpips_weight=lpips_weight, kernel_weight=kernel_weight,
                                colour_fit=colour_fit, device=device,
                                amp=_amp(amp, device), init_from=None if init_from is None else str(init_from),
                                mix=_mix(mix))
        echo = typer.echo if topology.leader else (lambda message: None)
        try:
            model_config = ReconstructionConfig(scale=scale, embed_dim=embed_dim, reconstructor_width=width,
                                                num_blocks=blocks, colour_head=int(colour_head),
                                                blur_kernel=blur_kernel)
            log = pretrain_files(hr or [], pairs or [], output, config, model_config, holdout, resume, echo=echo,
                                 topology=topology)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        except (CheckpointError, FileNotFoundError) as exc:  # --init-from, --resume's files, a missing input
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        echo(f"done in {log['seconds']:.0f} s, {log['samples']} samples seen; final validation "
             f"{log['val'][-1][1] if log['val'] else '-'}; checkpoint {output}")
