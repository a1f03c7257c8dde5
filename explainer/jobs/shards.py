"""Work split over processes under torchrun (the engine the trainers use), gathered on every rank.

    torchrun --nproc_per_node=2 -m explainer.cli analyze --pack P --data DIR --json out.json
    torchrun --nnodes=4 --node_rank=K --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
        -m explainer.cli analyze ...

torchrun sets RANK and WORLD_SIZE; a plain process has neither and is a world of one. Work comes in
numbered units (chunks of photos); unit k goes to rank k mod world size, and every rank processes a unit
the same way whichever rank it is, so gathering the units in order gives what one process computes.
Processes talk over gloo (CPU), whatever devices they use.
"""
from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0 reports progress, computes the measures and writes the files."""
    return rank() == 0


def join() -> None:
    """Join torchrun's process group, once per process (a no-op in a single process). The group stays
    until the process exits: gloo cannot rejoin a group it has left, so a second analysis in the same
    process (a warm-up, then the run) must find it still there."""
    if world_size() > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank(), world_size=world_size())
        atexit.register(_leave)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mine(n_units: int) -> list[int]:
    """The units this rank processes: k with k mod world == rank."""
    return list(range(rank(), n_units, world_size()))


def map_units(units: Sequence, work: Callable[[int, object], T]) -> list[T]:
    """work(k, units[k]) for this rank's units, then every rank's results gathered in unit order
    (on every rank). In a single process: work over all units, in order."""
    join()
    results = {k: work(k, units[k]) for k in mine(len(units))}
    if world_size() > 1:
        gathered: list[dict[int, T] | None] = [None] * world_size()
        dist.all_gather_object(gathered, results)
        results = {k: value for part in gathered for k, value in part.items()}
    return [results[k] for k in range(len(units))]
