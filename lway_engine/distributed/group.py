"""torchrun's process group for the length of one command, and the few collectives the commands use.

Every helper is a no-op in a single process, so the commands call them unconditionally. Why these and no more:
per-image jobs need only a gather at the end (each rank works alone in between); whole-set adaptation and
pretraining let DDP average the gradients, and average only the logged loss here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from lway_engine.distributed.topology import Topology, device_for
from lway_engine.hardware.devices import check_device

T = TypeVar("T")

# A sharded job's ranks meet only at its end, after the slowest has finished its images (a relaunch that skips
# done images can leave one rank far more than another): the default 30 min would abort healthy jobs.
WAIT_LIMIT = timedelta(hours=24)


class BackendUnavailable(RuntimeError):
    """This torch build lacks the collective backend the device needs (gloo on the CPU, NCCL on CUDA)."""


def active() -> bool:
    """A process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextmanager
def session(device: str) -> Iterator[tuple[Topology, str]]:
    """This process's ``Topology`` and torch device for ``--device device``; under torchrun it joins the process
    group (gloo on the CPU, NCCL on CUDA, rendezvous from torchrun's MASTER_ADDR/PORT) and leaves it at the end.
    A command's exit status (``typer.Exit``) is an exception: raise it after the block, or the ranks leave apart."""
    check_device(device)
    topology = Topology.from_env()
    device = device_for(device, topology)
    if not topology.distributed or dist.is_initialized():  # one process, or a caller that set up its own group
        yield topology, device
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_available() or not (dist.is_nccl_available() if backend == "nccl" else dist.is_gloo_available()):
        raise BackendUnavailable(f"this PyTorch build has no {backend} backend, which --device {device} needs under "
                                 "torchrun; install a build with it, or run one process without torchrun")
    if backend == "nccl":
        torch.cuda.set_device(device)
    store, rank, world_size = next(dist.rendezvous("env://"))  # torchrun's store; the ranks meet there at start
    # torchrun restarts its workers (--max-restarts) with the same agent store, and the process group's keys are
    # not per attempt: a restarted rank would read the dead ranks' addresses and wait on them. One prefix per attempt.
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = dist.PrefixStore(f"lway-engine/attempt_{attempt}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=WAIT_LIMIT)
    try:
        yield topology, device
    except BaseException:
        dist.destroy_process_group()  # no barrier: the other ranks may never reach one; torchrun stops them
        raise
    # Leave together: a rank that tears its gloo connections down while a peer's are still open can abort that
    # peer ("terminate called without an active exception", SIGABRT), which a loaded CI machine once showed.
    dist.barrier()
    dist.destroy_process_group()


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` over the ranks (every rank gets it); gloo has no AVG, hence SUM / world size."""
    if not active():
        return values
    total = values.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()


def from_rank0(compute: Callable[[], T]) -> T:
    """``compute()`` run on rank 0 only, its result (or the exception it raised) handed to every rank: for work
    that must happen once (sampling frames to shared files) and decisions every rank must take alike."""
    if not active():
        return compute()
    box: list = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = (True, compute())
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            box[0] = (False, exc)
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def gather_lists(items: list[T]) -> list[T]:
    """Every rank's ``items``, concatenated in rank order, on every rank (for one merged report and one exit
    status that all ranks share)."""
    if not active():
        return list(items)
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]
