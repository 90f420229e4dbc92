"""Choosing the frames of a video to adapt on: spread evenly in time, none black or flat, no two alike.

Adaptation learns the degradation from the LR frames' detail. A black frame, a fade or a title card carries none,
and a static shot sampled ten times weighs that one shot ten times, so candidates are taken at three times the
wanted density, flat ones and near-duplicates of an already kept frame are dropped, and the wanted number is then
picked evenly from what remains.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lway_engine.media.images import LUMA, Image, write_image
from lway_engine.media.video import VideoSource, frames_at

FLAT_STD = 0.02  # luma standard deviation below which a frame is black, a fade or a flat card (8-bit: ~5 levels)
DUPLICATE_DIFF = 0.02  # mean absolute difference of 16x16 luma thumbnails below which two frames count as one shot
CANDIDATES_PER_FRAME = 3


def _thumbnail(pixels: np.ndarray, side: int = 16) -> np.ndarray:
    """Block-mean luma, ``side`` x ``side``: robust to noise and compression when comparing frames."""
    luma = pixels @ LUMA
    rows = np.array_split(np.arange(luma.shape[0]), side)
    cols = np.array_split(np.arange(luma.shape[1]), side)
    return np.array([[luma[np.ix_(r, c)].mean() for c in cols] for r in rows])


def usable(pixels: np.ndarray) -> bool:
    """Not black, faded or flat."""
    return float((pixels @ LUMA).std()) >= FLAT_STD


def sample_frames(source: VideoSource, count: int) -> dict[int, np.ndarray]:
    """Up to ``count`` usable, mutually distinct frames spread evenly over ``source``, by frame index."""
    wanted = min(source.frames, count * CANDIDATES_PER_FRAME)
    indices = np.unique(np.linspace(0, source.frames - 1, wanted).round().astype(int))
    kept: dict[int, np.ndarray] = {}
    thumbs: list[np.ndarray] = []
    for index, pixels in sorted(frames_at(source, indices.tolist()).items()):
        if not usable(pixels):
            continue
        thumb = _thumbnail(pixels)
        if any(np.abs(thumb - t).mean() < DUPLICATE_DIFF for t in thumbs):
            continue
        kept[index] = pixels
        thumbs.append(thumb)
    if len(kept) <= count:
        return kept
    order = sorted(kept)
    chosen = np.linspace(0, len(order) - 1, count).round().astype(int)
    return {order[i]: kept[order[i]] for i in chosen}


def write_sampled_frames(source: VideoSource, count: int, folder: Path) -> list[Path]:
    """Sample ``count`` frames and write them as PNG (``<name>_f<index>.png``) to adapt on, and for the user to see
    which frames were used. Raises ``ValueError`` when no frame is usable."""
    frames = sample_frames(source, count)
    if not frames:
        raise ValueError(f"{source.path.name}: every sampled frame is black or flat; nothing to adapt on")
    name = source.path.stem if source.path.is_file() else source.path.name
    paths = []
    for index, pixels in frames.items():
        paths.append(folder / f"{name}_f{index:06d}.png")
        write_image(paths[-1], Image(pixels, None, source.bit_depth))
    return paths
