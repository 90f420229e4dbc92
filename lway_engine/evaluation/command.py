"""``lway-engine evaluate``: the paper's metric table for a folder of SR results against their references."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lway_engine.evaluation.layouts import LAYOUTS
from lway_engine.metrics.registry import METRICS, PAPER_METRICS


def evaluate_command(
    sr: Annotated[Path, typer.Option(help="Folder of SR results (searched recursively).", file_okay=False,
                                     show_default=False)],
    hr: Annotated[Path, typer.Option(help="Folder of references, or a benchmark root (see --layout).",
                                     file_okay=False, show_default=False)],
    y: Annotated[bool, typer.Option("--y", help="PSNR/SSIM on the Y of BT.601 YCbCr instead of RGB.")] = False,
    crop: Annotated[int, typer.Option(min=0, help="Border pixels removed from both images before every "
                                      "metric (SR papers often use the scale).")] = 0,
    metrics: Annotated[str, typer.Option(help="Comma-separated metrics; known: " + ", ".join(METRICS) + ".")] = (
        ",".join(PAPER_METRICS)),
    layout: Annotated[str, typer.Option(help="Reference layout: " + ", ".join(LAYOUTS) + ".")] = "auto",
    scale: Annotated[int, typer.Option(min=1, help="SR scale: picks RealSR's Test/<scale> and the LR name "
                                       "suffix (_LR4, _x4) an SR file may carry.")] = 4,
    csv: Annotated[Optional[Path], typer.Option(help="Write per-image scores and the mean as CSV.",
                                                dir_okay=False)] = None,
    json: Annotated[Optional[Path], typer.Option(help="Write settings, scores and means as JSON.",
                                                 dir_okay=False)] = None,
    per_image: Annotated[bool, typer.Option("--per-image/--mean-only", help="Terminal table rows.")] = True,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, ...")] = "cpu",
) -> None:
    from lway_engine.evaluation import PairingError, SizeMismatchError, evaluate_pairs, match_pairs
    from lway_engine.evaluation.layouts import detect_layout
    from lway_engine.evaluation.report import table, to_csv, to_json, write_text
    from lway_engine.hardware import check_device
    from lway_engine.media.images import ImageReadError
    from lway_engine.weights import WeightsUnavailable

    names = list(dict.fromkeys(m.strip() for m in metrics.split(",") if m.strip()))  # each once, in order
    if not names or (unknown := [m for m in names if m not in METRICS]):
        raise typer.BadParameter(f"unknown metric(s) {', '.join(unknown) if names else '(none)'}; known: "
                                 f"{', '.join(METRICS)}", param_hint="'--metrics'")
    if layout not in LAYOUTS:
        raise typer.BadParameter(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}", param_hint="'--layout'")
    try:
        check_device(device)
        resolved = detect_layout(hr, scale) if layout == "auto" else layout
        pairs = match_pairs(sr, hr, resolved, scale)
        typer.echo(f"{len(pairs)} pairs ({resolved} layout); metrics: {', '.join(names)}", err=True)
        result = evaluate_pairs(pairs, names, y_channel=y, crop=crop, device=device, layout=resolved)
    except (PairingError, SizeMismatchError, ImageReadError, FileNotFoundError, WeightsUnavailable,
            ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(table(result, per_image))
    if csv:
        write_text(csv, to_csv(result))
    if json:
        write_text(json, to_json(result))


evaluate_command.__doc__ = "\n\n".join([
    "Score SR results against their references with the LWay paper's metrics (PSNR, SSIM, LPIPS, DISTS, NLPD, "
    "MAD): a table per image and the mean, optionally CSV and JSON. Pairs are matched by file name; a reference "
    "without an SR image, an SR image without a reference, or a size mismatch is an error (exit code 2).",
    "Layouts: plain (same stem); city100 (NNNH references); realsr (RealSR V3: <Camera>/Test/<scale>/*_HR); "
    "drealsr (DRealSR: test_HR/*_x1). An SR file may be named after the reference key (001, Canon_001), the "
    "reference (001H, Canon_001_HR) or its LR input (001L, Canon_001_LR4, DSC_1454_x4).",
    "Higher is better for PSNR and SSIM; lower for LPIPS, DISTS, NLPD and MAD. --crop applies to every metric, "
    "--y to PSNR and SSIM (NLPD and MAD always use luma, LPIPS and DISTS RGB).",
])
