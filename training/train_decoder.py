"""Train a StyleGAN2 decoder on an image folder (rosinality/stylegan2-pytorch's recipe, our modules).

One loop, top to bottom, per step:
  D step    non-saturating logistic loss on real photos and generated faces;
            every d_reg_every steps: lazy R1 penalty on the real photos (scaled by d_reg_every);
  G step    non-saturating loss through D; every g_reg_every steps: lazy path-length regularisation;
  EMA       g_ema follows G with a half-life of ema_kimg thousand images.

The generator is explainer's StyleGAN2Decoder itself (rendered raw, with fresh noise, while training),
the discriminator explainer's StyleGAN2Discriminator, so the `g_ema` this writes loads strictly into
StyleGAN2Decoder (`explainer.generation.stylegan2.load_stylegan2(OUT/checkpoint.pt)`), and the whole
checkpoint ({"g", "d", "g_ema", "g_optim", "d_optim", ...}) has rosinality's top-level layout.

Runs as one process or under torchrun (DDP: each rank draws its own images and latents, gradients are
averaged). Every random draw of step s on rank r comes from a generator seeded by (seed, s, r), and
the data order from DistributedSampler's (seed, epoch), so a resumed run continues exactly where the
saved one was. The length is `kimg` thousand real images shown to D, as StyleGAN2-ADA counts it: the
steps are kimg / (batch x processes), so more GPUs take fewer steps and see the same images (resume
on the same number of processes). Writes OUT/checkpoint.pt (resumable), OUT/stats.jsonl,
OUT/samples/STEP.png.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from explainer.core.errors import FacexplainError
from explainer.generation.frame import to_uint8
from explainer.generation.stylegan2 import StyleGAN2Decoder
from explainer.generation.stylegan2_discriminator import StyleGAN2Discriminator
from training import distributed
from training.configs import DecoderTrainConfig
from training.data import ImageFolder, offline_folder
from training.resume import CHECKPOINT_NAME, open_stats, resume, save_checkpoint
from training.steps import real_batches, seed_step

ARCHITECTURE_FIELDS = ("size", "channel_multiplier", "channel_max", "style_dim", "n_mlp")
PATH_LENGTH_DECAY = 0.01  # running mean of the path lengths (StyleGAN2's pl_decay)


# -- small pure helpers -------------------------------------------------------------------------------

def build_generator(config: DecoderTrainConfig) -> StyleGAN2Decoder:
    generator = StyleGAN2Decoder(config.size, config.channel_multiplier, config.style_dim, config.n_mlp,
                                 channel_max=config.channel_max, name=f"stylegan2-{config.size}-{config.name}")
    return generator.requires_grad_(True).train()


def build_discriminator(config: DecoderTrainConfig) -> StyleGAN2Discriminator:
    return StyleGAN2Discriminator(config.size, config.channel_multiplier, config.channel_max)


def requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


@torch.no_grad()
def accumulate(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter (buffers stay: fixed noise)."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)


def total_steps(config: DecoderTrainConfig, world_size: int) -> int:
    """Steps that show D `config.kimg` thousand real images at this global batch (the last one may
    overshoot by less than a batch)."""
    images = round(config.kimg * 1000)
    return -(-images // (config.batch * world_size))


def ema_decay(config: DecoderTrainConfig, world_size: int) -> float:
    """Per-step decay for a half-life of ema_kimg thousand images at this global batch."""
    return 0.5 ** (config.batch * world_size / (config.ema_kimg * 1000.0))


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of |d D(x) / d x|^2 at real images (Mescheder et al. 2018)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def path_length_penalty(images: torch.Tensor, latents: torch.Tensor, mean_length: float
                        ) -> tuple[torch.Tensor, float]:
    """StyleGAN2's path-length penalty: the Jacobian norm |J^T y| for image-space noise y, pulled
    toward its running mean. Returns (penalty, the updated running mean)."""
    noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), latents, create_graph=True)
    lengths = grad.pow(2).sum(2).mean(1).sqrt()  # [B]: over W+ codes
    target = mean_length + PATH_LENGTH_DECAY * (lengths.mean().item() - mean_length)
    return (lengths - target).pow(2).mean(), target


class Synthesis(nn.Module):
    """z pairs -> (raw images, W+ latents): what DDP wraps, so gradient sync covers mapping and synthesis.

    Style mixing: codes before `crossover` take w of the first z, the rest that of the second
    (crossover = n_codes: no mixing)."""

    def __init__(self, generator: StyleGAN2Decoder) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, crossover: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch, n_codes = z.shape[0], self.generator.latent_shape[0]
        assert z.shape == (batch, 2, self.generator.config.style_dim), z.shape
        w = self.generator.mapping(z.flatten(0, 1)).view(batch, 2, -1)
        latents = torch.cat([w[:, :1].expand(-1, crossover, -1), w[:, 1:].expand(-1, n_codes - crossover, -1)], 1)
        return self.generator.render(latents, random_noise=True), latents


def draw_z(batch: int, config: DecoderTrainConfig, n_codes: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """Latent pairs and a crossover code: with probability `mixing`, a random one in [1, n_codes)."""
    z = torch.randn(batch, 2, config.style_dim, device=device)
    mix = torch.rand(()).item() < config.mixing
    crossover = int(torch.randint(1, n_codes, ()).item()) if mix else n_codes
    return z, crossover


def sample_grid(images: torch.Tensor, columns: int | None = None) -> np.ndarray:
    """[B, 3, S, S] in [0, 1] -> one uint8 RGB grid image, 1 px gaps."""
    pixels = to_uint8(images)
    batch, side = pixels.shape[0], pixels.shape[1]
    columns = columns or math.ceil(math.sqrt(batch))
    rows = math.ceil(batch / columns)
    grid = np.zeros((rows * (side + 1) - 1, columns * (side + 1) - 1, 3), np.uint8)
    for k, image in enumerate(pixels):
        r, c = divmod(k, columns)
        grid[r * (side + 1):r * (side + 1) + side, c * (side + 1):c * (side + 1) + side] = image
    return grid


def resolve_data(config: DecoderTrainConfig) -> Path:
    if config.data == "offline":
        return offline_folder(config.size, config.limit)
    if not config.data:
        raise FacexplainError("no training images: pass --data DIR (an image folder aligned to FFHQ's frame, "
                              "see `python -m training align`) or --data offline")
    return Path(config.data)


# -- the loop -----------------------------------------------------------------------------------------

def train(config: DecoderTrainConfig, out_dir: Path, log=print,
          inspect: Callable[[dict[str, nn.Module]], None] | None = None) -> Path:
    """Train (or continue training) into `out_dir`; returns OUT/checkpoint.pt. `inspect`, if given, is
    called on every rank at the end with {"g", "d", "g_ema"} (the tests compare ranks with it)."""
    with distributed.session(config.device) as run:
        return _train(config, Path(out_dir), run, log, inspect)


def _train(config: DecoderTrainConfig, out_dir: Path, run: distributed.Distributed, log,
           inspect) -> Path:
    device = run.device
    amp = config.amp and device.type == "cuda"  # bfloat16: no loss scaling needed; never on the CPU
    if run.is_main:
        resolve_data(config)  # rank 0 prepares the offline folder once; the others then find it ready
    distributed.barrier(run)
    dataset = ImageFolder(resolve_data(config), config.size, config.limit)

    torch.manual_seed(config.seed)  # identical initial weights on every rank (DDP also broadcasts them)
    generator = build_generator(config).to(device)
    discriminator = build_discriminator(config).to(device)
    g_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    n_codes = generator.latent_shape[0]

    # Lazy regularisation runs every k steps, so Adam's lr and betas are rescaled to match the
    # per-step statistics (StyleGAN2 Appendix B).
    g_ratio = config.g_reg_every / (config.g_reg_every + 1)
    d_ratio = config.d_reg_every / (config.d_reg_every + 1)
    g_optim = torch.optim.Adam(generator.parameters(), lr=config.lr * g_ratio, betas=(0.0, 0.99 ** g_ratio))
    d_optim = torch.optim.Adam(discriminator.parameters(), lr=config.lr * d_ratio, betas=(0.0, 0.99 ** d_ratio))

    saved = resume(out_dir, config, ARCHITECTURE_FIELDS, {
        "g": generator.load_state_dict, "d": discriminator.load_state_dict, "g_ema": g_ema.load_state_dict,
        "g_optim": g_optim.load_state_dict, "d_optim": d_optim.load_state_dict}, log, run.is_main)
    start_step, mean_path_length = (0, 0.0) if saved is None else (int(saved["step"]), float(saved["mean_path_length"]))
    steps = total_steps(config, run.world_size)

    synthesis = Synthesis(generator)
    g_train, d_train = synthesis, discriminator
    if run.enabled:
        ids = [run.local_rank] if device.type == "cuda" else None
        # broadcast_buffers=False: the only buffers are the fixed noise maps and FIR kernels
        g_train = DistributedDataParallel(synthesis, device_ids=ids, broadcast_buffers=False)
        d_train = DistributedDataParallel(discriminator, device_ids=ids, broadcast_buffers=False)
    decay = ema_decay(config, run.world_size)
    path_batch = max(1, config.batch // config.path_batch_shrink)

    sample_z = torch.randn(config.n_sample, config.style_dim, generator=torch.Generator().manual_seed(config.seed))
    if run.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "samples").mkdir(exist_ok=True)
    stats_file = open_stats(out_dir, saved is not None, run.is_main)
    batches = real_batches(dataset, run, start_step, config.batch, config.seed, config.workers)
    started, last = time.perf_counter(), {}
    progress = tqdm(range(start_step, steps), initial=start_step, total=steps, unit="step",
                    desc=f"decoder {config.name}", disable=None if run.is_main else True)
    try:
        for step in progress:
            seed_step(config.seed, step, run.rank)
            real = next(batches).to(device, non_blocking=True)
            flip = torch.rand(real.shape[0]) < 0.5  # mirrored faces are faces too
            real = torch.where(flip.to(device)[:, None, None, None], real.flip(-1), real) * 2.0 - 1.0

            # -- discriminator ---------------------------------------------------------------------------
            requires_grad(generator, False)
            requires_grad(discriminator, True)
            z, crossover = draw_z(config.batch, config, n_codes, device)
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
                fake, _ = synthesis(z, crossover)  # not through DDP: G is not being trained here
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                fake_logits, real_logits = d_train(fake.detach()), d_train(real)
                d_loss = d_logistic_loss(real_logits.float(), fake_logits.float())
            d_optim.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optim.step()
            last.update(d_loss=d_loss.item(), real_score=real_logits.float().mean().item(),
                        fake_score=fake_logits.float().mean().item())

            if step % config.d_reg_every == 0:
                real_input = real.detach().requires_grad_(True)
                real_logits = d_train(real_input)  # full precision: second derivatives
                r1 = r1_penalty(real_logits, real_input)
                d_optim.zero_grad(set_to_none=True)
                # 0 * logit: every D parameter takes part in this backward, as DDP requires
                (config.r1 / 2 * r1 * config.d_reg_every + 0 * real_logits[0, 0]).backward()
                d_optim.step()
                last["r1"] = r1.item()

            # -- generator -------------------------------------------------------------------------------
            requires_grad(generator, True)
            requires_grad(discriminator, False)
            z, crossover = draw_z(config.batch, config, n_codes, device)
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                fake, _ = g_train(z, crossover)
                g_loss = g_nonsaturating_loss(discriminator(fake).float())  # D unwrapped: not trained here
            g_optim.zero_grad(set_to_none=True)
            g_loss.backward()
            g_optim.step()
            last["g_loss"] = g_loss.item()

            if step % config.g_reg_every == 0:
                z, crossover = draw_z(path_batch, config, n_codes, device)
                fake, latents = g_train(z, crossover)
                penalty, local_mean = path_length_penalty(fake, latents, mean_path_length)
                g_optim.zero_grad(set_to_none=True)
                (config.path_regularize * config.g_reg_every * penalty + 0 * fake[0, 0, 0, 0]).backward()
                g_optim.step()
                # one running mean for all ranks, so every rank pulls toward the same target
                mean_path_length = distributed.mean_over_ranks(run, {"m": local_mean})["m"]
                last.update(path_penalty=penalty.item(), mean_path_length=mean_path_length)

            accumulate(g_ema, generator, decay)
            done = step + 1

            if done % config.log_every == 0 or done == steps:
                record = distributed.mean_over_ranks(run, dict(last))
                if run.is_main:
                    seconds = time.perf_counter() - started
                    record = {"step": done, "kimg": round(done * config.batch * run.world_size / 1000, 3),
                              **{k: round(v, 6) for k, v in sorted(record.items())},
                              "seconds": round(seconds, 2), "steps_per_s": round((done - start_step) / seconds, 4)}
                    stats_file.write(json.dumps(record) + "\n")
                    stats_file.flush()
                    progress.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}")
            if run.is_main and (done % config.sample_every == 0 or done == steps):
                with torch.no_grad():
                    images = g_ema(g_ema.mapping(sample_z.to(device))[:, None].expand(-1, n_codes, -1))
                Image.fromarray(sample_grid(images.cpu())).save(out_dir / "samples" / f"{done:06d}.png")
            if run.is_main and (done % config.checkpoint_every == 0 or done == steps):
                save_checkpoint(out_dir / CHECKPOINT_NAME, {
                    "g": generator.state_dict(), "d": discriminator.state_dict(), "g_ema": g_ema.state_dict(),
                    "g_optim": g_optim.state_dict(), "d_optim": d_optim.state_dict(),
                    "step": done, "mean_path_length": mean_path_length, "config": dataclasses.asdict(config),
                    "world_size": run.world_size, "torch": str(torch.__version__)})
    finally:
        if stats_file is not None:
            stats_file.close()
    if inspect is not None:
        inspect({"g": generator, "d": discriminator, "g_ema": g_ema})
    distributed.barrier(run)
    if run.is_main:
        log(f"decoder {config.name}: step {steps} ({config.kimg:g} kimg), checkpoint {out_dir / CHECKPOINT_NAME}")
    return out_dir / CHECKPOINT_NAME
