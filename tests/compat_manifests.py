"""The checkpoint manifests (compat/) and random state dicts built from them, shared by the tests.

The manifests of real checkpoints (keys, shapes, dtypes, file wrapping) live outside the repository
(../shared/compat, see SOURCES.md); tests that need them look in $FACEXPLAIN_COMPAT, ../shared/compat
and ./shared/compat, and skip when none exists.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from explainer.generation.stylegan2 import fir_kernel

DTYPES = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64}


def compat_dir() -> Path:
    # ../shared beside the checkout is where developers and CI have it.
    candidates = [os.environ.get("FACEXPLAIN_COMPAT", ""), Path(__file__).resolve().parents[2] / "shared" / "compat",
                  Path(__file__).parents[1] / "shared" / "compat"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "far_recon_notes.json").is_file():
            return Path(candidate)
    pytest.skip("checkpoint manifests (compat/) not available")


def manifest(name: str) -> dict:
    return json.loads((compat_dir() / name).read_text())


def layout_manifests() -> list[str]:
    """Every manifest that describes a state dict or a checkpoint file (not the notes / diff files);
    [] when compat/ is absent (the parametrised tests then have nothing to run)."""
    try:
        directory = compat_dir()
    except pytest.skip.Exception:
        return []
    names = []
    for path in sorted(directory.glob("*.json")):
        spec = json.loads(path.read_text())
        if "state_dict" in spec or "top_level_keys_list" in spec:
            names.append(path.name)
    return names


def _kernel_value(key: str) -> torch.Tensor:
    # rosinality stores the FIR kernels: the discriminator's downsampling blur sums to 1, the
    # generator's upsampling kernels to 4 (upsample factor squared)
    return fir_kernel() if key.endswith((".conv2.0.kernel", ".skip.0.kernel")) else fir_kernel() * 4


def random_state(entries: list, seed: int = 0, shared_storage: bool = False) -> dict[str, torch.Tensor]:
    """Random tensors with a manifest's keys, shapes and dtypes: FIR kernels at their constant value,
    BatchNorm variances positive, counters int64.

    shared_storage: every float tensor is a view of one random buffer (as large as the largest
    tensor), so torch.save writes that buffer once: files of big networks stay small and fast in
    tests whose point is keys and shapes, not values.
    """
    generator = torch.Generator().manual_seed(seed)
    floats = [tuple(shape) for key, shape, dtype in entries if DTYPES.get(dtype, torch.float32).is_floating_point]
    pool = torch.randn(max((math.prod(s) for s in floats), default=1), generator=generator) if shared_storage else None
    state = {}
    for key, shape, dtype in entries:
        dtype = DTYPES.get(dtype, torch.float32)
        if not dtype.is_floating_point:
            state[key] = torch.zeros(shape, dtype=dtype)
        elif key.endswith(".kernel"):
            state[key] = _kernel_value(key)
        elif pool is not None:
            state[key] = pool[:math.prod(shape)].view(shape)
        else:
            state[key] = torch.randn(shape, generator=generator).to(dtype)
        if key.endswith("running_var"):
            state[key] = state[key].abs() + 0.5
    return state


def key_shapes(state) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(value.shape)) for key, value in state.items()]
