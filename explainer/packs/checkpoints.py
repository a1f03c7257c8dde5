"""Identify a checkpoint file's layout and load it, strictly, into our own PyTorch classes.

Users own checkpoints of many layouts (compat/ in the shared folder lists those we know, key by key):
rosinality StyleGAN2 training checkpoints ({"g", "d", "g_ema", "g_optim", "d_optim", "args", ...}),
bare generator / discriminator state dicts, the paper's mapper, guide encoder and face backbones,
TreB1eN's and insightface's recognizers. `identify(path)` finds the state dicts inside a file (bare,
wrapped in {"state_dict": ...}, {"model": ...}, arcface_torch's {"state_dict_backbone": ...}, a
rosinality checkpoint, with or without DataParallel's `module.` prefix), matches each against every
layout we can build (its config inferred from the keys and shapes, the module built on the meta
device, keys compared), and then loads the best match into a real module strictly.

Files are read with torch.load(weights_only=True): no pickled code runs. rosinality's trainer pickles an
argparse.Namespace under "args"; only that class is allowed (explainer.core.checkpoint_io.read_checkpoint).

Checkpoints saved before PyTorch 0.4.1 lack BatchNorm's `num_batches_tracked`; torch's own strict load
fills them silently for plain dicts, and so do we (with a note), so they are never reported missing.

insightface's ONNX files are identified by graph structure only: their exporter folds BatchNorm into
convolutions under generated initializer names, so they do not map back onto a state dict. They run,
differentiably, through explainer.recognition.onnx_backed.OnnxRecognizer (the note says how).
"""
from __future__ import annotations

import argparse
import functools
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from explainer.core.checkpoint_io import CheckpointError, is_state_dict, read_checkpoint, strip_module_prefix, unwrap

MIN_KEY_OVERLAP = 0.5  # below this fraction of shared keys a state dict is "no known layout"
# Wrappers whose value is the model's state dict (checked in this order).
STATE_DICT_WRAPPERS = ("state_dict", "model", "state_dict_backbone", "model_state_dict", "net", "module")
ROSINALITY_PARTS = ("g_ema", "g", "d")


class NotACheckpoint(CheckpointError):
    """A file that is not a checkpoint of any layout we know; the message says what it holds."""


# -- the layouts we can build -------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """A class of ours and how to get its config from a state dict."""

    name: str
    infer: Callable[[Mapping[str, torch.Tensor]], object]  # raises on a state dict of another family
    default: Callable[[], object]  # the config to compare against when inference fails
    build: Callable[[object], nn.Module]
    layout_name: Callable[[object], str]
    aliases: Callable[[object], tuple[str, ...]] = lambda config: ()


def _stylegan2_g() -> Family:
    from explainer.generation.stylegan2 import StyleGAN2Config, StyleGAN2Decoder, infer_config

    def build(c):
        return StyleGAN2Decoder(c.size, c.channel_multiplier, c.style_dim, c.n_mlp, compute_mean_latent=False,
                                channel_max=c.channel_max)
    return Family("stylegan2-generator", infer_config, StyleGAN2Config, build,
                  lambda c: f"rosinality_stylegan2_G{c.size}",
                  lambda c: ("far_stylegan2_G256",) if c == StyleGAN2Config(256) else ())


def _stylegan2_d() -> Family:
    from explainer.generation.stylegan2_discriminator import (
        DiscriminatorConfig,
        StyleGAN2Discriminator,
        infer_discriminator_config,
    )
    return Family("stylegan2-discriminator", infer_discriminator_config, DiscriminatorConfig,
                  lambda c: StyleGAN2Discriminator(c.size, c.channel_multiplier, c.channel_max),
                  lambda c: f"rosinality_stylegan2_D{c.size}",
                  lambda c: ("far_stylegan2_D256",) if c == DiscriminatorConfig(256) else ())


def _infer_transformer(state):
    from explainer.generation.transformer import TransformerConfig
    n_codes = len({k.split(".")[1] for k in state if k.startswith("heads.")})
    shared = len({k.split(".")[1] for k in state if k.startswith("mapping.")})
    branch = len({k.split(".")[2] for k in state if k.startswith("heads.0.")})
    if not n_codes or not shared or shared + branch != 8:
        raise KeyError("mapping.* / heads.*")
    return TransformerConfig(embedding_dim=state["mapping.0.weight"].shape[1], n_codes=n_codes,
                             code_dim=state[f"heads.0.{branch - 1}.weight"].shape[0],
                             hidden=state["mapping.0.weight"].shape[0], shared_layers=shared)


def _latent_transformer() -> Family:
    from explainer.generation.paper import paper_transformer_config
    from explainer.generation.transformer import LatentTransformer

    def same_shapes_as_paper(c) -> bool:  # input_scale / tanh are not in the state dict
        p = paper_transformer_config()
        return (c.embedding_dim, c.n_codes, c.code_dim, c.hidden, c.shared_layers) == \
               (p.embedding_dim, p.n_codes, p.code_dim, p.hidden, p.shared_layers)
    return Family("latent-transformer", _infer_transformer, paper_transformer_config, LatentTransformer,
                  lambda c: "far_idd_encoder_14_8" if same_shapes_as_paper(c) else "latent_transformer")


def _guide_encoder() -> Family:
    from explainer.generation.guide_encoder import GuideEncoder, GuideEncoderConfig, infer_guide_encoder_config

    def build(c):
        return GuideEncoder(c.codes_per_level, c.code_dim, c.width, c.blocks, c.input_size,
                            mean_latent_shape=c.mean_latent_shape)
    return Family("guide-encoder", infer_guide_encoder_config, GuideEncoderConfig, build,
                  lambda c: "far_guide_encoder_pspEncoderv2" if (c.code_dim, c.width) == (512, 64)
                  else "guide_encoder")


def _irse() -> Family:
    from explainer.recognition.irse import IRSEConfig, build_irse, infer_irse_config

    def name(c):
        depth = c.depth or "custom"
        return f"far_arcface_r{depth}" if c.variant == "far" else f"treb_ir{'_se' if c.se else ''}{depth}"
    return Family("ir-se", infer_irse_config, IRSEConfig, build_irse, name)


def _iresnet() -> Family:
    from explainer.recognition.iresnet import IResNetConfig, build_iresnet, infer_iresnet_config
    return Family("iresnet", infer_iresnet_config, IResNetConfig, build_iresnet,
                  lambda c: f"insightface_iresnet{c.depth or '_custom'}")


def _mobilefacenet() -> Family:
    from explainer.recognition.mobilefacenet_torch import (
        PAPER_STAGES,
        TREB_STAGES,
        MobileFaceNetConfig,
        build_mobilefacenet,
        infer_mobilefacenet_config,
    )
    return Family("mobilefacenet", infer_mobilefacenet_config, MobileFaceNetConfig, build_mobilefacenet,
                  lambda c: {PAPER_STAGES: "far_arcface_mb", TREB_STAGES: "treb_mobilefacenet"}.get(
                      c.stages, "mobilefacenet_custom"))


def _mbf() -> Family:
    from explainer.recognition.mobilefacenet_torch import MBFConfig, build_mbf, infer_mbf_config
    return Family("insightface-mbf", infer_mbf_config, MBFConfig, build_mbf,
                  lambda c: "insightface_mbf" if c == MBFConfig() else "insightface_mbf_custom")


@functools.lru_cache(maxsize=1)
def families() -> tuple[Family, ...]:
    return (_stylegan2_g(), _stylegan2_d(), _latent_transformer(), _guide_encoder(), _irse(), _iresnet(),
            _mobilefacenet(), _mbf())


@functools.lru_cache(maxsize=64)
def _expected(family: Family, config) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the family's module for `config`, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        module = family.build(config)
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _allocate(family: Family, config) -> nn.Module:
    """The module with uninitialised memory when the load will overwrite every tensor it has (skips
    initialising e.g. 180M parameters); built normally when it has buffers outside its state dict."""
    with torch.device("meta"):
        module = family.build(config)
    persistent = module.state_dict().keys()
    if any(name not in persistent for name, _ in module.named_buffers()):
        return family.build(config)
    return module.to_empty(device="cpu")


# -- what identify reports ----------------------------------------------------------------------------

@dataclass
class Identification:
    """The layout of one state dict (or of a whole file, with `components`) and whether it loads strictly."""

    layout: str
    loads_strict: bool
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatches: list[str] = field(default_factory=list)
    family: str | None = None
    same_layout_as: list[str] = field(default_factory=list)
    location: str = ""  # where in the file the state dict is, e.g. "['g_ema']"
    module_prefix: bool = False  # keys carried DataParallel's `module.` prefix (stripped)
    key_overlap: float = 1.0
    notes: list[str] = field(default_factory=list)
    components: dict[str, "Identification"] = field(default_factory=dict)
    module: nn.Module | None = field(default=None, repr=False)  # the loaded module, when strict

    def to_json(self) -> dict:
        out = {"layout": self.layout, "loads_strict": self.loads_strict, "missing": self.missing,
               "unexpected": self.unexpected, "shape_mismatches": self.shape_mismatches,
               "family": self.family, "same_layout_as": self.same_layout_as, "location": self.location,
               "module_prefix": self.module_prefix, "key_overlap": round(self.key_overlap, 4), "notes": self.notes}
        if self.components:
            out["components"] = {name: part.to_json() for name, part in self.components.items()}
        return out


def match_state_dict(state: Mapping[str, torch.Tensor], location: str = "", load: bool = True) -> Identification:
    """The best-matching layout of one state dict; with `load`, build it for real and load strictly."""
    state, prefixed = strip_module_prefix(state)
    best = None
    for family in families():
        try:
            config = family.infer(state)
        except (KeyError, IndexError, AttributeError, TypeError, ValueError, CheckpointError):
            config = family.default()
        try:
            expected = _expected(family, config)
        except (ValueError, AssertionError, TypeError):
            continue
        shared = len(expected.keys() & state.keys())
        overlap = shared / len(expected.keys() | state.keys())
        if best is None or overlap > best[0]:
            best = (overlap, family, config, expected)
    overlap, family, config, expected = best
    if overlap < MIN_KEY_OVERLAP:
        raise NotACheckpoint(
            f"state dict{location and ' at ' + location} ({len(state)} tensors, first keys "
            f"{sorted(state)[:5]}) matches no layout we know: the closest, {family.layout_name(config)}, "
            f"shares only {overlap:.0%} of its keys")

    ident = Identification(layout=family.layout_name(config), loads_strict=False, family=family.name,
                           same_layout_as=list(family.aliases(config)), location=location,
                           module_prefix=prefixed, key_overlap=overlap)
    if prefixed:
        ident.notes.append("keys carried DataParallel's 'module.' prefix; stripped")
    counters = [k for k in expected if k.endswith("num_batches_tracked")]
    if counters and not any(k in state for k in counters):
        state = dict(state, **{k: torch.zeros((), dtype=torch.long) for k in counters})
        ident.notes.append(f"no BatchNorm num_batches_tracked (saved before PyTorch 0.4.1): "
                           f"filled {len(counters)} counters with 0, as torch's strict load does for plain dicts")
    ident.missing = [k for k in expected if k not in state]
    ident.unexpected = [k for k in state if k not in expected]
    ident.shape_mismatches = [f"{k}: file {tuple(state[k].shape)} vs model {expected[k]}"
                              for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if ident.missing or ident.unexpected or ident.shape_mismatches or not load:
        return ident
    module = _allocate(family, config)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:  # e.g. a dtype that cannot be copied
        ident.notes.append(f"strict load failed: {err}")
        return ident
    ident.loads_strict, ident.module = True, module.eval()
    return ident


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def identify_object(checkpoint: object, load: bool = True) -> Identification:
    """identify() on an already loaded checkpoint object."""
    if isinstance(checkpoint, torch.Tensor):
        raise NotACheckpoint(f"the file holds a bare tensor of shape {tuple(checkpoint.shape)}, not a state dict "
                             f"(the paper's mean_wplus.pth is such a file: load it with "
                             f"explainer.generation.paper.load_mean_wplus)")
    if not isinstance(checkpoint, Mapping):
        raise NotACheckpoint(f"the file holds a {type(checkpoint).__name__}, not a dict of tensors")

    parts = [p for p in ROSINALITY_PARTS if is_state_dict(checkpoint.get(p))]
    if parts:  # rosinality train.py ({"g", "d", "g_ema", optimisers, "args"}) or convert_weight.py output
        whole = Identification(layout="rosinality_train_checkpoint" if "g_optim" in checkpoint
                               else "rosinality_checkpoint", loads_strict=True, family="rosinality-checkpoint")
        for part in parts:
            sub = match_state_dict(checkpoint[part], f"['{part}']", load)
            whole.components[part] = sub
            whole.loads_strict &= sub.loads_strict
            whole.missing += [f"{part}/{k}" for k in sub.missing]
            whole.unexpected += [f"{part}/{k}" for k in sub.unexpected]
            whole.shape_mismatches += [f"{part}/{k}" for k in sub.shape_mismatches]
        whole.module = whole.components[parts[0]].module  # g_ema when present: what inference uses
        args = checkpoint.get("args")
        if isinstance(args, argparse.Namespace):
            fields = {k: _jsonable(v) for k, v in sorted(vars(args).items())}
            whole.notes.append(f"args (argparse.Namespace, read without running code): {fields}")
        others = sorted(str(k) for k in checkpoint if k not in parts and k != "args")
        if others:
            whole.notes.append(f"other entries, not loaded: {others}")
        return whole

    inner, location, wrapper = unwrap(checkpoint, STATE_DICT_WRAPPERS, "", accept=is_state_dict)
    if wrapper is not None:
        ident = match_state_dict(inner, location, load)
        others = sorted(str(k) for k in checkpoint if k != wrapper)
        if others:
            ident.notes.append(f"other entries, not loaded: {others}")
        return ident
    tensors = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise NotACheckpoint(f"a dict without tensors or a known wrapper (keys {sorted(map(str, checkpoint))[:12]})")
    ident = match_state_dict(tensors, "", load)
    others = sorted(str(k) for k in checkpoint if k not in tensors)
    if others:
        ident.notes.append(f"non-tensor entries, not loaded: {others}")
    return ident


def identify(path: str | Path, load: bool = True) -> Identification:
    """The layout of the checkpoint at `path` and whether it loads strictly into our classes; with `load`
    the loaded module is in `.module` (for a rosinality checkpoint: g_ema; each part in `.components`)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return identify_onnx(path)
    _check_torch_file(path)
    return identify_object(read_checkpoint(path), load)


def _check_torch_file(path: Path) -> None:
    """A clear error for files torch.save did not write: since torch 1.6 a zip archive, before it a
    pickle stream (first byte 0x80, the pickle protocol opcode)."""
    if not path.is_file():
        raise NotACheckpoint(f"no checkpoint file at {path}")
    with path.open("rb") as handle:
        head = handle.read(4)
    if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):
        raise NotACheckpoint(f"{path}: not a readable torch checkpoint (neither the zip archive torch.save writes "
                             f"nor a legacy pickle; the file starts with {head!r})")


def load_checkpoint(path: str | Path) -> tuple[str, nn.Module]:
    """(layout, module) for a checkpoint that loads strictly; CheckpointError listing what does not fit."""
    ident = identify(path)
    if not ident.loads_strict or ident.module is None:
        problems = [f"{len(v)} {label}: {', '.join(v[:10])}" for label, v in
                    (("missing", ident.missing), ("unexpected", ident.unexpected),
                     ("shape mismatches", ident.shape_mismatches)) if v]
        raise CheckpointError(f"{path}: looks like {ident.layout} but does not load strictly "
                              f"({'; '.join(problems + ident.notes) or 'see identify()'})")
    return ident.layout, ident.module


# -- ONNX (insightface model zoo): structure only -------------------------------------------------------

def identify_onnx(path: Path) -> Identification:
    """An insightface recognition ONNX file's architecture, from its graph (identified, not loaded)."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and friends, none of them a common base
        raise NotACheckpoint(f"{path}: not a readable ONNX file ({type(err).__name__}: {err})") from None
    graph = model.graph
    ops = [node.op_type for node in graph.node]
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    n_adds, n_prelu = ops.count("Add"), ops.count("PRelu")
    grouped = sum(1 for node in graph.node if node.op_type == "Conv"
                  and any(a.name == "group" and a.i > 1 for a in node.attribute))
    has_fc = any(s in ((512, 25088), (25088, 512)) for s in shapes.values())  # Gemm or MatMul weight
    layout, notes = "unknown_onnx", []
    if has_fc and grouped == 0:
        units_to_depth = {8: 18, 16: 34, 24: 50, 49: 100, 98: 200}
        depth = units_to_depth.get(n_adds)  # one Add per residual unit
        layout = f"insightface_iresnet{depth}" if depth else "insightface_iresnet_custom"
        notes.append(f"{n_adds} residual Add nodes, a 512x25088 fully connected layer, no grouped convs")
    elif grouped and n_prelu:
        layout = "insightface_mbf" if n_adds == 12 else "mobilefacenet_onnx"
        notes.append(f"{grouped} grouped (depthwise) convs, {n_adds} residual Add nodes, {n_prelu} PReLUs")
    if layout == "unknown_onnx":
        raise NotACheckpoint(f"{path}: an ONNX graph ({len(ops)} nodes) that is not an insightface recognizer "
                             f"we know")
    ident = Identification(layout=layout, loads_strict=False, family="onnx", location="onnx graph",
                           key_overlap=0.0)
    ident.notes += notes + [
        "identified from the ONNX graph only: the exporter folds BatchNorm into convolutions under generated "
        "initializer names, so it does not load into our PyTorch class. Run it (differentiably) with "
        "explainer.recognition.onnx_backed.OnnxRecognizer(path, name=..., preprocessing=INSIGHTFACE_ARCFACE)"]
    return ident
