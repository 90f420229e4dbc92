"""What the gate benchmarks share: the default candidate's threshold, and an SR model (x4plus by default) beside a
checkpoint that has an error model (``gate_truth.py``, ``gate_redecide.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lway_engine.adaptation.run import DEFAULT_RECONSTRUCTOR
from lway_engine.adaptation.select import DEFAULT_CANDIDATES
from lway_engine.models import LoadedModel, load_model
from lway_engine.reconstruction import load_checkpoint

THRESHOLD = max(c.gate for c in DEFAULT_CANDIDATES)  # the default candidate's gate


def gate_setup(description: str, arguments: tuple[tuple[str, dict], ...] = ()
               ) -> tuple[argparse.Namespace, LoadedModel, torch.nn.Module]:
    """Parse ``--reconstructor``, ``--model`` and the script's own ``arguments`` (name, ``add_argument``'s keywords),
    seed, and load both; exit plainly without an error model."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, keywords in arguments:
        parser.add_argument(name, **keywords)
    parser.add_argument("--reconstructor", type=Path, default=Path(DEFAULT_RECONSTRUCTOR))
    parser.add_argument("--model", default="realesrgan-x4plus", help="the SR model S0 (the bundled error model was "
                        "fitted on x4plus's outputs; for another model this measures its extrapolation)")
    args = parser.parse_args()
    torch.manual_seed(0)
    reconstruction = load_checkpoint(args.reconstructor, expect_scale=4)
    if reconstruction.error_model is None:
        raise SystemExit(f"{args.reconstructor} has no error model: run bench/fit_error_model.py on it first")
    return args, load_model(args.model), reconstruction
