"""Packs: a recognizer F, a latent space transformer T and a decoder G that belong together.

The default packs use our own transformers, trained offline by `training` and committed under
`assets/transformers/` (installed as data files under <prefix>/share/facexplain/transformers) with a model card. A transformer checkpoint is a plain dict:
`{"config": TransformerConfig fields, "state_dict": tensors, "card": plain data}`.
"""
from __future__ import annotations

import functools
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from explainer.assets.fetch import file_stamp
from explainer.core.errors import FacexplainError, InvalidSetting, MismatchError
from explainer.core.registry import Registry
from explainer.generation.base import Decoder
from explainer.generation.recoverer import Recoverer, Recovery, RefineSettings
from explainer.generation.recovery_rule import RECOVERY_RULE
from explainer.generation.registry import load_decoder  # noqa: F401 (its old home; callers use it here)
from explainer.generation.transformer import LatentTransformer, TransformerConfig
from explainer.recognition.base import Recognizer
from explainer.recognition.registry import load_recognizer

# Our trained transformers: assets/transformers in a source tree (editable install, the Space), and where
# pyproject.toml's data-files put them in an installed one.
_SOURCE_TRANSFORMERS = Path(__file__).resolve().parents[2] / "assets" / "transformers"
TRANSFORMERS_DIR = (_SOURCE_TRANSFORMERS if _SOURCE_TRANSFORMERS.is_dir()
                    else Path(sys.prefix) / "share" / "facexplain" / "transformers")


class PackMissing(FacexplainError):
    """A pack's trained transformer is not where it should be."""


@dataclass(frozen=True)
class PackSpec:
    name: str
    recognizer: str
    decoder: str
    training_config: str  # the `python -m training transformer --config NAME` that produces it
    description: str
    directory: Path | None = None  # a pack on disk (explainer.packs.store); None: built in

    @property
    def transformer_path(self) -> Path:
        if self.directory is not None:
            return self.directory / "transformer.pt"
        return TRANSFORMERS_DIR / f"{self.name}.pt"


# The extension point for a new pack: a spec here naming a registered recognizer and decoder.
PACKS: Registry[PackSpec] = Registry("pack", {p.name: p for p in [
    PackSpec("dlib-dcgan", "dlib-resnet", "dcgan-digiface", "offline-dlib",
             "dlib ResNet-29 (ResNet-class) with the DigiFace DCGAN decoder (default)"),
    PackSpec("mobilefacenet-dcgan", "mobilefacenet", "dcgan-digiface", "offline-mobilefacenet",
             "MobileFaceNet with the DigiFace DCGAN decoder"),
    PackSpec("faceplugin-dcgan", "faceplugin-r", "dcgan-digiface", "offline-faceplugin",
             "faceplugin-r (512-D cosine, ArcFace-style) with the DigiFace DCGAN decoder"),
]})
DEFAULT_PACK = "dlib-dcgan"


# -- built-in and on-disk packs together ------------------------------------------------------------

def pack_names() -> list[str]:
    """Every pack there is: the built-in ones, then the ready packs on disk (explainer.packs.store)."""
    from explainer.packs.store import user_packs

    return list(PACKS) + [m.name for m in user_packs() if m.name not in PACKS]


def pack_spec(name: str) -> PackSpec:
    """The spec of a built-in or on-disk pack; UnknownName (listing every pack) for other names."""
    from explainer.core.registry import UnknownName
    from explainer.packs.store import READY, pack_dir, read_manifest

    if name in PACKS:
        return PACKS[name]
    manifest = read_manifest(name) if name else None
    if manifest is None or manifest.status != READY:
        raise UnknownName("pack", name, pack_names())
    directory = pack_dir(name)
    return PackSpec(name, str(directory / manifest.recognizer), manifest.decoder, manifest.training_config,
                    manifest.description, directory)


def save_transformer(path: Path, transformer: LatentTransformer, card: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": transformer.config.as_dict(),
                "state_dict": {k: v.detach().cpu() for k, v in transformer.state_dict().items()},
                "card": card}, path)


def load_transformer(path: Path, mean_latent: torch.Tensor) -> tuple[LatentTransformer, dict]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config = TransformerConfig(**checkpoint["config"])
    if config.n_codes * config.code_dim != mean_latent.numel():
        raise MismatchError(f"{path.name} does not fit its decoder: it outputs {config.n_codes} x {config.code_dim} "
                            f"latents, the decoder's latent has {mean_latent.numel()} values. Use the transformer "
                            "trained for this decoder (or make the pack again).")
    transformer = LatentTransformer(config, mean_latent)
    transformer.load_state_dict(checkpoint["state_dict"])
    transformer.eval().requires_grad_(False)
    return transformer, checkpoint["card"]


@dataclass
class Pack:
    name: str
    recognizer: Recognizer
    decoder: Decoder
    transformer: LatentTransformer
    card: dict = field(default_factory=dict)
    spec: PackSpec | None = None  # the registered pack it was loaded from (None: assembled by hand)

    def __post_init__(self) -> None:
        self.recoverer = Recoverer(self.recognizer, self.transformer, self.decoder)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the three models' weights (names, shapes, dtypes and bytes), computed once per pack: what
        caches of the pack's results are keyed on, so that two packs with the same name but other weights
        (one made again while the app runs, a randomised copy) never share an entry."""
        digest = hashlib.sha256(self.name.encode())
        for part in (self.recognizer, self.transformer, self.decoder):
            digest.update(type(part).__name__.encode())
            for key, tensor in part.state_dict().items():
                digest.update(f"{key}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
                digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def embed(self, images) -> torch.Tensor:
        """Embeddings of photos (paths, bytes, arrays...): detect, align to F's crop, embed."""
        from explainer.evidence.verification import embed, prepare

        return embed(self.recognizer, [prepare(image) for image in images])

    def recover(self, embeddings: torch.Tensor, refine: RefineSettings | bool | None = None) -> Recovery:
        settings = RECOVERY_RULE if refine is True else (refine or None)  # True: the one recovery rule
        if settings is not None and settings.start == "nearest" and self.recoverer.start_bank is None:
            from explainer.packs.bank import start_bank

            self.recoverer.start_bank = start_bank(self)
        return self.recoverer.recover(embeddings, refine=settings)


def pack_version(name: str) -> tuple:
    """The stamps of the files a pack is loaded from (its transformer and, on disk, its manifest and its
    recognizer's spec): a pack is loaded again when they change."""
    from explainer.packs.store import MANIFEST, pack_dir

    if name in PACKS:
        return (file_stamp(PACKS[name].transformer_path),)
    directory = pack_dir(name)
    return tuple(file_stamp(directory / f) for f in (MANIFEST, "recognizer.json", "transformer.pt"))


def load_pack(name: str = DEFAULT_PACK) -> Pack:
    """A named pack, loaded once per process and again when its files change (pack_version)."""
    return _load_pack(name, pack_version(name))


@functools.lru_cache(maxsize=None)
def _load_pack(name: str, version: tuple) -> Pack:
    if name not in PACKS:
        return _load_disk_pack(name)
    spec = PACKS[name]
    if not spec.transformer_path.is_file():
        raise PackMissing(f"pack {name!r} has no trained transformer at {spec.transformer_path}; train it with "
                          f"`python -m training transformer --config {spec.training_config}`")
    decoder = load_decoder(spec.decoder)
    transformer, card = load_transformer(spec.transformer_path, decoder.mean_latent)
    return Pack(name, load_recognizer(spec.recognizer), decoder, transformer, card, spec)


load_pack.cache_clear = _load_pack.cache_clear  # forget every loaded pack (tests that swap a pack's files)


def _load_disk_pack(name: str) -> Pack:
    """A ready pack from $FACEXPLAIN_PACKS/NAME (explainer.packs.store): the user's recognizer (its file's
    sha256 checked), and our transformer with its decoder, or the paper's own mapper and decoder."""
    from explainer.packs.store import read_manifest
    from explainer.packs.user_recognizers import load_user_recognizer

    spec = pack_spec(name)  # UnknownName lists every pack
    manifest = read_manifest(name)
    recognizer = load_user_recognizer(Path(spec.recognizer).resolve())
    card = {"manifest": manifest.as_json(), "card_file": str(spec.directory / manifest.card)}
    if manifest.kind == "paper":
        from explainer.generation.paper import load_paper_checkpoints

        transformer, decoder = load_paper_checkpoints(manifest.paper_directory, backbone=manifest.paper_backbone)
        transformer.eval().requires_grad_(False)
    else:
        if not spec.transformer_path.is_file():
            raise PackMissing(f"pack {name!r} has no transformer at {spec.transformer_path}; make it again with "
                              f"`facexplain pack create {name} ...`")
        decoder = load_decoder(spec.decoder)
        transformer, training_card = load_transformer(spec.transformer_path, decoder.mean_latent)
        card["training"] = training_card
    return Pack(name, recognizer, decoder, transformer, card, spec)


def load_paper_pack(directory: str | Path, backbone: str = "r50") -> Pack:
    """The paper's own pack from a user's copy of its checkpoints (RenMin1991/Facial-Attribute-Recovery):
    face backbone checkpoint/arcface_{backbone}.pth, mapper ckpts/delta_256/id_delta_gc_rm_{backbone}.pth,
    mean_wplus.pth and the StyleGAN2 256 checkpoint/550000.pt, each found at that relative path or by
    file name directly in `directory`, all loaded strictly. Not cached: the files are the caller's."""
    from explainer.generation.paper import FACE_BACKBONE_FILES, MAPPER_FILES, load_paper_checkpoints

    transformer, decoder = load_paper_checkpoints(directory, backbone=backbone)
    recognizer = load_paper_recognizer(directory, backbone=backbone)
    transformer.eval().requires_grad_(False)
    card = {"source": "RenMin1991/Facial-Attribute-Recovery checkpoints (user-supplied)",
            "directory": str(directory), "backbone": backbone,
            "files": [FACE_BACKBONE_FILES[backbone], MAPPER_FILES[backbone], "mean_wplus.pth", "checkpoint/550000.pt"],
            "threshold": recognizer.threshold.source}
    return Pack(f"paper-{backbone}", recognizer, decoder, transformer, card)


def load_paper_recognizer(directory: str | Path, backbone: str = "r50") -> Recognizer:
    """The paper's face backbone checkpoint/arcface_{backbone}.pth as our Recognizer, loaded strictly
    (eval mode, frozen). Its threshold is uncalibrated (see explainer.recognition.arcface_trained)."""
    from explainer.core.checkpoint_io import CheckpointError, read_checkpoint
    from explainer.generation.paper import (
        BACKBONES,
        FACE_BACKBONE_FILES,
        FACE_BACKBONE_LAYOUTS,
        PaperCheckpointsMissing,
        find_paper_file,
    )
    from explainer.packs.checkpoints import identify_object

    if backbone not in BACKBONES:
        raise InvalidSetting(f"unknown backbone {backbone!r}; the paper ships face backbones {BACKBONES}")
    directory = Path(directory)
    path = directory if directory.is_file() else find_paper_file(directory, FACE_BACKBONE_FILES[backbone])
    if path is None:
        raise PaperCheckpointsMissing(
            f"the paper's face backbone is missing in {directory}: {FACE_BACKBONE_FILES[backbone]} (looked at that "
            f"relative path and by its file name directly in the directory)")
    ident = identify_object(read_checkpoint(path))
    wanted = FACE_BACKBONE_LAYOUTS[backbone]
    if ident.layout != wanted:
        raise CheckpointError(f"{path}: expected the paper's {wanted} layout for backbone {backbone!r}, found "
                              f"{ident.layout}")
    if not ident.loads_strict:
        raise CheckpointError(f"{path}: {wanted} layout, but it does not load strictly: missing {ident.missing[:10]}, "
                              f"unexpected {ident.unexpected[:10]}, shape mismatches {ident.shape_mismatches[:10]}")
    recognizer = ident.module
    recognizer.name = f"paper-arcface-{backbone}"
    recognizer.requires_grad_(False)  # attacks differentiate w.r.t. pixels, never weights
    return recognizer.eval()
