"""Video upscaling on small generated clips, with the real compact model and real FFmpeg (PyAV) encoders.

Frames are tiny (32x24 -> 128x96) so that the whole file runs in seconds on a 2-core CPU.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lway_engine.inference.upscale import ImageTooSmall, UpscaleOptions
from lway_engine.media.clip import write_clip
from lway_engine.media.encode import EncodeSettings
from lway_engine.media.segments import ResumeMismatch
from lway_engine.media.upscale_video import VideoJob, upscale_video
from lway_engine.media.video import VideoReadError, probe, read_frames

OPTIONS = UpscaleOptions(tile=0)
FAST = VideoJob(EncodeSettings(preset="ultrafast"), segment_frames=4)


def _frames(count: int, height: int = 24, width: int = 32) -> list[np.ndarray]:
    """A bright square moving over a gradient: every frame differs, so dropped or reordered frames show."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(count):
        img = np.stack([x / width, y / height, np.full_like(x, 0.3)], axis=2)
        img[4:12, 2 + 2 * i : 10 + 2 * i] = 1.0
        frames.append(img)
    return frames


def _decode(path: Path) -> list[np.ndarray]:
    source = probe(path)
    return list(read_frames(source))


def _streams(path: Path) -> dict[str, tuple]:
    with av.open(str(path)) as c:
        return {s.type: (s.codec_context.name, float(s.duration * s.time_base)) for s in c.streams}


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    write_clip(path, _frames(10), Fraction(25), tone_hz=440, rotation=90)
    return path


def test_upscale_keeps_frame_count_rate_duration_rotation_and_audio(compact, clip: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "clip_x4.mp4"
    outcome = upscale_video(compact, clip, dest, OPTIONS, FAST, progress=False)
    src, out = probe(clip), probe(dest)
    assert outcome.frames == out.frames == src.frames == 10
    assert out.rate == src.rate == 25 and out.pts == src.pts and out.duration == pytest.approx(src.duration)
    assert (out.width, out.height) == (4 * src.width, 4 * src.height) and out.rotation == 90
    streams_in, streams_out = _streams(clip), _streams(dest)
    assert streams_out["audio"] == streams_in["audio"]  # copied: same codec, same length
    assert not (tmp_path / "out" / "clip_x4.mp4.parts").exists()  # segments removed once joined
    with av.open(str(clip)) as a, av.open(str(dest)) as b:  # not re-encoded: identical packets
        audio_in = [bytes(p) for p in a.demux(audio=0) if p.size]
        audio_out = [bytes(p) for p in b.demux(audio=0) if p.size]
    assert audio_in == audio_out


def test_upscaler_api_upscales_a_video(clip: Path, tmp_path: Path) -> None:
    from lway_engine import Upscaler

    outcome = Upscaler("realesr-animevideov3", tile=0).upscale_video(clip, tmp_path / "x4.mp4", FAST)
    assert outcome.frames == probe(tmp_path / "x4.mp4").frames == 10 and outcome.bad_frames == []


def test_frames_match_the_image_path(compact, clip: Path, tmp_path: Path) -> None:
    """A video frame is upscaled like the same picture as an image (within the encoders' losses)."""
    from lway_engine.inference.upscale import upscale_image
    from lway_engine.media.images import Image

    dest = tmp_path / "x4.mkv"
    upscale_video(compact, clip, dest, OPTIONS, VideoJob(EncodeSettings(crf=0, preset="ultrafast",
                                                                        pix_fmt="yuv444p")), progress=False)
    first_in = _decode(clip)[3]
    expected = upscale_image(compact, Image(first_in, None, 8), OPTIONS).pixels
    assert np.abs(_decode(dest)[3] - expected).mean() < 2 / 255


def test_batched_frames_come_out_as_one_at_a_time(compact, clip: Path, tmp_path: Path) -> None:
    # FFV1 in RGB (bgr0) is lossless end to end; x264 "lossless" 4:4:4 still converts RGB to YUV and back, which
    # turned one 8-bit rounding flip of the model's output into 3/255 (a flaky failure, once in many runs)
    lossless = EncodeSettings(codec="ffv1", pix_fmt="bgr0")
    upscale_video(compact, clip, tmp_path / "one.mkv", OPTIONS, VideoJob(lossless), progress=False)
    batched = VideoJob(lossless, segment_frames=4, batch=3)  # batches straddle segment ends
    upscale_video(compact, clip, tmp_path / "three.mkv", OPTIONS, batched, progress=False)
    one, three = _decode(tmp_path / "one.mkv"), _decode(tmp_path / "three.mkv")
    diffs = [np.abs(a - b) for a, b in zip(one, three)]  # float rounding of batched convolutions: one 8-bit step
    assert len(three) == 10 and max(d.max() for d in diffs) <= 1 / 255 + 1e-6
    assert max(d.mean() for d in diffs) < 0.01 / 255  # measured 5e-5 / 255: a handful of flips per frame


def test_interrupted_upscale_resumes_to_the_same_frames(compact, clip: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    upscale_video(compact, clip, whole, OPTIONS, FAST, progress=False)

    def stop_at_six(index: int) -> None:
        if index == 6:
            raise KeyboardInterrupt

    dest = tmp_path / "resumed.mp4"
    with pytest.raises(KeyboardInterrupt):
        upscale_video(compact, clip, dest, OPTIONS, FAST, progress=False, on_frame=stop_at_six)
    assert not dest.exists() and not list(tmp_path.glob("resumed.mp4.*.part*"))  # nothing visible, no debris
    assert (tmp_path / "resumed.mp4.parts" / "000000.mp4").is_file()  # frames 0-3 survived
    resumed = upscale_video(compact, clip, dest, OPTIONS, FAST, progress=False)  # no --resume: starts over...
    assert resumed.resumed == 0
    with pytest.raises(KeyboardInterrupt):
        upscale_video(compact, clip, dest.with_name("again.mp4"), OPTIONS, FAST, progress=False, on_frame=stop_at_six)
    again = upscale_video(compact, clip, dest.with_name("again.mp4"), OPTIONS,
                          VideoJob(FAST.encode, FAST.segment_frames, resume=True), progress=False)
    assert again.resumed == 4 and again.frames == 10
    reference = _decode(whole)
    for path in (dest, dest.with_name("again.mp4")):
        frames = _decode(path)
        assert len(frames) == 10 and all(np.array_equal(a, b) for a, b in zip(frames, reference))


def test_resume_with_other_settings_is_refused(compact, clip: Path, tmp_path: Path) -> None:
    dest = tmp_path / "x4.mp4"

    def stop(index: int) -> None:
        if index == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(compact, clip, dest, OPTIONS, FAST, progress=False, on_frame=stop)
    other = VideoJob(EncodeSettings(crf=30, preset="ultrafast"), FAST.segment_frames, resume=True)
    with pytest.raises(ResumeMismatch, match="encode"):
        upscale_video(compact, clip, dest, OPTIONS, other, progress=False)


def test_reading_from_a_later_frame_seeks_and_gives_the_same_frames(tmp_path: Path) -> None:
    clip = tmp_path / "gop3.mp4"
    write_clip(clip, _frames(11), gop=3)
    source = probe(clip)
    whole = list(read_frames(source))
    for start in (1, 3, 7, 10):
        assert all(np.array_equal(a, b) for a, b in zip(read_frames(source, start), whole[start:], strict=True))


def test_variable_frame_rate_keeps_each_frames_timestamp(compact, tmp_path: Path) -> None:
    clip = tmp_path / "vfr.mkv"
    stamps = [0, 40, 80, 200, 240, 400, 440]  # ms: pauses between bursts
    write_clip(clip, _frames(len(stamps)), Fraction(25), pts=stamps, time_base=Fraction(1, 1000))
    dest = tmp_path / "vfr_x4.mkv"
    upscale_video(compact, clip, dest, OPTIONS, FAST, progress=False)
    assert probe(dest).pts == probe(clip).pts == tuple(stamps)


def test_a_bad_frame_is_reported_and_the_previous_one_repeated(compact, tmp_path: Path) -> None:
    clip = tmp_path / "mjpeg.mkv"
    write_clip(clip, _frames(8), codec="mjpeg", pix_fmt="yuvj420p")
    with av.open(str(clip)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(clip.read_bytes())
    pos, size = packets[5]
    data[pos + size // 3 : pos + size - 4] = np.random.default_rng(0).integers(0, 256, size - 4 - size // 3,
                                                                                dtype=np.uint8).tobytes()
    clip.write_bytes(bytes(data))
    dest = tmp_path / "x4.mkv"
    lossless = VideoJob(EncodeSettings(crf=0, preset="ultrafast"), segment_frames=4)  # repeats stay identical
    outcome = upscale_video(compact, clip, dest, OPTIONS, lossless, progress=False)
    assert [index for index, _ in outcome.bad_frames] == [5]
    frames = _decode(dest)
    assert len(frames) == 8 and np.array_equal(frames[5], frames[4]) and not np.array_equal(frames[4], frames[3])


def test_numbered_frame_folder_becomes_a_video(compact, tmp_path: Path) -> None:
    from lway_engine.media.images import Image, write_image

    scans = tmp_path / "scans"
    for i, img in enumerate(_frames(5)):
        write_image(scans / f"scan_{i + 8}.png", Image(img, None, 8))  # 8..12: numeric, not name, order
    dest = tmp_path / "scans.mp4"
    upscale_video(compact, scans, dest, OPTIONS, VideoJob(FAST.encode, rate=Fraction(24)), progress=False)
    out = probe(dest)
    assert out.frames == 5 and out.rate == 24 and (out.width, out.height) == (128, 96)
    assert "audio" not in _streams(dest)


def test_ten_bit_input_is_read_at_16_bits_and_can_stay_ten_bit(compact, tmp_path: Path) -> None:
    clip = tmp_path / "ten.mkv"
    write_clip(clip, _frames(3), pix_fmt="yuv420p10le")
    assert probe(clip).bit_depth == 16
    dest = tmp_path / "ten_x4.mkv"
    upscale_video(compact, clip, dest, OPTIONS, VideoJob(EncodeSettings(preset="ultrafast", pix_fmt="yuv420p10le")),
                  progress=False)
    assert probe(dest).bit_depth == 16 and probe(dest).frames == 3


def test_odd_output_sides_are_padded_to_even_for_420(compact, tmp_path: Path) -> None:
    clip = tmp_path / "odd.mkv"
    write_clip(clip, _frames(2, height=25, width=33), pix_fmt="yuv444p")
    dest = tmp_path / "odd_x3.mp4"
    upscale_video(compact, clip, dest, UpscaleOptions(tile=0, outscale=3), FAST, progress=False)
    out = probe(dest)
    assert (out.width, out.height) == (100, 76)  # 99x75, one edge column and row repeated


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w") as out:
        audio = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(audio.encode(frame))
        out.mux(audio.encode(None))


def _truncated(path: Path) -> None:
    write_clip(path, _frames(6))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _hdr(path: Path) -> None:
    """A 10-bit clip tagged PQ / BT.2020, as HDR10 video is."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p10le"
        video.codec_context.color_trc, video.codec_context.color_primaries = 16, 9  # PQ, BT.2020
        for i, pixels in enumerate(_frames(2)):
            frame = av.VideoFrame.from_ndarray((pixels * 65535).astype(np.uint16), "rgb48le")
            frame = frame.reformat(format="yuv420p10le")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))


@pytest.mark.parametrize("make, error, match", [
    (lambda p: p.write_text("not a video at all"), VideoReadError, "not a readable video"),
    (_hdr, VideoReadError, r"HDR video \(PQ"),
    (_truncated, VideoReadError, "truncated"),
    (_audio_only, VideoReadError, "no video stream"),
    (lambda p: write_clip(p, _frames(2, height=6, width=6)), ImageTooSmall, "at least 8x8"),
])
def test_bad_input_gives_a_clear_error(compact, tmp_path: Path, make, error, match) -> None:
    bad = tmp_path / "bad.mp4"
    make(bad)
    with pytest.raises(error, match=match):
        upscale_video(compact, bad, tmp_path / "out.mp4", OPTIONS, FAST, progress=False)
    assert not (tmp_path / "out.mp4").exists()


def test_output_equal_to_input_is_refused(compact, clip: Path) -> None:
    before = clip.read_bytes()
    with pytest.raises(ValueError, match="overwrite the input"):
        upscale_video(compact, clip, clip.parent / "." / clip.name, OPTIONS, FAST, progress=False)
    assert clip.read_bytes() == before


def test_output_format_that_cannot_hold_the_audio_is_refused_before_work(compact, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_clip(clip, _frames(2), tone_hz=440)
    vp9 = VideoJob(EncodeSettings(codec="libvpx-vp9"))
    with pytest.raises(ValueError, match=r"\.webm cannot hold the input's audio stream 1 \(aac\)"):
        upscale_video(compact, clip, tmp_path / "out.webm", OPTIONS, vp9, progress=False)  # WebM: VP9 but no AAC


def _photo_clip(path: Path, scale: int = 8) -> list[np.ndarray]:
    """Black lead-in, a static shot, a pan, a flat end card: what frame sampling must sort out."""
    from skimage import data

    img = data.astronaut().astype(np.float32)[::scale, ::scale] / 255
    frames = [np.zeros_like(img)] * 4 + [img] * 8 + [np.roll(img, 5 * i, axis=1) for i in range(1, 13)] + [
        np.full_like(img, 0.5)] * 4
    write_clip(path, frames, tone_hz=440)
    return frames


def test_sampling_skips_black_flat_and_repeated_frames(tmp_path: Path) -> None:
    from lway_engine.media.sampling import sample_frames

    clip = tmp_path / "shots.mp4"
    _photo_clip(clip)
    chosen = sorted(sample_frames(probe(clip), 5))
    assert len(chosen) == 5
    assert all(4 <= i < 24 for i in chosen)  # never the black lead-in or the flat end card
    assert sum(4 <= i < 12 for i in chosen) <= 1  # the static shot counts once


def test_adapt_on_a_video_then_upscale_it_with_the_adapted_weights(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lway_engine.cli import app

    clip = tmp_path / "film.mp4"
    _photo_clip(clip)
    runner = CliRunner()
    result = runner.invoke(app, ["adapt", str(clip), "-o", str(tmp_path / "adapted"), "--model",
                                 "realesr-animevideov3", "--frames", "3", "--iterations", "2", "--batch", "1",
                                 "--crop", "32", "--no-select"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "adapted" / "frames").glob("film_f*.png"))) == 3
    weights = tmp_path / "adapted" / "weights" / "adapted.safetensors"
    dest = tmp_path / "film_x4.mp4"
    result = runner.invoke(app, ["upscale", str(clip), "-o", str(dest), "--model", str(weights), "--tile", "0",
                                 "--preset", "ultrafast"])
    assert result.exit_code == 0, result.output
    assert probe(dest).frames == probe(clip).frames and "audio" in _streams(dest)


def test_video_demo_runs_end_to_end_on_a_small_clip(tmp_path: Path) -> None:
    """``demo --video``'s pipeline at a test's size: clip with tone, sampled adaptation, before/after scores."""
    from lway_engine.adaptation.loop import AdaptConfig
    from lway_engine.media.demo_video import run_video_demo

    result = run_video_demo("realesr-animevideov3", tmp_path, AdaptConfig(iterations=2, batch=1, crop=32,
                                                                          select=False),
                            frames=3, width=192, height=144, frames_per_photo=4)
    assert len(result.before.psnr) == len(result.after.lpips) == 12 and len(result.sampled) == 3
    assert 15 < result.before.mean[0] < 45 and 0 <= result.after.mean[1] < 1
    assert "audio" in _streams(tmp_path / "after.mp4")


def _with_subtitles(video: Path, dest: Path, lines: list[bytes]) -> None:
    """``video`` remuxed with an SRT subtitle stream (one line every 200 ms)."""
    with av.open(str(video)) as inp, av.open(str(dest), "w") as out:
        stream_map = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        subs = out.add_mux_stream("subrip")
        subs.time_base = Fraction(1, 1000)
        for packet in inp.demux():
            if packet.size:
                packet.stream = stream_map[packet.stream.index]
                out.mux(packet)
        for i, text in enumerate(lines):
            packet = av.Packet(text)
            packet.pts = packet.dts = i * 200
            packet.duration, packet.time_base, packet.stream = 150, Fraction(1, 1000), subs
            out.mux(packet)


def test_subtitles_are_copied_and_mp4_output_that_cannot_hold_them_is_refused(compact, clip: Path,
                                                                              tmp_path: Path) -> None:
    subtitled = tmp_path / "subtitled.mkv"
    _with_subtitles(clip, subtitled, [b"Hello", b"world"])
    dest = tmp_path / "x4.mkv"
    upscale_video(compact, subtitled, dest, OPTIONS, FAST, progress=False)
    with av.open(str(subtitled)) as a, av.open(str(dest)) as b:
        lines_in, lines_out = ([(bytes(p), p.pts, p.duration) for p in c.demux(subtitles=0) if p.size]
                               for c in (a, b))
        assert [line[0] for line in lines_out] == [b"Hello", b"world"] and lines_out == lines_in
        assert {s.type for s in b.streams} == {"video", "audio", "subtitle"}
    with pytest.raises(ValueError, match=r"subtitle stream 2 \(srt\).*\.mkv"):
        upscale_video(compact, subtitled, tmp_path / "x4.mp4", OPTIONS, FAST, progress=False)


@pytest.mark.parametrize("settings, match", [
    (EncodeSettings(codec="nonesuch"), "no video encoder 'nonesuch'"),
    (EncodeSettings(codec="aac"), "encodes audio, not video"),
    (EncodeSettings(pix_fmt="rgb24"), "libx264 cannot encode rgb24"),
])
def test_unusable_encoder_settings_are_refused_before_work(compact, clip: Path, tmp_path: Path, settings,
                                                           match) -> None:
    with pytest.raises(ValueError, match=match):
        upscale_video(compact, clip, tmp_path / "x4.mp4", OPTIONS, VideoJob(settings), progress=False)
    assert not list(tmp_path.glob("x4.mp4*"))


def test_a_single_frame_video_keeps_its_declared_rate(compact, tmp_path: Path) -> None:
    clip = tmp_path / "one.mp4"
    write_clip(clip, _frames(1), Fraction(30))
    dest = tmp_path / "one_x4.mp4"
    upscale_video(compact, clip, dest, OPTIONS, FAST, progress=False)
    assert probe(clip).rate == probe(dest).rate == 30 and probe(dest).frames == 1


def test_codecs_mp4_cannot_hold_are_segmented_in_another_container(compact, clip: Path, tmp_path: Path) -> None:
    prores = VideoJob(EncodeSettings(codec="prores_ks", pix_fmt="yuv422p10le"), segment_frames=4)
    dest = tmp_path / "x4.mov"
    upscale_video(compact, clip, dest, OPTIONS, prores, progress=False)
    assert probe(dest).frames == 10 and _streams(dest)["video"][0] == "prores" and "audio" in _streams(dest)
    with pytest.raises(ValueError, match=r"\.mp4 cannot hold prores_ks video"):
        upscale_video(compact, clip, tmp_path / "x4.mp4", OPTIONS, prores, progress=False)


def test_sampling_reads_a_numbered_frame_folder(tmp_path: Path) -> None:
    from lway_engine.media.images import Image, write_image
    from lway_engine.media.sampling import write_sampled_frames

    scans = tmp_path / "reel"
    frames = _frames(9)
    for i, img in enumerate(frames):
        write_image(scans / f"reel{i:04d}.tif", Image(img, None, 8))
    written = write_sampled_frames(probe(scans), 3, tmp_path / "frames")
    indices = [int(p.stem.rsplit("_f", 1)[1]) for p in written]
    assert len(indices) == 3 and indices[0] == 0 and indices[-1] >= 6 and indices == sorted(indices)
