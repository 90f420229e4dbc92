"""Who this process is under torchrun (RANK, WORLD_SIZE, LOCAL_RANK), and which device it computes on."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Topology:
    """This process's place in the job: global ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def single(cls) -> Topology:
        return cls()

    @classmethod
    def from_env(cls) -> Topology:
        """torchrun's variables, or one process where they are absent (a plain run behaves exactly as before)."""
        try:
            rank, world, local = (int(os.environ.get(k, d)) for k, d in
                                  (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")))
        except ValueError as exc:
            raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them): {exc}") \
                from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
        return cls(rank, world, local)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def leader(self) -> bool:
        """Rank 0: the one process that writes shared files (weights, reports, checkpoints) and prints summaries."""
        return self.rank == 0


def device_for(requested: str, topology: Topology) -> str:
    """The torch device this rank uses for ``--device requested``: ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per
    process, as torchrun's ``--nproc-per-node`` counts them); the CPU stays the CPU."""
    if not topology.distributed or not requested.startswith("cuda"):
        return requested
    if requested != "cuda":
        raise ValueError(f"under torchrun each process takes the GPU of its local rank: pass --device cuda, not "
                         f"--device {requested} (limit the GPUs with CUDA_VISIBLE_DEVICES)")
    import torch

    count = torch.cuda.device_count()
    if topology.local_rank >= count:
        raise ValueError(f"local rank {topology.local_rank} has no GPU: this machine shows {count}; launch at most "
                         f"{count} processes per node (--nproc-per-node)")
    return f"cuda:{topology.local_rank}"
