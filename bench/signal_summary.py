"""Every recorded per-image sample of ``bench/signal_check.py`` in one table: how well the no-HR signal ranks runs by
their true LPIPS change, sample by sample and pooled, and what ``adapt``'s decision keeps.

    .venv/bin/python bench/signal_summary.py            # table on stdout, JSON + bar chart in bench/results/

Why: the acceptance (Spearman >= 0.6 over at least 30 runs) has been measured on many samples of 30, whose single
values scatter by about 0.19; one table, re-scored with today's rules, says where it stands without reading seven
files. Each sample is re-scored as ``signal_check.py --from`` would (the signal recomputed from its recorded parts
with today's ``combine``, the decision with today's gate rule and ``min_gain``). Columns: the shipped signal's
Spearman at each run's last step; the spectral gap's fall (``-gap``, ``bench/signal_probes.py``) where recorded; the
held-out strip's own true change against the whole image's (a perfect held-out reading) where recorded; the oracle
that knows each set's mean true change and nothing within sets (a bound for readings that only tell sets apart);
the City100 oracle, which knows only whether a run is on City100 (the one set where adaptation helps, and the split
the explainability gate makes by design), so a bound for a gate-like reading; and the decision: runs adapted, mean
true LPIPS change of the kept weights, kept runs worse than +0.002.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from results_dir import results_dir
from signal_check import load_runs, spearman, summarise

RECORDED = Path(__file__).resolve().parent / "results"  # the committed samples (results_dir() may point elsewhere)
# (file stem, what it holds), in the order they were run; the first four used the previous default candidate
SAMPLES = (
    ("signal_check_per_image", "City100 031-036, kodim01-05"),
    ("signal_check_per_image_fresh1", "City100 037-042, kodim07-10"),
    ("signal_check_per_image_fresh2", "City100 043-048, kodim13-16"),
    ("signal_check_per_image_fresh3", "City100 049-054, kodim19-22"),
    ("signal_check_probes_design", "City100 031-036, kodim01-04"),
    ("signal_check_probes_confirm", "City100 055-060, CBSD68 crops"),
    ("signal_check_per_image_cross0.3", "City100 031-036, kodim01-04"),
    ("signal_check_per_image_cross0.3_fresh", "City100 039-044, kodim09-12"),
    ("signal_check_per_image_cross0.3_next", "City100 045-050, kodim15-18"),
    ("signal_check_per_image_cross0.3_larger_lr", "City100 051-056, kodim21-24 (128-px family LRs)"),
    ("signal_check_per_image_cross0.3_movement", "City100 057-060, CBSD68 29-33 (records the movement)"),
    ("signal_check_per_image_cross0.3_niqe", "City100 047-050, CBSD68 34-38 (records NIQE)"),
    ("signal_check_per_image_cross0.3_resize2", "City100 031-034, CBSD68 39-43 (today's E+R)"),
    ("signal_check_per_image_cross0.3_confidence", "CBSD68 44-58 unseen types, 44-48 families (no City100)"),
    ("signal_check_per_image_cross0.3_confidence5a", "CBSD68 59-63, the two unseen types"),
    ("signal_check_per_image_cross0.3_confidence5b", "CBSD68 64-68, the two unseen types"),
    ("signal_check_per_image_cross0.3_texture_loss", "City100 031-036, Sun_Hays80 41-44 (records texture_all)"),
)


def recorded(summary: dict, reading: str, runs: int, sign: float = 1.0) -> float:
    """``summarise``'s Spearman of ``reading`` at the last step (times ``sign``), or NaN where fewer than half of the
    ``runs`` record it (a few runs of a sample would stand for all of it in the table)."""
    entry = summary[reading]
    return sign * entry["spearman_final"] if entry["runs"] >= runs // 2 else math.nan


def row(runs: list[dict]) -> dict:
    """One table row: the rank correlations and the decision, re-scored with today's rules."""
    summary = summarise(runs)
    set_mean = {name: s["lpips_change_last"] for name, s in summary["sets"].items()}
    selection = summary["selection"]
    return {"runs": len(runs), "candidate": sorted({r["candidate"] for r in runs}),
            "signal": summary["value"]["spearman_final"], "minus_gap": recorded(summary, "gap", len(runs), -1.0),
            "strip_truth": recorded(summary, "strip_truth", len(runs)),
            "set_oracle": spearman([set_mean[r["set"]] for r in runs], [r["points"][-1]["lpips_change"] for r in runs]),
            "city100_oracle": spearman([float(r["set"] != "city100") for r in runs],
                                       [r["points"][-1]["lpips_change"] for r in runs]),
            "adapted": selection["adapted_chosen"], "kept_lpips_change": selection["mean_lpips_change_chosen"],
            "kept_worse": selection["worse_than_unadapted_chosen"]}


def print_table(rows: dict[str, dict]) -> None:
    print("| sample | images | runs | signal | -gap | strip truth | set oracle | City100 oracle | adapted | kept LPIPS "
          "| kept worse |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        cells = [f"{r[k]:+.2f}" if math.isfinite(r[k]) else "-" for k in ("signal", "minus_gap", "strip_truth",
                                                                           "set_oracle", "city100_oracle")]
        print(f"| {name} | {r['images']} | {r['runs']} | {' | '.join(cells)} | {r['adapted']} | "
              f"{r['kept_lpips_change']:+.4f} | {r['kept_worse']} |")


def plot(path, rows: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for offset, key, label in ((-0.2, "signal", "shipped signal"), (0.0, "minus_gap", "-gap (probe)"),
                               (0.2, "strip_truth", "strip's own truth")):
        ax.bar(x + offset, [rows[n][key] for n in names], 0.2, label=label)  # NaN: not recorded, no bar
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.axhline(0.6, color="k", linestyle="--", linewidth=1, label="acceptance 0.6")
    ax.set_xticks(x, [f"{n}\n({rows[n]['runs']})" for n in names], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("Spearman vs true LPIPS change")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="x86_64_CPU", help="the device suffix of the sample files")
    args = parser.parse_args()
    samples, rows = {}, {}
    for stem, images in SAMPLES:
        path = RECORDED / f"{stem}_{args.device}.json"
        if path.exists():
            samples[stem] = load_runs(path)
            rows[stem.removeprefix("signal_check_")] = {"images": images, **row(samples[stem])}
    previous = [r for stem in SAMPLES[:4] if stem[0] in samples for r in samples[stem[0]]]
    today = [r for stem, _ in SAMPLES if "cross0.3" in stem and stem in samples for r in samples[stem]]
    for name, runs, images in (("pooled, previous default", previous, "the first four rows"),
                               ("pooled, today's default", today, "the cross0.3 rows")):
        if runs:
            rows[name] = {"images": images, **row(runs)}
    print_table(rows)
    out = results_dir() / f"signal_summary_{args.device}.json"
    out.write_text(json.dumps({"what": __doc__.split("\n\n")[0], "command": "bench/signal_summary.py",
                               "rows": rows}, indent=1))
    plot(out.with_suffix(".png"), rows)
    print(f"wrote {out} and {out.with_suffix('.png').name}")


if __name__ == "__main__":
    main()
