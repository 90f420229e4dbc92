"""Score matched (SR, HR) pairs with named metrics, one pair at a time (benchmark images differ in size)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lway_engine.evaluation.layouts import Pair
from lway_engine.media.images import image_size, read_image, to_tensor
from lway_engine.metrics import METRICS, build_metric


class SizeMismatchError(ValueError):
    """An SR image and its reference differ in size; the message lists every such pair."""


@dataclass
class Evaluation:
    """Per-image scores and their means, with the settings that produced them."""

    metrics: list[str]
    y_channel: bool
    crop: int
    layout: str
    rows: list[dict] = field(default_factory=list)  # {"name", "sr", "hr", <metric>: float}

    def mean(self) -> dict[str, float]:
        """Mean of each metric over the images (inf stays inf: PSNR of identical images)."""
        return {m: math.fsum(row[m] for row in self.rows) / len(self.rows) for m in self.metrics}


def check_sizes(pairs: list[Pair]) -> None:
    """Fail before any scoring if an SR image and its reference differ in size."""
    bad = []
    for pair in pairs:
        sr, hr = image_size(pair.sr), image_size(pair.hr)
        if sr != hr:
            bad.append(f"{pair.sr.name} {sr[1]}x{sr[0]} vs {pair.hr.name} {hr[1]}x{hr[0]}")
    if bad:
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise SizeMismatchError(f"{len(bad)} SR images differ in size from their reference (W x H): "
                                + "; ".join(bad[:10]) + more)


def _load(path: Path, crop: int, device: torch.device) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1] (greyscale replicated, alpha dropped), ``crop`` border pixels removed."""
    x = to_tensor(read_image(path).rgb()).to(device)
    return x[..., crop:-crop, crop:-crop] if crop else x


def evaluate_pairs(pairs: list[Pair], metrics: list[str], y_channel: bool = False, crop: int = 0,
                   device: str = "cpu", layout: str = "", progress: bool = True) -> Evaluation:
    """Score every pair with every metric. ``crop`` border pixels are removed from both images for all metrics;
    ``y_channel`` makes PSNR and SSIM use the Y of BT.601 YCbCr (the other metrics have fixed colour handling)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    check_sizes(pairs)
    dev = torch.device(device)
    fns = {m: build_metric(m, dev, y_channel) for m in metrics}
    result = Evaluation(list(metrics), y_channel, crop, layout)
    for pair in tqdm(pairs, desc="evaluate", unit="pair", disable=not progress):
        sr, hr = _load(pair.sr, crop, dev), _load(pair.hr, crop, dev)
        row = {"name": pair.key, "sr": str(pair.sr), "hr": str(pair.hr)}
        row.update({m: float(fn(sr, hr)[0]) for m, fn in fns.items()})
        result.rows.append(row)
    return result
