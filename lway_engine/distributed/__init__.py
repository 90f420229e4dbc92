"""Running the commands under ``torchrun`` on many GPUs or machines, with PyTorch's own launcher and collectives.

Without torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK) everything is one process, exactly as before:
``Topology.single()``, no process group, every helper here a no-op. Under torchrun:

- ``topology.py``: who this process is, and the device of its local rank;
- ``group.py``: the process group (gloo on the CPU, NCCL on CUDA) and the few collectives the commands need;
- ``sharding.py``: which images a rank owns, the slice of a global batch, per-rank random streams;
- ``ddp.py``: DistributedDataParallel over a module's trainable subset.
"""

from lway_engine.distributed.ddp import data_parallel
from lway_engine.distributed.group import from_rank0, gather_lists, mean_over_ranks, session
from lway_engine.distributed.sharding import local_slice, shard, step_rng
from lway_engine.distributed.topology import Topology, device_for

__all__ = ["Topology", "data_parallel", "device_for", "from_rank0", "gather_lists", "local_slice",
           "mean_over_ranks", "session", "shard", "step_rng"]
