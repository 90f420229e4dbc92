"""Encoding upscaled frames into video segments, and joining the segments with the input's audio and subtitles.

Each segment is a complete file (it starts on a key frame), encoded with the same settings and frame timestamps
taken from the input, so the segments' packets can be joined into one stream without re-encoding: that is what
makes an interrupted upscale resumable at the last finished segment. The input's audio and subtitle streams are
copied packet for packet, never re-encoded, and interleaved with the video by time.
"""

from __future__ import annotations

import contextlib
import heapq
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from lway_engine.media.video import VideoSource

COPIED_STREAMS = ("audio", "subtitle")
# Containers for segments, in order of preference: MP4 keeps any time base exactly; the others hold what it cannot.
SEGMENT_FORMATS = ((".mp4", "mp4"), (".mov", "mov"), (".mkv", "matroska"), (".nut", "nut"))


@dataclass(frozen=True)
class EncodeSettings:
    """Codec and quality of the output video. The defaults play everywhere: H.264 in 8-bit 4:2:0."""

    codec: str = "libx264"
    crf: int = 18  # x264/x265/VP9 constant quality: 0 lossless, 18 visually transparent, 23 x264's default
    preset: str | None = None  # the encoder's speed/size trade-off (x264: ultrafast ... veryslow); None: its default
    pix_fmt: str = "yuv420p"


def check_encoder(settings: EncodeSettings) -> None:
    """Fail before any work when FFmpeg has no such video encoder, or it cannot take ``pix_fmt``."""
    try:
        codec = av.codec.Codec(settings.codec, "w")
    except av.codec.codec.UnknownCodecError as exc:
        raise ValueError(f"no video encoder {settings.codec!r} in this FFmpeg build (libx264, libx265, libvpx-vp9, "
                         "ffv1, ...)") from exc
    if codec.type != "video":
        raise ValueError(f"{settings.codec} encodes {codec.type}, not video")
    formats = [f.name for f in codec.video_formats or ()]
    if formats and settings.pix_fmt not in formats:
        raise ValueError(f"{settings.codec} cannot encode {settings.pix_fmt}; it takes {', '.join(formats)}")


def _holds(format_name: str, codec: str) -> bool:
    """Whether the container format can hold video from the encoder ``codec``."""
    with av.open(io.BytesIO(), "w", format=format_name) as probe:
        return av.codec.Codec(codec, "w").canonical_name in probe.supported_codecs


def segment_suffix(codec: str) -> str:
    """The file suffix (and so the container) segments encoded with ``codec`` are written in."""
    return next(suffix for suffix, name in SEGMENT_FORMATS if _holds(name, codec))


def even_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The frame size ``pix_fmt`` can hold: subsampled chroma (4:2:0, 4:2:2) needs even sides."""
    fmt = av.VideoFormat(pix_fmt)
    return (width + width % 2 * (fmt.chroma_width(7) != 7), height + height % 2 * (fmt.chroma_height(7) != 7))


def _frame(pixels: np.ndarray, size: tuple[int, int], ten_bit: bool) -> av.VideoFrame:
    """An RGB frame of ``size`` (width, height): float pixels quantised, odd sides padded with the edge row/column."""
    pad_w, pad_h = size[0] - pixels.shape[1], size[1] - pixels.shape[0]
    if pad_w or pad_h:
        pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    if ten_bit:
        return av.VideoFrame.from_ndarray(np.rint(np.clip(pixels, 0, 1) * 65535).astype(np.uint16), "rgb48le")
    return av.VideoFrame.from_ndarray(np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8), "rgb24")


def encode_segment(path: Path, frames: Iterable[tuple[int, np.ndarray]], source: VideoSource,
                   size: tuple[int, int], settings: EncodeSettings) -> int:
    """Encode (pts, float RGB pixels) frames into a segment at ``path`` (container from its suffix, see
    ``segment_suffix``); returns how many were written.

    Timestamps stay in the input's time base, BT.709 colour is written and tagged (as players assume for HD).
    """
    written = 0
    with av.open(str(path), "w") as out:
        stream = out.add_stream(settings.codec, rate=source.rate)
        stream.width, stream.height = size
        stream.pix_fmt = settings.pix_fmt
        stream.time_base = source.time_base
        stream.codec_context.time_base = source.time_base
        stream.codec_context.colorspace = stream.codec_context.color_primaries = 1  # BT.709
        stream.codec_context.color_trc = 1
        stream.options = {"crf": str(settings.crf), **({"preset": settings.preset} if settings.preset else {})}
        ten_bit = max(c.bits for c in av.VideoFormat(settings.pix_fmt).components) > 8
        for pts, pixels in frames:
            frame = _frame(pixels, size, ten_bit).reformat(format=settings.pix_fmt, dst_colorspace="ITU709")
            frame.pts, frame.time_base = pts, source.time_base
            out.mux(stream.encode(frame))
            written += 1
        out.mux(stream.encode(None))
    return written


def check_copyable(source: VideoSource, dest: Path, codec: str) -> None:
    """Fail before any work when ``dest``'s format is unknown or cannot hold the ``codec`` video or the input's
    audio or subtitles."""
    try:
        probe = av.open(str(dest), "w")  # creates no file until something is written
    except ValueError as exc:
        raise ValueError(f"{dest.name}: unknown video format; name the output .mp4, .mkv, .mov, ...") from exc
    with probe:
        if av.codec.Codec(codec, "w").canonical_name not in probe.supported_codecs:
            raise ValueError(f"{dest.suffix} cannot hold {codec} video; write .mkv or .mov, or pick another --codec")
        if source.files:
            return
        with av.open(str(source.path)) as inp:
            refused = [f"{s.type} stream {s.index} ({s.codec_context.name})" for s in inp.streams
                       if s.type in COPIED_STREAMS and s.codec_context.name not in probe.supported_codecs]
    if refused:
        raise ValueError(f"{dest.suffix} cannot hold the input's {', '.join(refused)}; write .mkv instead")


def _packets(container: av.container.InputContainer, streams: av.stream.Stream | list[av.stream.Stream],
             out_streams: dict[int, av.stream.Stream]) -> Iterator[av.Packet]:
    """The packets of ``streams`` that carry data, re-addressed to their output streams."""
    for packet in container.demux(streams):
        if packet.size == 0 or (packet.dts is None and packet.pts is None):
            continue
        packet.stream = out_streams[packet.stream.index]
        yield packet


def _time(packet: av.Packet) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base)


def _segment_packets(segments: list[Path], stream: av.stream.Stream) -> Iterator[av.Packet]:
    """The segments' video packets in order, one file open at a time (a film has hundreds of segments)."""
    for path in segments:
        with av.open(str(path)) as part:
            yield from _packets(part, part.streams.video[0], {0: stream})


def join_segments(dest: Path, segments: list[Path], source: VideoSource) -> None:
    """Mux ``segments``' video (in order) and the input's audio and subtitles into ``dest``, without re-encoding."""
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(av.open(str(dest), "w"))
        with av.open(str(segments[0])) as first:
            video = out.add_stream_from_template(first.streams.video[0])
        if source.rotation:
            video.set_display_rotation(source.rotation)
        sources = [_segment_packets(segments, video)]
        if not source.files:
            inp = stack.enter_context(av.open(str(source.path)))
            copied = [s for s in inp.streams if s.type in COPIED_STREAMS]
            if copied:
                copy_map = {s.index: out.add_stream_from_template(s) for s in copied}
                for s in copied:
                    copy_map[s.index].metadata.update(s.metadata)
                sources.append(_packets(inp, copied, copy_map))
        for packet in heapq.merge(*sources, key=_time):
            out.mux(packet)


def count_video_frames(path: Path) -> int:
    """Video packets in a file: the frame count, without decoding."""
    with av.open(str(path)) as container:
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size)
