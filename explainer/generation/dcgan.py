"""The DCGAN face decoder (`dcgan-digiface`): z in R^100 ~ N(0, I) -> 64x64 RGB face.

The standard DCGAN generator (Radford et al. 2016): five transposed convolutions 100 -> 512 -> 256 ->
128 -> 64 -> 3 (4x4 kernels; the first from 1x1 to 4x4, then each doubling), batch norm + ReLU between
them and tanh at the end, trained on the synthetic DigiFace-1M faces. Batch norm always uses its running
statistics here, so a face depends only on its own latent (deterministic, batch-independent).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from explainer import assets
from explainer.generation.base import Decoder

Z_DIM = 100
SIZE = 64
_CHANNELS = (Z_DIM, 512, 256, 128, 64, 3)

# Where faces sit in the decoder's 64x64 frame: the mean five points of the faces our ordinary photo
# pipeline (explainer.faces.find_face) finds in decoder samples enlarged 4x (bicubic), in 64x64 pixel
# centres. Reproduce with `measure_templates(DCGANDecoder(), n=2000, seed=0)`, which found
# 1807 of the 2000 faces (90.3%).
TEMPLATES: dict[str, tuple[tuple[float, float], ...]] = {
    "arcface5": ((21.9271, 28.7704), (41.1784, 28.7315), (31.5226, 40.7731), (24.1112, 50.4097), (39.2659, 50.4245)),
    "dlib5": ((44.6693, 29.7420), (37.1094, 30.1873), (18.4669, 30.0218), (25.9864, 30.3150), (31.4956, 45.3433)),
}
# How canonical the frame is: the std of each point over those faces, (x, y) in pixels. About 2 px
# (a tenth of the 19 px between the eyes; the nose tip 3.5 px across, from head turns): decoder faces
# are not all in one place, so a fixed crop frames any one of them to within a few pixels only.
TEMPLATE_SPREAD: dict[str, tuple[tuple[float, float], ...]] = {
    "arcface5": ((2.03, 2.29), (1.94, 2.30), (3.51, 3.18), (1.94, 3.20), (1.97, 3.18)),
    "dlib5": ((2.64, 2.03), (1.86, 1.77), (2.51, 1.98), (1.77, 1.73), (2.15, 1.88)),
}


def _generator() -> nn.Sequential:
    """DCGAN's netG, laid out so the upstream keys (`main.0.weight`, ...) load strictly."""
    layers: list[nn.Module] = []
    for index, (c_in, c_out) in enumerate(zip(_CHANNELS, _CHANNELS[1:])):
        first, last = index == 0, index == len(_CHANNELS) - 2
        # 1x1 -> 4x4 (stride 1, no padding), then 2x upsampling (stride 2, padding 1): 4, 8, 16, 32, 64.
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 1 if first else 2, 0 if first else 1, bias=False))
        layers += [nn.Tanh()] if last else [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class DCGANDecoder(Decoder):
    """DCGAN generator as a Decoder: latents [B, 1, 100] -> RGB [B, 3, 64, 64] in [0, 1]; frozen."""

    name = "dcgan-digiface"
    latent_shape = (1, Z_DIM)
    size = SIZE
    templates = TEMPLATES

    def __init__(self, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        if state_dict is None:
            checkpoint = torch.load(assets.path("dcgan-digiface"), map_location="cpu", weights_only=True)
            state_dict = checkpoint["netG_state_dict"]
        self.main = _generator()
        # strict: every upstream tensor present, no extras, shapes checked
        self.load_state_dict(dict(state_dict))
        # The prior is N(0, I): its mean is the origin (the transformer's residual starts there).
        self.register_buffer("mean_latent", torch.zeros(1, Z_DIM))
        self.requires_grad_(False)  # a fixed generator; gradients still flow to the latent
        self.eval()

    def train(self, mode: bool = True) -> DCGANDecoder:
        # Always eval: batch statistics would make a face depend on the rest of its batch, and a
        # parent module's .train() (a transformer being trained around us) must not change that.
        return super().train(False)

    def synthesise(self, latent: torch.Tensor) -> torch.Tensor:
        z = latent.reshape(-1, Z_DIM, 1, 1).float()
        images = (self.main(z) + 1.0) / 2.0  # tanh's (-1, 1) -> [0, 1]
        assert images.shape[1:] == (3, SIZE, SIZE), images.shape
        return images

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, 1, Z_DIM, generator=generator)

    def prior_penalty(self, latent: torch.Tensor) -> torch.Tensor:
        """(||z|| - sqrt(100))^2 / 100: N(0, I) samples live on a shell of radius ~10, not near the origin,
        whose face is dark and average; pulling towards the mean made recovered faces dull."""
        return (latent.flatten(1).norm(dim=1) - Z_DIM ** 0.5).pow(2) / Z_DIM


def measure_templates(decoder: Decoder, n: int = 2000, seed: int = 0, upsample: int = 4,
                      batch_size: int = 100) -> dict[str, object]:
    """Five-point templates of `decoder`'s frame, measured with our ordinary landmark pipeline.

    Renders `n` faces from latents drawn with torch seed `seed`, enlarges them `upsample` times (bicubic:
    the HOG detector needs faces of 40+ pixels) and runs explainer.faces.find_face on each. Returns
    {"templates": {scheme: [5, 2] mean}, "std": {scheme: [5, 2] std over faces}, "found": count,
    "n": n}, in decoder pixel centres.
    """
    import cv2

    from explainer.core.errors import FacexplainError
    from explainer.faces import find_face

    generator = torch.Generator().manual_seed(seed)
    points: dict[str, list[np.ndarray]] = {"arcface5": [], "dlib5": []}
    big = decoder.size * upsample
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            latents = decoder.sample_latents(min(batch_size, n - start), generator)
            images = (decoder(latents).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
            for image in images:
                enlarged = cv2.resize(image, (big, big), interpolation=cv2.INTER_CUBIC)
                try:
                    face = find_face(enlarged)
                except FacexplainError:
                    continue
                for scheme in points:
                    # cv2.resize maps pixel centres by x_big = (x + 0.5) * upsample - 0.5
                    points[scheme].append((face.landmarks.scheme(scheme) + 0.5) / upsample - 0.5)
    found = len(points["dlib5"])
    if found == 0:
        raise RuntimeError(f"no face found in {n} samples of {decoder.name}")
    stacked = {scheme: np.stack(p) for scheme, p in points.items()}
    return {"templates": {s: p.mean(0) for s, p in stacked.items()},
            "std": {s: p.std(0) for s, p in stacked.items()}, "found": found, "n": n}
