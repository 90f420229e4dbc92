"""``adapt``'s report: ``report.json`` (everything), ``report.md`` (settings, runs, the decision and why) and, where
the no-HR signal ran, ``signal.png``: loss and signal against steps per candidate, the chosen step marked. A user
who has no HR judges adaptation by this page, so the decision is stated first, in words, then shown.

Per-image runs also leave one record each, ``runs/<name>.json`` (``RunRecords``): written after the image's
weights and images, so that it exists means the image is complete. A relaunch (a killed job, ``torchrun
--max-restarts``) skips the images recorded with the same job settings, and the report is merged from the records,
whichever process or launch wrote them."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lway_engine.adaptation.loop import AdaptLog
from lway_engine.adaptation.select import Candidate, Decision
from lway_engine.adaptation.signal import SignalPoint
from lway_engine.atomic import atomic_write


def report_data(settings: dict, runs: dict[str, AdaptLog], decisions: dict[str, Decision], seconds: float) -> dict:
    """Everything ``report.json`` holds, as plain data (what ``Adapter`` results carry too)."""
    return {"settings": settings, "seconds": seconds, "runs": {k: asdict(v) for k, v in runs.items()},
            "decisions": {k: _decision_data(d) for k, d in decisions.items()}}


def _decision_data(decision: Decision) -> dict:
    return {**asdict(decision), "runs": {c: asdict(log) for c, log in (decision.runs or {}).items()}}


def _log_from(data: dict) -> AdaptLog:
    return AdaptLog(**{**data, "signal": [SignalPoint(**point) for point in data["signal"]]})


def _decision_from(data: dict) -> Decision:
    candidate = Candidate(**data["candidate"]) if data["candidate"] else None
    runs = {name: _log_from(log) for name, log in data["runs"].items()} if data["runs"] is not None else None
    return Decision(data["adapted"], data["reason"], candidate, data["step"], runs, data.get("explainability"))


class RunRecords:
    """The per-image records in ``folder``, for the job settings ``job`` (what must match for a record to count)."""

    def __init__(self, folder: Path, job: dict) -> None:
        self.folder = folder
        self.job = json.loads(json.dumps(job, default=str))  # as it reads back from a record (tuples as lists)

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def _read(self, name: str) -> dict | None:
        try:
            return json.loads(self._path(name).read_text())
        except (OSError, ValueError):
            return None

    def complete(self, name: str) -> bool:
        """The image was adapted to the end with these settings (an interrupted or cancelled run is redone)."""
        record = self._read(name)
        return record is not None and record["job"] == self.job and record["run"]["status"] not in (
            "interrupted", "cancelled")

    def write(self, name: str, log: AdaptLog, decision: Decision) -> None:
        """Record a finished image; call it after all of the image's outputs are written."""
        record = {"job": self.job, "run": asdict(log), "decision": _decision_data(decision)}
        atomic_write(self._path(name), lambda tmp: tmp.write_text(json.dumps(record, indent=1, default=str)))

    def load(self, names: list[str]) -> tuple[dict[str, AdaptLog], dict[str, Decision]]:
        """The runs and decisions recorded for ``names`` with these settings, in that order (absent ones left out)."""
        runs, decisions = {}, {}
        for name in names:
            record = self._read(name)
            if record is not None and record["job"] == self.job:
                runs[name], decisions[name] = _log_from(record["run"]), _decision_from(record["decision"])
        return runs, decisions


def _setting(key: str, value: object) -> str:
    """A setting as report.md shows it: no autocast (``amp`` None) reads "fp32", what ``--amp fp32`` asked for."""
    return "fp32" if key == "amp" and value is None else str(value)


def write_report(outdir: Path, settings: dict, runs: dict[str, AdaptLog], decisions: dict[str, Decision],
                 seconds: float) -> None:
    """Write report.json, report.md and (where a signal was scored) signal.png into ``outdir``."""
    report = report_data(settings, runs, decisions, seconds)
    atomic_write(outdir / "report.json", lambda tmp: tmp.write_text(json.dumps(report, indent=1, default=str)))
    lines = ["# LWay adaptation report", ""]
    for name, decision in decisions.items():
        lines.append(f"- **{name}**: {decision.reason}")
    lines += ["", "| setting | value |", "|---|---|", *[f"| {k} | {_setting(k, v)} |" for k, v in settings.items()]]
    lines += ["", "| run | candidate | status | steps | first loss | last loss | best step | signal there | s/step | "
              "note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, decision in decisions.items():
        for candidate, log in (decision.runs or {name: runs[name]}).items():
            lines.append(_row(name, candidate, log))
    plotted = plot_signal(outdir / "signal.png", decisions)
    lines += ["", f"Total time: {seconds:.1f} s. Loss = L1(W*LR_hat, W*LR) + LPIPS-alex(W*LR_hat, W*LR) (+ the "
              "candidate's anchor, texture, detail and cross-scale terms); 'last loss' is the mean of the last 10 "
              "steps. The signal is scored on LR regions never trained on (lower is better, 0 = the unadapted "
              "model): see lway_engine/adaptation/signal.py."]
    if plotted:
        lines += ["", "![loss and signal per candidate](signal.png)"]
    else:  # an earlier run's plot in the same folder would describe another run
        (outdir / "signal.png").unlink(missing_ok=True)
    atomic_write(outdir / "report.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def _row(name: str, candidate: str, log: AdaptLog) -> str:
    first = f"{log.loss[0]:.4f}" if log.loss else "-"
    last = f"{np.mean(log.loss[-10:]):.4f}" if log.loss else "-"
    per_step = f"{np.median(log.step_seconds):.2f}" if log.step_seconds else "-"
    best = log.best
    signal = f"{best.value:+.4f}" if best is not None and math.isfinite(best.value) else "-"
    step = "-" if log.best_step is None else str(log.best_step)
    return (f"| {name} | {candidate} | {log.status} | {len(log.loss)} | {first} | {last} | {step} | {signal} | "
            f"{per_step} | {log.message} |")


def plot_signal(path: Path, decisions: dict[str, Decision]) -> bool:
    """One panel per run: training loss (thin) and held-out signal (markers) per candidate; False if no signal."""
    panels = {name: d for name, d in decisions.items() if d.runs and any(log.signal for log in d.runs.values())}
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 2, figsize=(10, 3.2 * len(panels)), squeeze=False)
    for row, (name, decision) in zip(axes, panels.items()):
        loss_ax, signal_ax = row
        for (candidate, log), colour in zip(decision.runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
            loss_ax.plot(range(1, len(log.loss) + 1), log.loss, color=colour, lw=0.8, label=candidate)
            steps = [p.step for p in log.signal]
            signal_ax.plot(steps, [p.value for p in log.signal], "o-", color=colour, label=candidate)
        signal_ax.axhline(0, color="grey", lw=0.8, ls="--")
        if decision.step is not None:
            signal_ax.axvline(decision.step, color="black", lw=0.8, ls=":", label=f"chosen: step {decision.step}")
        loss_ax.set(title=f"{name}: training loss", xlabel="step")
        signal_ax.set(title=f"{name}: held-out signal ({'adapted' if decision.adapted else 'kept unadapted'})",
                      xlabel="step", ylabel="lower is better; 0 = unadapted")
        loss_ax.legend(fontsize=7)
        signal_ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return True
