"""Decoder banks: decoder samples drawn from a fixed seed, with their F-embeddings cached on disk.

`bench recover` searches one for its nearest-decoder-sample baseline; the recovery rule may start
refinement from the nearest sample of one (explainer.generation.recoverer.StartBank).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
from tqdm import tqdm

from explainer.assets.store import home
from explainer.generation.base import Decoder
from explainer.generation.crop import crop_to
from explainer.generation.recoverer import StartBank
from explainer.recognition.base import Recognizer


def embed_decoder_images(recognizer: Recognizer, decoder: Decoder, images: torch.Tensor,
                         batch_size: int = 64) -> torch.Tensor:
    """F-embeddings of decoder-frame images through the decoder's fixed crop to F's frame."""
    chunks = [recognizer(crop_to(images[k:k + batch_size], decoder.templates, recognizer.crop))
              for k in range(0, len(images), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, recognizer.embedding_dim)


def decoder_bank(pack_name: str, recognizer: Recognizer, decoder: Decoder, n: int, seed: int,
                 cache_dir: Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """`n` decoder latents drawn with torch seed `seed` and their F-embeddings (cached on disk)."""
    latents = decoder.sample_latents(n, torch.Generator().manual_seed(seed))
    path = cache_dir / f"recover-bank-{pack_name}-n{n}-seed{seed}.pt"
    # Guard against a bank of another recognizer / decoder / latent draw under the same name.
    fingerprint = hashlib.sha256(latents.numpy().tobytes()).hexdigest()[:16]
    meta = {"recognizer": recognizer.name, "decoder": decoder.name, "latents_sha256": fingerprint}
    if hasattr(recognizer, "weights_sha256"):  # a user's recognizer: a pack made again on other weights
        meta["weights"] = sorted(recognizer.weights_sha256.values())
    if path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if cached.get("meta") == meta and cached["embeddings"].shape == (n, recognizer.embedding_dim):
            return latents, cached["embeddings"], {"cached": True, "seconds": 0.0, "path": str(path)}
    start = time.perf_counter()
    chunks = []
    with torch.inference_mode():
        for k in tqdm(range(0, n, 64), desc="decoder bank", unit="batch", leave=False, disable=None):
            chunks.append(embed_decoder_images(recognizer, decoder, decoder(latents[k:k + 64])))
    embeddings = torch.cat(chunks)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save({"embeddings": embeddings, "meta": meta}, partial)
    partial.rename(path)
    return latents, embeddings, {"cached": False, "seconds": seconds, "path": str(path)}


def nearest_in_bank(recognizer: Recognizer, targets: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Index [N] of the bank embedding nearest to each target by F's metric."""
    picks = []
    for target in targets:
        scores = recognizer.similarity(target[None], bank)
        picks.append(scores.argmax() if recognizer.metric.higher_is_closer else scores.argmin())
    return torch.stack(picks)


# The bank refinement may start from (RefineSettings.start == "nearest"): a seed no other bank uses (training
# and the bench's nearest-sample bank: 0; the bench's random faces: 1; held-out decoder samples: 7).
START_BANK_SIZE = 20000
START_BANK_SEED = 2


def start_bank(pack) -> StartBank:
    """The pack's start bank, its embeddings cached under $FACEXPLAIN_HOME/cache (built on first use)."""
    latents, embeddings, _ = decoder_bank(pack.name, pack.recognizer, pack.decoder, START_BANK_SIZE, START_BANK_SEED,
                                          home() / "cache")
    return StartBank(latents, embeddings)
