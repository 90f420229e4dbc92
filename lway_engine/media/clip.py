"""Writing a video from frames in memory: the demo's clip, the benchmark's clip and the tests' small clips.

One function covers what they need to vary: codec and pixel format (10-bit, odd sizes), explicit timestamps
(variable frame rate), display rotation, and a sine tone as the audio track.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _tone(seconds: float, hz: float, rate: int) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None]


def write_clip(path: Path, frames: Iterable[np.ndarray], rate: Fraction = Fraction(25), *,
               pts: Sequence[int] | None = None, time_base: Fraction | None = None, codec: str = "libx264",
               pix_fmt: str = "yuv420p", tone_hz: float | None = None, rotation: int = 0, crf: int = 16,
               gop: int = 250) -> None:
    """Encode float (H, W, 3) RGB frames in [0, 1] to ``path`` at ``rate`` frames per second.

    ``pts`` (in ``time_base`` units, default 1/rate) gives each frame's timestamp for variable frame rate;
    ``tone_hz`` adds a mono AAC sine tone as long as the video; ``rotation`` sets the display matrix; ``gop`` is
    the key frame interval.
    """
    time_base = time_base or 1 / rate
    last_pts = 0
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate)
        video.pix_fmt = pix_fmt
        video.time_base = video.codec_context.time_base = time_base
        video.codec_context.gop_size = gop
        if codec in ("libx264", "libx265"):
            video.options = {"crf": str(crf), "preset": "veryfast"}
        if rotation:
            video.set_display_rotation(rotation)
        audio = out.add_stream("aac", rate=16000, layout="mono") if tone_hz else None
        ten_bit = max(c.bits for c in av.VideoFormat(pix_fmt).components) > 8
        for index, pixels in enumerate(frames):
            if index == 0:
                video.height, video.width = pixels.shape[:2]
            if ten_bit:
                frame = av.VideoFrame.from_ndarray(np.rint(pixels * 65535).astype(np.uint16), "rgb48le")
            else:
                frame = av.VideoFrame.from_ndarray(np.rint(pixels * 255).astype(np.uint8), "rgb24")
            frame.pts = last_pts = pts[index] if pts is not None else round(index / rate / time_base)
            frame.time_base = time_base
            out.mux(video.encode(frame.reformat(format=pix_fmt)))
        out.mux(video.encode(None))
        if audio is not None:
            seconds = float(last_pts * time_base) + 1 / float(rate)
            samples = _tone(seconds, tone_hz, 16000)
            for start in range(0, samples.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + 1024]),
                                                   format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                out.mux(audio.encode(chunk))
            out.mux(audio.encode(None))
