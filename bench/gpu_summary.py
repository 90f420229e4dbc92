"""Summarise a ``bench/gpu_suite.sh`` run: OUT/summary.json and OUT/summary.md from its steps, tests and JSONs.

    .venv/bin/python bench/gpu_summary.py OUT

The headline figures are the issue's goals, each read from the benchmark that measures it (absent where that
benchmark did not run or found no GPU): Triton fused loss vs eager at 6x3x128x128 and its share of copy bandwidth
at 16x3x512x512, R's op vs PyTorch, --compile and bf16 vs eager, the 500-step adaptation time, the E+R+loss share
of a step, City100 quality. Everything else is kept as the benchmarks wrote it.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def _steps(out: Path) -> list[dict[str, Any]]:
    rows = []
    for line in (out / "steps.tsv").read_text().splitlines():
        name, rc, seconds, command = line.split("\t", 3)
        status = "ok" if rc == "0" else "timed out" if rc in ("124", "137") else "skipped" if rc == "-1" else "failed"
        rows.append({"step": name, "status": status, "rc": int(rc), "seconds": int(seconds), "command": command})
    return rows


def _tests(out: Path) -> dict[str, Any] | None:
    path = out / "tests.xml"
    if not path.is_file():
        return None
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome})
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failure", "error", "skipped")}
    return {"counts": counts, "cases": cases}


def _load(out: Path, prefix: str) -> dict[str, Any] | None:
    found = sorted(out.glob(f"{prefix}*.json"))
    return json.loads(found[0].read_text()) if found else None


def headline(out: Path) -> dict[str, Any]:
    """The figures the GPU issue asks for, from whichever benchmark JSONs exist in ``out``."""
    figures: dict[str, Any] = {}
    kernels = _load(out, "kernels_")
    if kernels:
        def row(shape: list[int], variant: str) -> dict | None:
            return next((r for r in kernels["rows"] if r["shape"] == shape and r["op"] == "l1+products"
                         and r["variant"] == variant), None)

        fused, eager = row([6, 3, 128, 128], "fused"), row([6, 3, 128, 128], "eager reference")
        if fused and eager:
            figures["triton_loss_speedup_6x3x128x128"] = eager["median_ms"] / fused["median_ms"]
        big = row([16, 3, 512, 512], "fused")
        if big:
            figures["triton_loss_fraction_of_copy_16x3x512x512"] = big["fraction_of_copy"]
    speed = _load(out, "adapt_speed_")
    if speed:
        for r in speed["rows"]:
            figures[f"adapt_step_s[{r['model']} {r['variant']}]"] = r["median_step_s"]
            figures[f"adapt_speedup_vs_eager[{r['model']} {r['variant']}]"] = r["speedup_vs_eager"]
            if r.get("r_loss_fraction") is not None:
                figures[f"e_r_loss_share[{r['model']} {r['variant']}]"] = r["r_loss_fraction"]
        for run in speed.get("runs", []):
            figures[f"adapt_run_s[{run['model']} {run['iterations']} it, amp {run['amp']}]"] = run["seconds"]
    recon = _load(out, "reconstructor_")
    if recon:
        for label, shape in recon["shapes"].items():
            for name, value in shape.items():
                if isinstance(value, (int, float)):
                    figures[f"reconstructor[{label}] {name}"] = value
    quality = _load(out, "quality_")
    if quality:
        for name, result in quality["results"].items():
            for metric in ("psnr", "lpips"):
                figures[f"quality[{name}] {metric} change"] = result["summary"][metric]["gain"]
    deploy = _load(out, "deploy_")
    if deploy:
        for r in deploy["rows"]:
            if "median_s" in r:
                figures[f"deploy[{r['model']} {r['size']}px {r['backend']}] s"] = r["median_s"]
    return figures


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# GPU suite: {summary['device']}", "", f"torch {summary['torch']}", "", "| step | status | s |",
             "|---|---|---|"]
    lines += [f"| {s['step']} | {s['status']} (rc {s['rc']}) | {s['seconds']} |" for s in summary["steps"]]
    tests = summary["tests"]
    if tests:
        lines += ["", "Tests: " + ", ".join(f"{v} {k}" for k, v in tests["counts"].items()), "",
                  "| test | outcome |", "|---|---|"]
        lines += [f"| `{c['test']}` | {c['outcome']} |" for c in tests["cases"]]
    lines += ["", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in summary["figures"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    import torch

    out = Path(sys.argv[1])
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device (dry run)"
    summary = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda, "steps": _steps(out),
               "tests": _tests(out), "figures": headline(out),
               "files": sorted(p.name for p in out.glob("*.json") if p.name != "summary.json")}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    failed = [s["step"] for s in summary["steps"] if s["status"] == "failed"]
    if failed:
        print(f"failed steps: {', '.join(failed)} (their logs are in {out})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
