"""dlib's ResNet-29 face descriptor (`dlib_face_recognition_resnet_model_v1.dat`) as a PyTorch module.

A re-implementation of `anet_type` from dlib's `dnn_face_recognition_ex.cpp`, loaded from dlib's own
file by `dlib_format.read_dlib_resnet`, so attacks can differentiate through it. What dlib does, and
so what this module does:
  - input: a 150x150 RGB chip from `dlib.get_face_chip(img, shape5, 150, 0.25)`, each channel
    (pixel - mean) / 256 with pixels in 0..255 and the means stored in the file;
  - stem: conv 7x7/2 (no padding) -> affine -> relu -> max-pool 3x3/2 (no padding): 150 -> 72 -> 35;
  - 14 residual blocks, each conv 3x3 -> affine -> relu -> conv 3x3 -> affine, added to the shortcut,
    then relu. "affine" is dlib's inference stand-in for batch norm: a per-channel scale and shift.
    A downsampling block has stride 2 and *no padding* in its first conv; its shortcut is a 2x2/2
    average pool of the block input. dlib's add_prev adds tensors of different shapes by zero-filling
    both to the larger one, aligned at channel 0 and at the top-left pixel: that gives the shortcut
    zero extra channels (32 -> 64, ...), and where the pooled shortcut is larger than the block output
    (8 -> 4 vs 3; 4 -> 2 vs 1) the block only touches the top-left of the sum;
  - global average pool, then a 256 -> 128 linear layer without bias. No L2 normalisation: the
    descriptor is the raw fc output, compared by Euclidean distance (same person below 0.6).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from explainer import assets
from explainer.core.geometry import DLIB_MEAN_FACE_5, dlib_chip_template  # noqa: F401 (DLIB_MEAN_FACE_5: old home)
from explainer.recognition.base import CropSpec, Metric, Recognizer, Threshold
from explainer.recognition.dlib_format import CHIP_SIZE, EMBEDDING_DIM, RESNET_BLOCKS, STEM_CHANNELS, read_dlib_resnet

CHIP_PADDING = 0.25  # what dlib's face-recognition pipeline (compute_face_descriptor) uses

# dlib scales inputs by 1/256 after subtracting the mean (input_rgb_image_sized::to_tensor); the
# means themselves are in the file, these are their values, for checking.
INPUT_SCALE = 256.0
DLIB_INPUT_MEAN_RGB = (122.782, 117.001, 104.298)


DLIB_CHIP_150 = CropSpec(size=CHIP_SIZE, scheme="dlib5", method="dlib_chip", padding=CHIP_PADDING,
                         template=dlib_chip_template(CHIP_SIZE, CHIP_PADDING))


class ChannelAffine(nn.Module):
    """dlib's affine_ layer in CONV_MODE: y = x * weight[c] + bias[c] (frozen batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias[:, None, None], x, self.weight[:, None, None])


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's tt::add of unequal NCHW tensors: both zero-filled to the larger shape at the far end."""
    shape = [max(m, n) for m, n in zip(a.shape[1:], b.shape[1:])]

    def grow(x: torch.Tensor) -> torch.Tensor:
        c, h, w = x.shape[1:]
        if (c, h, w) == tuple(shape):
            return x
        return F.pad(x, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return grow(a) + grow(b)


class Stem(nn.Module):
    """conv 7x7/2 without padding -> affine -> relu -> max-pool 3x3/2 without padding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2)
        self.affine = ChannelAffine(STEM_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)


class ResidualBlock(nn.Module):
    """dlib's ares / ares_down: relu(block(x) + shortcut(x)), shapes reconciled as dlib does."""

    def __init__(self, in_channels: int, channels: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        # dlib's con<> pads kernel/2 at stride 1 and not at all at stride 2.
        stride, padding = (2, 0) if downsample else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=padding)
        self.affine1 = ChannelAffine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.affine2 = ChannelAffine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(add_zero_padded(y, shortcut))


class DlibResNet(Recognizer):
    """dlib's 128-D face descriptor, differentiable, on [0, 1] RGB 150x150 dlib chips."""

    name = "dlib-resnet"
    embedding_dim = EMBEDDING_DIM
    crop = DLIB_CHIP_150
    metric = Metric("euclidean")
    upstream_threshold = Threshold(0.6, None, "dlib upstream: same person below 0.6 Euclidean")

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.tensor(DLIB_INPUT_MEAN_RGB, dtype=torch.float32))
        self.stem = Stem()
        blocks, in_channels = [], STEM_CHANNELS
        for channels, downsample in RESNET_BLOCKS:
            blocks.append(ResidualBlock(in_channels, channels, downsample))
            in_channels = channels
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(in_channels, EMBEDDING_DIM, bias=False)

    def normalise(self, crops: torch.Tensor) -> torch.Tensor:
        # dlib: (pixel - mean) / 256 on 0..255 pixels, RGB order, NCHW
        return (crops * 255.0 - self.input_mean[:, None, None]) / INPUT_SCALE

    def embed_normalised(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (3, CHIP_SIZE, CHIP_SIZE), f"expected [B, 3, 150, 150], got {tuple(x.shape)}"
        x = self.stem(x)  # [B, 32, 35, 35]
        for block in self.blocks:
            x = block(x)
        x = x.mean(dim=(2, 3))  # dlib's avg_pool_everything; the final map is 2x2
        return self.fc(x)


def state_dict_from_dat(path: str | Path) -> dict[str, torch.Tensor]:
    """Convert dlib's .dat into a DlibResNet state dict (what the asset fetch saves as a .pt)."""
    arrays = read_dlib_resnet(path)
    return {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in arrays.items()}


def load_dlib_resnet(state_dict_or_pt_path: dict[str, torch.Tensor] | str | Path | None = None) -> DlibResNet:
    """A DlibResNet in eval mode with frozen weights.

    `None` converts the fetched `dlib-resnet` asset; a path is a .pt saved from `state_dict_from_dat`
    (or dlib's .dat itself); a dict is such a state dict.
    """
    if state_dict_or_pt_path is None:
        state = state_dict_from_dat(assets.path("dlib-resnet"))
    elif isinstance(state_dict_or_pt_path, (str, Path)):
        path = Path(state_dict_or_pt_path)
        if path.suffix == ".dat":
            state = state_dict_from_dat(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        state = state_dict_or_pt_path
    model = DlibResNet()
    model.load_state_dict(state)  # strict: every tensor present, no extras, shapes checked
    model.eval()
    model.requires_grad_(False)  # a fixed reference model; gradients still flow to the input
    return model
