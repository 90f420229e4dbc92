"""The evidence behind selection's area-scaled margin (``select.min_gain``), and whether a fresh sample could test it.

    .venv/bin/python bench/margin_evidence.py          # ~3 min on two threads

Why: ``MIN_GAIN`` (0.1) was measured on runs that were mostly City100's, whose per-image strip holds two 48-px
tiles; a 64-px family LR holds out one 16 x 48 tile, a sixth of that area, and ``min_gain`` asks 0.245 there. Two
readings, both written to bench/results/margin_evidence_<device>.json:
- **bands**: over every recorded per-image sample of ``bench/signal_check.py`` (``signal_summary.SAMPLES``, the
  128-px family sample left out), the forced runs whose best signal point lies in each band, counted worse (> +0.002
  LPIPS), better (< -0.002) or level, for 64-px family LRs and for City100 apart. Forced past the gate, so these
  describe the signal, not what ``adapt`` keeps (``bench/gate_redecide.py`` re-makes those decisions).
- **fresh sets**: the per-image gate opens only where an image's *and* its set's lower bounds reach the threshold,
  so a fresh test of the margin on unseen types needs a set of them that reads that high. The gate's reading of the
  unused evaluation images under the two unseen types: Set14 and Sun_Hays80's files 45-80 (41-44 ran in the
  texture-loss sample), 64-px LRs.
"""

from __future__ import annotations

import json
import math
import platform

import torch
from gate_setup import THRESHOLD, gate_setup
from quality import family_set
from results_dir import results_dir
from signal_check import WORSE, load_runs, rescore
from signal_summary import RECORDED, SAMPLES

from lway_engine.adaptation.gate import explainability
from lway_engine.adaptation.loss import LWayLoss
from lway_engine.degradations import UNSEEN_FAMILIES
from lway_engine.metrics.lpips_net import LPIPS

BANDS = ((-0.245, -0.1), (-0.3, -0.245), (-math.inf, -0.3))


def bands() -> dict:
    """Per band of the best point's signal: worse / better / level runs, 64-px family LRs and City100 apart."""
    counts = {f"({low:g}, {high:g}]": {group: {"worse": 0, "better": 0, "level": 0} for group in ("family", "city100")}
              for low, high in BANDS}
    for stem, _ in SAMPLES:
        path = RECORDED / f"{stem}_{platform.machine()}_CPU.json"
        if not path.exists():
            continue
        for run in load_runs(path):
            if run["hr_crop"] != 256:
                continue
            rescore(run)
            best = min(run["points"][1:], key=lambda p: p["value"] if math.isfinite(p["value"]) else math.inf)
            change = best["lpips_change"]
            for (low, high), key in zip(BANDS, counts):
                if low < best["value"] <= high:
                    kind = "worse" if change > WORSE else "better" if change < -WORSE else "level"
                    counts[key]["city100" if run["set"] == "city100" else "family"][kind] += 1
    return counts


def fresh_sets(model, reconstruction) -> dict:
    """The gate's set reading (value, lower bound, whether it opens) of each unused set under each unseen type."""
    loss, readings = LWayLoss(LPIPS("alex")), {}
    for hr_set, limit, skip in (("Set14", 0, 0), ("Sun_Hays80", 36, 4)):
        for family in UNSEEN_FAMILIES:
            items = family_set(hr_set, family, limit, 256, skip)
            lrs = [torch.from_numpy(lr.transpose(2, 0, 1).copy()) for _, lr, _ in items]
            reading = explainability(model, reconstruction, lrs, loss)
            readings[f"{hr_set} {family}"] = {"images": len(items), "value": reading.value,
                                              "bound": reading.lower(), "opens": reading.lower() >= THRESHOLD}
    return readings


def main() -> None:
    _, model, reconstruction = gate_setup(__doc__)
    counts, readings = bands(), fresh_sets(model, reconstruction)
    for band, groups in counts.items():
        print(f"best point in {band}: " + "; ".join(f"{group} {c['worse']} worse, {c['better']} better, {c['level']} "
                                                    "level" for group, c in groups.items()))
    for name, r in readings.items():
        print(f"{name}: gate {r['value']:.2f}, bound {r['bound']:.2f} over {r['images']} images: "
              + ("opens" if r["opens"] else "shut"))
    device = f"{platform.machine()}_CPU"
    out = results_dir() / f"margin_evidence_{device}.json"
    out.write_text(json.dumps({"device": device, "threshold": THRESHOLD, "bands": counts, "fresh_sets": readings},
                              indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
