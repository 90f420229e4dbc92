"""Video sources: a container file read through PyAV (FFmpeg), or a folder of numbered frames (film scans).

A source is probed once before any work: its video stream, every frame's presentation timestamp (from the packets,
without decoding), the frame size, bit depth and display rotation. Frames are then addressed by index in
presentation order and each output frame carries its input frame's timestamp, so the output keeps the input's
timing exactly, variable frame rate included. A frame that fails to decode is reported with its index and the
previous frame is repeated in its place, so the frame count, and with it the sync with the audio, never changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from lway_engine.media.images import READ_SUFFIXES, ImageReadError, read_image

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts",
                  ".wmv", ".flv", ".ogv")
DEFAULT_SEQUENCE_RATE = Fraction(24)  # film scans: the rate a numbered frame folder plays at unless told
_NUMBERED = re.compile(r"(\d+)$")
HDR_TRANSFERS = {16: "PQ (SMPTE ST 2084)", 18: "HLG (ARIB STD-B67)"}  # AVColorTransferCharacteristic values

OnBadFrame = Callable[[int, str], None]  # (frame index, what went wrong); the previous frame is repeated


class VideoReadError(ValueError):
    """The input cannot be read as a video (not a video, truncated, no video stream, unusable frames)."""


@dataclass(frozen=True)
class VideoSource:
    """What is known about a video before decoding it; ``pts[i]`` is frame i's timestamp in ``time_base`` units."""

    path: Path
    pts: tuple[int, ...]
    time_base: Fraction
    width: int
    height: int
    bit_depth: int  # 8, or 16 for more than 8 bits per sample (10-bit video, 16-bit scans)
    nominal_rate: Fraction = Fraction(25)  # what the stream declares; used only when one frame gives no interval
    rotation: int = 0  # display rotation in degrees, counter-clockwise, as the container says
    files: tuple[Path, ...] = ()  # a numbered frame folder's files, in frame order

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def rate(self) -> Fraction:
        """Average frames per second (the exact rate for constant frame rate)."""
        if self.frames < 2:
            return self.nominal_rate
        return Fraction(self.frames - 1) / ((self.pts[-1] - self.pts[0]) * self.time_base)

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        return float(self.frames / self.rate)

    def signature(self) -> dict:
        """What identifies this input for ``--resume``: a changed file must not resume an old run."""
        stat = self.path.stat()
        return {"path": str(self.path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "frames": self.frames, "size": [self.width, self.height]}


def numbered_frames(folder: Path) -> list[Path]:
    """Image files of a folder whose names end in a number, in numeric order (``f9.png`` before ``f10.png``)."""
    found = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in READ_SUFFIXES
             and _NUMBERED.search(p.stem)]
    return sorted(found, key=lambda p: (int(_NUMBERED.search(p.stem).group(1)), p.name))


def is_video_job(inputs: Iterable[Path], output: Path) -> bool:
    """Whether ``upscale`` makes a video: an input is a video file, or the output is named like one (a folder of
    numbered frames is then read as a video; given with an output folder, its frames are upscaled as images)."""
    return output.suffix.lower() in VIDEO_SUFFIXES or any(
        p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES for p in inputs)


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoReadError(f"{path.name}: not a readable video, or truncated ({exc})") from exc


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first video stream that is the film, not cover art (an attached picture is a one-frame video stream)."""
    return next((s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None)


def _probe_sequence(folder: Path, rate: Fraction) -> VideoSource:
    files = numbered_frames(folder)
    if not files:
        raise VideoReadError(f"{folder}: no numbered frames (PNG, TIFF, JPEG, WebP named like frame_0001.png)")
    try:
        first = read_image(files[0])
    except ImageReadError as exc:
        raise VideoReadError(f"frame 0: {exc}") from exc
    height, width = first.size
    return VideoSource(folder, tuple(range(len(files))), 1 / rate, width, height, first.bit_depth, rate,
                       files=tuple(files))


def probe(path: Path, rate: Fraction = DEFAULT_SEQUENCE_RATE) -> VideoSource:
    """Probe a video file or numbered frame folder (played at ``rate``); ``VideoReadError`` says why it cannot."""
    if path.is_dir():
        return _probe_sequence(path, rate)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    with _open_container(path) as container:
        stream = _video_stream(container)
        if stream is None:
            raise VideoReadError(f"{path.name}: no video stream (streams: "
                                 f"{', '.join(s.type for s in container.streams) or 'none'})")
        try:
            stamps = [(p.pts if p.pts is not None else p.dts) for p in container.demux(stream) if p.size]
        except av.error.FFmpegError as exc:
            raise VideoReadError(f"{path.name}: unreadable packets, truncated or corrupt ({exc})") from exc
        if any(s is None for s in stamps):
            raise VideoReadError(f"{path.name}: frames without timestamps; remux it first "
                                 "(ffmpeg -i IN -c copy OUT.mkv)")
        hdr = HDR_TRANSFERS.get(int(stream.codec_context.color_trc or 0))
        if hdr:
            raise VideoReadError(f"{path.name}: HDR video ({hdr}); the models and the SDR output would shift its "
                                 "colours, so convert it to SDR first (e.g. ffmpeg's zscale + tonemap filters)")
        fmt = stream.codec_context.format
        depth = 16 if fmt is not None and max(c.bits for c in fmt.components) > 8 else 8
        time_base, width, height = stream.time_base, stream.codec_context.width, stream.codec_context.height
        nominal = stream.average_rate or stream.guessed_rate or Fraction(25)
    if not stamps:
        raise VideoReadError(f"{path.name}: the video stream holds no frames")
    first = next(_decoded(path), None)
    if first is None:
        raise VideoReadError(f"{path.name}: no frame could be decoded")
    return VideoSource(path, tuple(sorted(set(stamps))), time_base, width, height, depth, Fraction(nominal),
                       int(first.rotation or 0))


def _decoded(path: Path, errors: dict[int, str] | None = None, seek_pts: int | None = None
             ) -> Iterator[av.VideoFrame]:
    """Decoded frames of the video stream, from the key frame at or before ``seek_pts`` if given; a packet
    that fails is recorded in ``errors`` by its pts."""
    with _open_container(path) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        if seek_pts is not None:
            container.seek(seek_pts, stream=stream, backward=True)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                if errors is not None and packet.pts is not None:
                    errors[packet.pts] = str(exc)
                continue
            yield from frames


def _pixels(frame: av.VideoFrame, bit_depth: int) -> np.ndarray:
    """Float32 (H, W, 3) RGB in [0, 1]; 16-bit sources keep their precision."""
    if bit_depth == 8:
        return frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
    return frame.to_ndarray(format="rgb48le").astype(np.float32) / 65535.0


def _sequence_frames(source: VideoSource, start: int, on_bad: OnBadFrame) -> Iterator[np.ndarray | None]:
    for index in range(start, source.frames):
        try:
            image = read_image(source.files[index])
        except (ImageReadError, OSError) as exc:
            on_bad(index, str(exc))
            yield None
            continue
        if image.size != (source.height, source.width):
            on_bad(index, f"{source.files[index].name} is {image.size[1]}x{image.size[0]}, the sequence "
                          f"{source.width}x{source.height}")
            yield None
            continue
        yield image.rgb()


def _container_frames(source: VideoSource, start: int, on_bad: OnBadFrame) -> Iterator[np.ndarray | None]:
    """Frames ``start``.. of a container in presentation order; None where one could not be decoded. A resumed
    run seeks to the key frame before ``start`` rather than decoding everything before it."""
    index_of = {pts: i for i, pts in enumerate(source.pts)}
    errors: dict[int, str] = {}
    expected = 0
    for frame in _decoded(source.path, errors, source.pts[start] if start else None):
        index = index_of.get(frame.pts, expected) if frame.pts is not None else expected
        if index < expected:  # a duplicate timestamp: the frame was already delivered
            continue
        for missing in range(expected, index):
            if missing >= start:
                on_bad(missing, errors.get(source.pts[missing], "not decoded (corrupt or missing data)"))
                yield None
        expected = index + 1
        if index >= start:
            yield _pixels(frame, source.bit_depth)
    for missing in range(expected, source.frames):
        if missing >= start:
            on_bad(missing, errors.get(source.pts[missing], "not decoded (the file ends early)"))
            yield None


def read_frames(source: VideoSource, start: int = 0, on_bad: OnBadFrame | None = None) -> Iterator[np.ndarray]:
    """Float32 (H, W, 3) RGB frames ``start``, ``start + 1``, ... of ``source``, exactly ``frames - start`` of them.

    A frame that cannot be decoded is passed to ``on_bad`` with its index and replaced by the previous good one
    (the first good frame when it is at the start), so timing and the sync with the audio are kept.
    """
    report: OnBadFrame = on_bad or (lambda index, reason: None)
    raw = _sequence_frames if source.files else _container_frames
    pending = 0  # bad frames before the first good one
    previous: np.ndarray | None = None
    for pixels in raw(source, start, report):
        if pixels is None:
            if previous is None:
                pending += 1
            else:
                yield previous
            continue
        for _ in range(pending + 1):
            yield pixels
        pending, previous = 0, pixels
    if previous is None and pending:
        raise VideoReadError(f"{source.path.name}: none of frames {start}-{source.frames - 1} could be decoded")


def frames_at(source: VideoSource, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """The frames at ``indices`` (bad ones skipped), seeking to each rather than decoding the whole video."""
    wanted = sorted(set(indices))
    if source.files:
        found = {}
        for index in wanted:
            try:
                found[index] = read_image(source.files[index]).rgb()
            except (ImageReadError, OSError):
                continue
        return found
    found = {}
    with _open_container(source.path) as container:
        stream = _video_stream(container)
        for index in wanted:
            target = source.pts[index]
            try:
                container.seek(target, stream=stream, backward=True)
                for frame in container.decode(stream):
                    if frame.pts is not None and frame.pts >= target:
                        found[index] = _pixels(frame, source.bit_depth)
                        break
            except av.error.FFmpegError:
                continue
    return found
