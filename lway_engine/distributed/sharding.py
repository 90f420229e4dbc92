"""What each rank works on: its images, its slice of a global batch, its random stream.

The assignment is a pure function of the (sorted) input list and the world size, never of timing or of which
outputs exist, so every rank computes the same split without talking, and a relaunch assigns exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from lway_engine.distributed.topology import Topology

T = TypeVar("T")


def shard(items: Sequence[T], topology: Topology) -> list[T]:
    """Item i goes to rank i % world_size: every item to exactly one rank, counts within one of each other
    (any world size, also one that does not divide the items, or exceeds them: a rank may then get none)."""
    return list(items[topology.rank :: topology.world_size])


def local_slice(batch: int, topology: Topology) -> slice:
    """This rank's part of a global batch of ``batch`` items, or a clear error where it does not divide."""
    if batch % topology.world_size:
        raise ValueError(f"--batch {batch} is the global batch and must divide evenly among the {topology.world_size} "
                         f"processes: pass a multiple of {topology.world_size}")
    size = batch // topology.world_size
    return slice(topology.rank * size, (topology.rank + 1) * size)


def step_rng(seed: int, step: int, topology: Topology) -> np.random.Generator:
    """The random stream of one training step on this rank. One process keeps the key (seed, step) it always had,
    so its runs and their resumes stay bit for bit what they were; under torchrun each rank adds its rank (rank 0
    then draws the one-process stream: NumPy's seeding ignores a trailing zero)."""
    key = [seed, step] if not topology.distributed else [seed, step, topology.rank]
    return np.random.default_rng(key)
