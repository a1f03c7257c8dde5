"""torchrun / DDP plumbing shared by the trainers: one process per device, ranks from the environment.

`torchrun --nproc_per_node=N -m training decoder ...` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR
and MASTER_PORT; a plain `python -m training ...` sets none of them and runs as a single process.
The backend follows the device: NCCL between GPUs, gloo between CPU processes (what the tests use).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int  # global rank
    local_rank: int  # rank on this machine: selects the GPU
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, samples and writes checkpoints; every rank trains."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Distributed:
    """Join the process group torchrun described (if any) and pick this rank's device.

    device: "auto" (CUDA when available, else CPU), "cpu" or "cuda".
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=rank, world_size=world_size)
    return Distributed(rank, local_rank, world_size, torch_device)


def teardown(run: Distributed) -> None:
    if run.enabled and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str = "auto"):
    """setup() on entry, teardown() on exit however the run ends: one process group per training run."""
    run = setup(device)
    try:
        yield run
    finally:
        teardown(run)


def mean_over_ranks(run: Distributed, values: dict[str, float]) -> dict[str, float]:
    """The mean of each logged number over all ranks (every rank must call it, in step)."""
    if not run.enabled or not values:
        return values
    names = sorted(values)
    packed = torch.tensor([float(values[n]) for n in names], dtype=torch.float64, device=run.device)
    dist.all_reduce(packed)
    return {n: v / run.world_size for n, v in zip(names, packed.tolist())}


def barrier(run: Distributed) -> None:
    if run.enabled:
        dist.barrier()
