"""Train the auxiliary guide encoder E (image -> W+ latent of a trained decoder G), for L_guide.

E is explainer's GuideEncoder (the paper's pspEncoderv2 layout: ResNet-50 + FPN, one head per W+
code), centred on G's mean latent. Each step mixes two kinds of faces:
  decoder samples  G(w) for w from G's prior: the exact latent is known, so E learns it directly
                   (latent MSE) and through the image (L1 between G(E(x)) and x);
  real photos      from an image folder in G's frame (if given): image L1 only, no latent exists.
G stays frozen; gradients reach E through it. Runs as one process or under torchrun (DDP), resumes
from OUT/checkpoint.pt, and that same file loads with
`explainer.generation.guide_encoder.load_guide_encoder` (the encoder sits under "state_dict").
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from explainer.generation.guide_encoder import GuideEncoder
from training import distributed
from training.configs import EncoderTrainConfig
from training.data import ImageFolder
from training.decoders import resolve_decoder
from training.resume import CHECKPOINT_NAME, open_stats, resume, save_checkpoint
from training.steps import real_batches, seed_step

ARCHITECTURE_FIELDS = ("decoder", "width", "blocks", "input_size")


def codes_per_level(n_codes: int) -> tuple[int, int, int]:
    """W+ codes read from the coarse, middle and fine FPN maps: the paper's (3, 4, 7) at 14 codes,
    (3, 4, 5) at 12; thirds for the tiny generators."""
    if n_codes >= 9:
        return 3, 4, n_codes - 7
    third = n_codes // 3
    return third, third, n_codes - 2 * third


def build_encoder(config: EncoderTrainConfig, latent_shape: tuple[int, int], mean_latent: torch.Tensor) -> GuideEncoder:
    n_codes, code_dim = latent_shape
    return GuideEncoder(codes_per_level(n_codes), code_dim, config.width, tuple(config.blocks), config.input_size,
                        mean_latent=mean_latent)


def train(config: EncoderTrainConfig, out_dir: Path, log=print,
          inspect: Callable[[dict[str, nn.Module]], None] | None = None) -> Path:
    """Train (or continue) into `out_dir`; returns OUT/checkpoint.pt. `inspect` as in train_decoder."""
    with distributed.session(config.device) as run:
        return _train(config, Path(out_dir), run, log, inspect)


def _train(config: EncoderTrainConfig, out_dir: Path, run: distributed.Distributed, log, inspect) -> Path:
    device = run.device
    amp = config.amp and device.type == "cuda"
    decoder = resolve_decoder(config.decoder).to(device)
    n_real = round(config.batch * config.real_fraction) if config.data else 0
    n_synthetic = config.batch - n_real
    if n_synthetic < 1:
        raise ValueError(f"real_fraction {config.real_fraction} leaves no decoder samples in a batch of {config.batch}")

    torch.manual_seed(config.seed)
    encoder = build_encoder(config, decoder.latent_shape, decoder.mean_latent).to(device).train()
    optimiser = torch.optim.Adam(encoder.parameters(), lr=config.lr)
    saved = resume(out_dir, config, ARCHITECTURE_FIELDS, {
        "state_dict": encoder.load_state_dict, "optimizer": optimiser.load_state_dict}, log, run.is_main)
    start_step = 0 if saved is None else int(saved["step"])
    model = encoder
    if run.enabled:  # BatchNorm buffers follow rank 0 (DDP broadcasts them each forward)
        model = DistributedDataParallel(encoder, device_ids=[run.local_rank] if device.type == "cuda" else None)

    batches = None
    if n_real:
        dataset = ImageFolder(Path(config.data), decoder.size)
        batches = real_batches(dataset, run, start_step, n_real, config.seed, config.workers)
    if run.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    stats_file = open_stats(out_dir, saved is not None, run.is_main)
    started = time.perf_counter()
    progress = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, unit="step",
                    desc=f"encoder {config.name}", disable=None if run.is_main else True)
    try:
        for step in progress:
            seed_step(config.seed, step, run.rank)
            with torch.no_grad():
                exact = decoder.sample_latents(n_synthetic, truncation=config.truncation).to(device)
                images = decoder(exact)
            if batches is not None:
                images = torch.cat([images, next(batches).to(device, non_blocking=True)])
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                latents = model(images).float()
            assert latents.shape == (config.batch, *decoder.latent_shape), latents.shape
            latent_loss = (latents[:n_synthetic] - exact).pow(2).mean()
            image_loss = (decoder(latents) - images).abs().mean()
            loss = config.latent_weight * latent_loss + config.image_weight * image_loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            done = step + 1

            if done % config.log_every == 0 or done == config.steps:
                record = distributed.mean_over_ranks(run, {"loss": loss.item(), "latent_mse": latent_loss.item(),
                                                           "image_l1": image_loss.item()})
                if run.is_main:
                    seconds = time.perf_counter() - started
                    record = {"step": done, **{k: round(v, 6) for k, v in sorted(record.items())},
                              "seconds": round(seconds, 2), "steps_per_s": round((done - start_step) / seconds, 4)}
                    stats_file.write(json.dumps(record) + "\n")
                    stats_file.flush()
                    progress.set_postfix(loss=f"{record['loss']:.4f}")
            if run.is_main and (done % config.checkpoint_every == 0 or done == config.steps):
                save_checkpoint(out_dir / CHECKPOINT_NAME, {
                    "state_dict": encoder.state_dict(), "optimizer": optimiser.state_dict(), "step": done,
                    "config": dataclasses.asdict(config), "decoder_latent_shape": list(decoder.latent_shape),
                    "world_size": run.world_size, "torch": str(torch.__version__)})
    finally:
        if stats_file is not None:
            stats_file.close()
    if inspect is not None:
        inspect({"encoder": encoder})
    distributed.barrier(run)
    if run.is_main:
        log(f"encoder {config.name}: step {config.steps}, checkpoint {out_dir / CHECKPOINT_NAME}")
    return out_dir / CHECKPOINT_NAME
