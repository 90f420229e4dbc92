"""``lway-engine demo --video``: the video job end to end on a clip made here, with HR frames to score against.

The clip is camera moves (a pan, then a zoom) over scikit-image's bundled photos, degraded the way one camera
would degrade it (one ``defocus_noise`` draw for the whole clip, fresh sensor noise per frame), with a sine tone as
its sound. ``adapt`` samples frames from the LR clip and adapts the model on them, ``upscale`` runs before and after
weights over the whole clip, and each output frame is scored against its HR frame (PSNR-Y, LPIPS-alex).
``bench/video.py`` measures the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from lway_engine.media.clip import write_clip
from lway_engine.media.images import to_array, to_tensor
from lway_engine.media.video import probe, read_frames

if TYPE_CHECKING:
    from lway_engine.adaptation.loop import AdaptConfig

PHOTOS = ("astronaut", "chelsea", "coffee")
FAMILY = "defocus_noise"
RATE = Fraction(12)
ITERATIONS = 20  # the image demo's settings otherwise; selection picked steps 5-15 of 40 on this clip


def camera_moves(width: int = 256, height: int = 192, frames_per_photo: int = 12) -> list[np.ndarray]:
    """HR frames: on each photo a pan across half its width, then a zoom in to 1.5x, as float (H, W, 3)."""
    import torch.nn.functional as F
    from skimage import data

    frames = []
    half = frames_per_photo // 2
    for name in PHOTOS:
        photo = to_tensor(getattr(data, name)().astype(np.float32) / 255)
        ph, pw = photo.shape[-2:]
        win_h = min(ph * 0.8, pw * 0.6 * height / width)  # leaves room to pan on every photo's shape
        win_w = win_h * width / height
        for i in range(frames_per_photo):
            pan, zoom = min(i, half) / half, max(0, i - half) / (frames_per_photo - half)
            size_h, size_w = win_h / (1 + 0.5 * zoom), win_w / (1 + 0.5 * zoom)
            left = (pw - win_w) * (0.25 + 0.5 * pan) + (win_w - size_w) / 2
            top = (ph - win_h) / 2 + (win_h - size_h) / 2
            crop = photo[..., int(top) : int(top + size_h), int(left) : int(left + size_w)]
            frames.append(to_array(F.interpolate(crop, size=(height, width), mode="bicubic", antialias=True,
                                                 align_corners=False).clamp(0, 1)))
    return frames


def degrade_clip(hr_frames: list[np.ndarray], scale: int, seed: int = 0) -> list[np.ndarray]:
    """LR frames: one draw of ``FAMILY`` (one lens, one sensor) for every frame, the noise new in each."""
    from lway_engine.degradations.pipelines import apply_plan, plan

    steps = plan(hr_frames[0].shape[:2], FAMILY, seed, scale)
    lr = []
    for i, hr in enumerate(hr_frames):
        frame_steps = [replace(s, params={**s.params, "seed": s.params["seed"] + i}) if "seed" in s.params else s
                       for s in steps]
        lr.append(to_array(apply_plan(to_tensor(hr)[0], frame_steps)[None]))
    return lr


@dataclass(frozen=True)
class FrameScores:
    """Per-frame PSNR-Y (dB, higher is better) and LPIPS-alex (lower is better) against the HR frames."""

    psnr: list[float]
    lpips: list[float]

    @property
    def mean(self) -> tuple[float, float]:
        return float(np.mean(self.psnr)), float(np.mean(self.lpips))


def score_video(path: Path, hr_frames: list[np.ndarray], metric: torch.nn.Module) -> FrameScores:
    """Decode ``path`` and score each frame against the HR frame of the same index."""
    from lway_engine.metrics import lpips_arrays, psnr_y

    frames = list(read_frames(probe(path)))
    if len(frames) != len(hr_frames):
        raise ValueError(f"{path.name} holds {len(frames)} frames, the HR clip {len(hr_frames)}")
    return FrameScores([psnr_y(f, h) for f, h in zip(frames, hr_frames)],
                       [lpips_arrays(metric, f, h) for f, h in zip(frames, hr_frames)])


def make_demo_clip(outdir: Path, scale: int, width: int = 256, height: int = 192, frames_per_photo: int = 12
                   ) -> tuple[Path, list[np.ndarray]]:
    """Write the degraded LR clip with its tone to ``outdir/lr.mp4``; returns it and the HR frames."""
    hr = camera_moves(width, height, frames_per_photo)
    path = outdir / "lr.mp4"
    outdir.mkdir(parents=True, exist_ok=True)
    write_clip(path, degrade_clip(hr, scale), RATE, tone_hz=440, crf=10)  # crf 10: the codec adds little
    return path, hr


@dataclass(frozen=True)
class VideoDemoResult:
    """Scores before and after, what ``adapt`` decided (and why), and the frames it adapted on."""

    before: FrameScores
    after: FrameScores
    decision: str
    sampled: list[Path]


def run_video_demo(model_name: str, outdir: Path, config: AdaptConfig, frames: int = 6, device: str = "cpu",
                   width: int = 256, height: int = 192, frames_per_photo: int = 12) -> VideoDemoResult:
    """Make the clip, adapt on ``frames`` sampled frames with ``config`` (an ``AdaptConfig``), upscale the clip
    with the weights before and after, and score both against the HR frames."""
    from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR, run_adaptation
    from lway_engine.inference.upscaler import Upscaler
    from lway_engine.media.sampling import write_sampled_frames
    from lway_engine.metrics.lpips_net import LPIPS
    from lway_engine.models import load_model
    from lway_engine.reconstruction import load_checkpoint

    model = load_model(model_name, device=device)
    recon = load_checkpoint(DEFAULT_RECONSTRUCTOR, expect_scale=model.scale)
    clip, hr = make_demo_clip(outdir, model.scale, width, height, frames_per_photo)
    # its own copy of the model: adaptation changes ``model`` in place
    Upscaler(model_name, device=device, tile=0).upscale_video(clip, outdir / "before.mp4", progress=True)
    sampled = write_sampled_frames(probe(clip), frames, outdir / "adapt" / "frames")
    runs = run_adaptation(model, sampled, outdir / "adapt", recon, config, per_image=False)
    adapted = outdir / "adapt" / "weights" / "adapted.safetensors"
    Upscaler(adapted, device=device, tile=0).upscale_video(clip, outdir / "after.mp4", progress=True)
    metric = LPIPS("alex")
    before_scores, after_scores = (score_video(outdir / name, hr, metric) for name in ("before.mp4", "after.mp4"))
    return VideoDemoResult(before_scores, after_scores, runs["all"].message, sampled)
