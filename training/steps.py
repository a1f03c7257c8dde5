"""Deterministic randomness and data order per training step, shared by the trainers.

Every random draw of step s on rank r comes from a generator seeded by (seed, s, r), and the data
order from DistributedSampler's (seed, epoch): a resumed run continues exactly where the saved one
stopped, without storing any random-number state in the checkpoint.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from explainer.core.errors import FacexplainError
from training.distributed import Distributed


def seed_step(seed: int, step: int, rank: int) -> None:
    """Every draw of step `step` on `rank` (z, noise maps, flips, crossovers) from its own seed."""
    torch.manual_seed(hash((seed, step, rank)) & 0xFFFF_FFFF)


def real_batches(dataset: Dataset, run: Distributed, start_step: int, batch: int, seed: int,
                 workers: int) -> Iterator[torch.Tensor]:
    """Endless batches of this rank's share of the data, epoch after epoch, starting where step
    `start_step` would be (batches of earlier steps are skipped by index, without loading them)."""
    sampler = DistributedSampler(dataset, num_replicas=run.world_size, rank=run.rank, shuffle=True,
                                 seed=seed, drop_last=True)
    per_epoch = len(sampler) // batch
    if per_epoch == 0:
        raise FacexplainError(f"{len(dataset)} images cannot fill one batch of {batch} on each of "
                              f"{run.world_size} process(es)")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        indices = list(sampler)[skip * batch:]
        # its own generator: a DataLoader otherwise draws its worker seed from the global RNG when its
        # iterator starts, which would shift every later draw of a resumed run
        loader = DataLoader(dataset, batch_size=batch, sampler=indices, drop_last=True, num_workers=workers,
                            pin_memory=run.device.type == "cuda",
                            generator=torch.Generator().manual_seed(hash((seed, epoch, run.rank)) & 0xFFFF_FFFF))
        yield from loader
        epoch, skip = epoch + 1, 0
