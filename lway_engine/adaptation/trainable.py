"""Which parameters of the SR model adaptation updates.

The paper trains about 65% of the parameters. We take them from the output end of the network (the reconstruction
and upsampling layers, then the deepest body blocks), where a change of output statistics is cheapest to express
and the features the early layers extract stay as pretrained.
"""

from __future__ import annotations

from fnmatch import fnmatch

from torch import nn


def select_trainable(module: nn.Module, fraction: float | None = 0.65, patterns: list[str] | None = None) -> list[str]:
    """Names of the parameters to train: whole tensors from the output end until ``fraction`` of all parameters,
    or those whose names match any glob in ``patterns``. Sets requires_grad accordingly and returns the names."""
    named = list(module.named_parameters())
    if patterns:
        chosen = {name for name, _ in named if any(fnmatch(name, p) for p in patterns)}
        if not chosen:
            raise ValueError(f"no parameter matches {patterns}; names look like {[n for n, _ in named[:3]]}")
    else:
        if fraction is None or not 0 < fraction <= 1:
            raise ValueError(f"trainable fraction must be in (0, 1], got {fraction}")
        total = sum(p.numel() for _, p in named)
        chosen, count = set(), 0
        for name, p in reversed(named):
            if count >= fraction * total:
                break
            chosen.add(name)
            count += p.numel()
    for name, p in named:
        p.requires_grad_(name in chosen)
    return [name for name, _ in named if name in chosen]
