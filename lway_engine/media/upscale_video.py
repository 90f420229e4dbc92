"""``lway-engine upscale film.mp4 -o film_x4.mp4``: a video super-resolved frame by frame, sound and timing kept.

Every frame goes through ``upscale_images``, the path images take (any backend ``Upscaler`` loads, tiling, bf16 on
CPUs that have it), so a video frame and the same picture as a PNG come out alike; ``batch`` frames share one
network call. Frames are encoded in segments (``segments.py``) that survive an interrupt, and joined with the
input's audio and subtitles (copied, not re-encoded) into the output, which appears only once it is complete and
holds as many frames as the input.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lway_engine.atomic import atomic_write
from lway_engine.media.encode import (
    EncodeSettings,
    check_copyable,
    check_encoder,
    count_video_frames,
    encode_segment,
    even_size,
    join_segments,
    segment_suffix,
)
from lway_engine.inference.upscale import ImageTooSmall, UpscaleOptions, prepare_model, upscale_images
from lway_engine.media.images import Image
from lway_engine.media.segments import SegmentStore
from lway_engine.media.video import DEFAULT_SEQUENCE_RATE, VIDEO_SUFFIXES, VideoSource, probe, read_frames
from lway_engine.models import LoadedModel


@dataclass(frozen=True)
class VideoJob:
    """How a video is written: codec settings, segment length (what an interrupt can lose), resuming."""

    encode: EncodeSettings = EncodeSettings()
    segment_frames: int = 240
    resume: bool = False
    rate: Fraction = DEFAULT_SEQUENCE_RATE  # frames per second of a numbered frame folder
    batch: int = 1  # frames per network call: a GPU runs small frames faster in batches, a CPU gains nothing


@dataclass(frozen=True)
class VideoOutcome:
    """What an upscale did: frames written, how many an earlier run had finished, frames that were repeated."""

    output: Path
    frames: int
    resumed: int
    bad_frames: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0


def video_output_path(source: Path, output: Path, name_suffix: str) -> Path:
    """``output`` itself when it names a video file, else ``output/<stem><suffix>.<input's suffix or mp4>``."""
    if output.suffix.lower() in VIDEO_SUFFIXES:
        return output
    suffix = source.suffix.lower() if source.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
    return output / f"{source.stem if source.is_file() else source.name}{name_suffix}{suffix}"


def output_size(source: VideoSource, model: LoadedModel, options: UpscaleOptions, pix_fmt: str) -> tuple[int, int]:
    """(width, height) of the encoded frames: the model's (or ``outscale``'s) size, made even where 4:2:0 needs it
    (an odd side gets one more edge-repeated column or row)."""
    factor = options.outscale or model.scale
    width, height = max(1, round(source.width * factor)), max(1, round(source.height * factor))
    return even_size(width, height, pix_fmt)


def _check_complete(path: Path, frames: int) -> None:
    written = count_video_frames(path)
    if written != frames:
        raise ValueError(f"the joined video holds {written} frames, the input {frames}; the segments are kept")


def upscale_video(model: LoadedModel, input_path: Path, dest: Path, options: UpscaleOptions, job: VideoJob,
                  progress: bool = True, on_frame: Callable[[int], None] | None = None) -> VideoOutcome:
    """Upscale the video (or numbered frame folder) ``input_path`` into the video file ``dest``.

    ``on_frame(index)`` is called after each frame is upscaled (a UI's progress, or a stop by raising). Raises
    ``VideoReadError`` for unusable input, ``ImageTooSmall`` for frames below the model's minimum, ``ValueError``
    for an output that would overwrite the input or cannot hold its streams, and ``ResumeMismatch``.
    """
    started = time.perf_counter()
    if dest.resolve() == input_path.resolve():
        raise ValueError(f"{dest}: the output would overwrite the input; choose another output name")
    source = probe(input_path, job.rate)
    if min(source.width, source.height) < model.size.minimum:
        raise ImageTooSmall(f"frames are {source.width}x{source.height}; this model needs at least "
                            f"{model.size.minimum}x{model.size.minimum}")
    check_encoder(job.encode)
    check_copyable(source, dest, job.encode.codec)
    prepare_model(model, options)
    size = output_size(source, model, options, job.encode.pix_fmt)
    key = {"source": source.signature(), "model": model.sha256, "encode": asdict(job.encode),
           "upscale": asdict(options), "segment_frames": job.segment_frames, "rate": str(source.rate)}
    store = SegmentStore(dest, key, job.resume)
    resumed = store.done
    bar = tqdm(total=source.frames, initial=resumed, unit="frame", desc=input_path.name, disable=not progress,
               smoothing=0.05)
    bad: list[tuple[int, str]] = []

    def on_bad(index: int, reason: str) -> None:
        bad.append((index, reason))
        bar.write(f"frame {index}: {reason}; the previous frame is repeated in its place")

    def upscaled() -> Iterator[tuple[int, np.ndarray]]:
        pending: list[tuple[int, np.ndarray]] = []
        for index, pixels in enumerate(read_frames(source, resumed, on_bad), resumed):
            pending.append((index, pixels))
            if len(pending) < job.batch and index < source.frames - 1:
                continue
            results = upscale_images(model, [Image(p, None, source.bit_depth) for _, p in pending], options)
            for (i, _), result in zip(pending, results):
                bar.update(1)
                if on_frame is not None:
                    on_frame(i)
                yield source.pts[i], result.pixels
            pending = []

    frames = upscaled()
    suffix = segment_suffix(job.encode.codec)
    try:
        while store.done < source.frames:
            count = min(job.segment_frames, source.frames - store.done)
            store.add(lambda tmp: encode_segment(tmp, itertools.islice(frames, count), source, size, job.encode),
                      suffix)
    finally:
        bar.close()
    atomic_write(dest, lambda tmp: join_segments(tmp, store.files, source),
                 check=lambda tmp: _check_complete(tmp, source.frames), suffix=dest.suffix)
    store.remove()
    return VideoOutcome(dest, source.frames, resumed, bad, time.perf_counter() - started)
