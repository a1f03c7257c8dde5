"""The one reader of checkpoint files users bring: safe loading, wrappers, DataParallel prefixes, strict loads.

Every loader of outside weights (StyleGAN2 G and D, the guide encoder, the paper's files, and
`explainer.packs.checkpoints.identify`) reads through here, so a file is unpickled one way only: with
torch.load(weights_only=True), where no pickled code runs. Low in the tree on purpose: it imports
torch and explainer.core.errors, nothing of the models.
"""
from __future__ import annotations

import argparse
import pickle
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from explainer.core.errors import FacexplainError

MODULE_PREFIX = "module."  # what DataParallel / DistributedDataParallel put before every key


class CheckpointError(FacexplainError, ValueError):
    """A checkpoint could not be read or does not fit the model it was meant for."""


def read_checkpoint(path: str | Path) -> object:
    """torch.load with weights_only=True (no pickled code runs), on the CPU.

    rosinality's train.py pickles its argparse.Namespace under "args" since 2020-07; we allow exactly
    that class in torch's weights-only unpickler. Unpickling a Namespace only creates the object and
    sets attributes from a dict (it defines no __setstate__/__reduce__ logic), so no code runs; any
    other class is still refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            # mmap: a training checkpoint also holds D and both optimisers (~4x g_ema); only the
            # tensors we copy are read. Files older than torch 1.6's zip format cannot be mapped.
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to unpickle: it holds Python objects other than tensors, containers and "
            f"argparse.Namespace, and facexplain never executes pickled code. If you trust the file, "
            f"re-save only its generator weights, e.g. torch.save({{'g_ema': torch.load({str(path)!r}, "
            f"weights_only=False)['g_ema']}}, 'g_ema.pt'), and load that. Details: {err}") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({err})") from None


def read_if_path(path_or_object: str | Path | object) -> tuple[object, str]:
    """(checkpoint, source): a path is read with read_checkpoint, anything else is taken as loaded."""
    if isinstance(path_or_object, (str, Path)):
        return read_checkpoint(path_or_object), str(path_or_object)
    return path_or_object, "state dict"


def is_state_dict(obj: object) -> bool:
    """A non-empty dict of str -> tensor."""
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def unwrap(checkpoint: object, wrappers: Sequence[str], source: str,
           accept: Callable[[object], bool] = lambda value: isinstance(value, Mapping)) -> tuple[object, str, str | None]:
    """(inner, its source, the wrapper key) for the first of `wrappers` whose value `accept`s, e.g. the
    "g_ema" of a rosinality checkpoint or the "state_dict" of a {"state_dict": ...}; else (checkpoint,
    source, None)."""
    if isinstance(checkpoint, Mapping):
        for key in wrappers:
            if key in checkpoint and accept(checkpoint[key]):
                return checkpoint[key], f"{source}['{key}']", key
    return checkpoint, source, None


def strip_module_prefix(state: Mapping) -> tuple[dict, bool]:
    """(state with str keys, whether it was prefixed): DataParallel's `module.` is removed when every key
    carries it (a model may have a submodule of its own called `module`; then only some keys do)."""
    keys = [str(k) for k in state]
    prefixed = bool(keys) and all(k.startswith(MODULE_PREFIX) for k in keys)
    if prefixed:
        return {str(k)[len(MODULE_PREFIX):]: v for k, v in state.items()}, True
    return {str(k): v for k, v in state.items()}, False


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """module.load_state_dict(state, strict=True), with an error that lists what does not fit."""
    expected = module.state_dict()
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{source}: entries that are not tensors: {not_tensors[:8]}")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        lines = [f"{source} does not fit {getattr(module, 'name', type(module).__name__)}:"]
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                more = f" ... and {len(keys) - 20} more" if len(keys) > 20 else ""
                lines.append(f"  {len(keys)} {label}: {', '.join(keys[:20])}{more}")
        if missing and all(k.startswith("noises.") for k in missing):
            lines.append("  (the fixed noise maps are missing: checkpoints from rosinality's trainer before "
                         "2020-01-15 lack them; this decoder needs them to be deterministic)")
        raise CheckpointError("\n".join(lines))
    module.load_state_dict(dict(state), strict=True)
