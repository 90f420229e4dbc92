"""An evaluation as a terminal table, CSV and JSON; every output says which direction is better."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from lway_engine.atomic import atomic_write
from lway_engine.evaluation.scoring import Evaluation
from lway_engine.metrics import METRICS


def _arrow(metric: str) -> str:
    return "↑" if METRICS[metric].higher_is_better else "↓"


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.4f}"


def table(result: Evaluation, per_image: bool = True) -> str:
    """Fixed-width table: one row per image (optional) and the mean; arrows mark the better direction."""
    names = [row["name"] for row in result.rows] if per_image else []
    width = max([len(n) for n in names] + [len("mean"), len("image")])
    header = f"{'image':<{width}}" + "".join(f" {m + ' ' + _arrow(m):>12}" for m in result.metrics)
    lines = [header, "-" * len(header)]
    for row in result.rows if per_image else []:
        lines.append(f"{row['name']:<{width}}" + "".join(f" {_fmt(row[m]):>12}" for m in result.metrics))
    if per_image:
        lines.append("-" * len(header))
    mean = result.mean()
    lines.append(f"{'mean':<{width}}" + "".join(f" {_fmt(mean[m]):>12}" for m in result.metrics))
    lines.append(f"({len(result.rows)} images; ↑ higher is better, ↓ lower is better)")
    return "\n".join(lines)


def to_csv(result: Evaluation) -> str:
    """One row per image, then a ``mean`` row; metric columns are named ``<metric>`` with values in full."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", *result.metrics, "sr", "hr"])
    for row in result.rows:
        writer.writerow([row["name"], *(repr(row[m]) for m in result.metrics), row["sr"], row["hr"]])
    mean = result.mean()
    writer.writerow(["mean", *(repr(mean[m]) for m in result.metrics), "", ""])
    return out.getvalue()


def to_json(result: Evaluation) -> str:
    """Settings, each metric's direction and convention, per-image scores and means (inf written as "inf")."""
    def clean(value: float) -> float | str:
        return "inf" if math.isinf(value) else value

    doc = {
        "settings": {"y_channel": result.y_channel, "crop": result.crop, "layout": result.layout},
        "metrics": {m: {"higher_is_better": METRICS[m].higher_is_better, "convention": METRICS[m].convention}
                    for m in result.metrics},
        "images": [{k: clean(v) if k in result.metrics else v for k, v in row.items()} for row in result.rows],
        "mean": {m: clean(v) for m, v in result.mean().items()},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_text(path: Path, text: str) -> None:
    """Write atomically (a partial report is never left behind)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), suffix=path.suffix)
