"""``lway-engine evaluate``: match SR outputs to references in benchmark layouts, score them, report."""

from lway_engine.evaluation.layouts import LAYOUTS, Pair, PairingError, match_pairs, references
from lway_engine.evaluation.scoring import Evaluation, SizeMismatchError, evaluate_pairs

__all__ = ["LAYOUTS", "Evaluation", "Pair", "PairingError", "SizeMismatchError", "evaluate_pairs", "match_pairs",
           "references"]
