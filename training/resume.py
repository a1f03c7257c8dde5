"""Resumable training checkpoints and the stats log, the same for every trainer.

Checkpoints are plain dicts of state dicts, numbers and strings, nothing pickled.

Every file here loads with `torch.load(path, weights_only=True)`: configs are stored as
`dataclasses.asdict`, never as objects (rosinality pickled an argparse.Namespace, which weights-only
loading refuses). Writes go to a temporary file first and are renamed into place, so a job killed
mid-write (a pre-empted node) leaves the previous checkpoint intact.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import torch

from explainer.core.errors import FacexplainError

CHECKPOINT_NAME = "checkpoint.pt"
STATS_NAME = "stats.jsonl"  # one JSON record per logged step, every trainer


class ResumeError(FacexplainError, ValueError):
    """A checkpoint to resume from does not fit the run."""


def save_checkpoint(path: Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by save_checkpoint, on the CPU, without unpickling any code."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "step" not in checkpoint:
        raise ResumeError(f"{path}: not a facexplain training checkpoint (no 'step')")
    return checkpoint


def latest(out_dir: Path, resume: bool) -> dict | None:
    """The checkpoint to continue from: OUT/checkpoint.pt when `resume` and it exists."""
    path = Path(out_dir) / CHECKPOINT_NAME
    return load_checkpoint(path) if resume and path.is_file() else None


def check_same_architecture(saved: dict, current: dict, keys: tuple[str, ...], path: str) -> None:
    """Refuse to resume when the fields that shape the networks changed (the rest may change)."""
    changed = {k: (saved.get(k), current.get(k)) for k in keys if saved.get(k) != current.get(k)}
    if changed:
        details = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in changed.items())
        raise ResumeError(f"cannot resume from {path}: the networks differ ({details}); use another --out "
                          f"or --resume false")


def resume(out_dir: Path, config, architecture_fields: tuple[str, ...],
           restore: Mapping[str, Callable[[object], object]], log, is_main: bool) -> dict | None:
    """Continue from OUT/checkpoint.pt when `config.resume` and it exists: refuse another architecture,
    hand each saved entry to its `restore` callable (e.g. {"g": generator.load_state_dict}), and return
    the checkpoint (for its "step" and anything else the trainer keeps); None for a fresh run."""
    saved = latest(out_dir, config.resume)
    if saved is None:
        return None
    path = Path(out_dir) / CHECKPOINT_NAME
    check_same_architecture(saved["config"], dataclasses.asdict(config), architecture_fields, str(path))
    for key, load in restore.items():
        load(saved[key])
    if is_main:
        log(f"resumed from {path} at step {int(saved['step'])}")
    return saved


def open_stats(out_dir: Path, resumed: bool, is_main: bool) -> IO[str] | None:
    """OUT/stats.jsonl on rank 0 (None elsewhere): appended to when resuming, started afresh otherwise."""
    return open(Path(out_dir) / STATS_NAME, "a" if resumed else "w") if is_main else None
