"""explain_pair: why a recognizer decided as it did on one (probe, reference) pair, as an ensemble estimate.

    photos -> the recognizer's aligned crops -> embeddings z_p, z_r -> decision
    M counterfactual members (seeded) x_adv^m, each a minimal change that flips the decision -> z_adv^m
    recovered faces: probe and reference refined by the stopping rule (once per pair); each member's face
        is the probe's recovered latent moved by the transformer's own response, T(z_adv^m) - T(z_p)
    attributes of every recovered face under test-time jitter -> s_a per member -> median and its order-statistic interval

Why the members' faces start from the probe's: refinement is chaotic (a face refined alone from T(z_adv)
differs from the probe's by noise far larger than what the small embedding change asks for), so the
numerator ||â_p - â_adv|| must compare faces that differ only by the change in the embedding.
Everything runs on one intra-op thread: results are bit-reproducible for the same inputs and seed.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from explainer import faces
from explainer.core.errors import FacexplainError
from explainer.core.runtime import Progress, report_progress, single_thread
from explainer.counterfactual.attacks import ATTACKS, AttackInput
from explainer.counterfactual.objective import MARGIN
from explainer.evidence import pair_evidence
from explainer.generation.frame import to_uint8
from explainer.generation.recoverer import RefineSettings
from explainer.generation.recovery_rule import REFINE_CAP, TOLERANCE, describe, recovery_rule
from explainer.jobs.results import CounterfactualOutcome, Decision, Member, PairExplanation, Stability
from explainer.measures.ensemble import CONFIDENCE, INTERVAL_METHOD, ensemble_significance
from explainer.measures.median_interval import reachable_confidence
from explainer.reports.provenance import library_versions, pack_provenance, recognizer_provenance

# The ensemble, chosen by `facexplain bench stability` (see the README): members per pair (each attack's
# entry says how many), test-time jitters per recovered face, and the recovery's convergence rule
# (anchored refinement until the loss stops falling, with a step cap).
MEMBERS = {name: entry.members for name, entry in ATTACKS.items()}
JITTERS = 2
# The pre-ensemble method, kept as the baseline of `bench stability --one-draw`: one counterfactual (PGD
# without a random start), every face refined alone for a fixed number of steps, no jitter, plain ratios.
ONE_DRAW_STEPS = 5
RECOVERY_CACHE = 64  # recovered faces kept per process, by (pack, embedding, rule): a pair's faces are shared
#                      by its explanations with other attacks and seeds
IMAGE_NAMES = ("probe_aligned", "reference_aligned", "counterfactual", "perturbation_amplified", "recovered_probe",
               "recovered_reference", "recovered_counterfactual", "recovered_probe_attribute_crop",
               "probe_decoder_frame", "reference_decoder_frame", "probe_attribute_crop")


class ExplanationError(FacexplainError):
    """An explanation could not be made (for example: an unknown attack or data set)."""


def resolve_pack(pack):
    from explainer.packs.catalogue import Pack, load_pack

    return pack if isinstance(pack, Pack) else load_pack(pack)


def member_seeds(seed: int, members: int) -> list[int]:
    """Independent seeds for the ensemble's members, all drawn from the user's one seed."""
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(members)]


_recovered: OrderedDict = OrderedDict()
_recovered_lock = threading.Lock()  # the app runs explanations in threads side by side


def recover_one(pack, embedding: torch.Tensor, rule: RefineSettings | None) -> tuple[torch.Tensor, int, float]:
    """(latent, steps taken, recognizer score) of one face recovered by `rule`, cached by the pack's weights
    (Pack.fingerprint: a pack made again under the same name is another key), the embedding and the rule:
    refinement runs each face alone, so a cached face is bit-identical to a fresh one."""
    key = (pack.fingerprint, embedding.detach().float().numpy().tobytes(), rule)
    with _recovered_lock:
        if key in _recovered:
            _recovered.move_to_end(key)
            return _recovered[key]
    recovery = pack.recover(embedding.detach()[None], rule)
    value = (recovery.latents[0], recovery.steps[0] if recovery.steps else 0, float(recovery.similarity[0]))
    with _recovered_lock:
        _recovered[key] = value
        while len(_recovered) > RECOVERY_CACHE:
            _recovered.popitem(last=False)
    return value


def _input_record(source) -> dict:
    record = {"sha256": faces.sha256_of(source)}
    if isinstance(source, (str, Path)):
        record["file"] = Path(source).name  # the name only: an absolute path would tie the report to a machine
    return record


def _amplified(counterfactual: np.ndarray, original: np.ndarray) -> tuple[np.ndarray, int]:
    """The perturbation made visible: 128 + gain x (counterfactual - original), gain the largest integer
    that keeps it in range (so a 1-level change shows as ±127 at most)."""
    delta = counterfactual.astype(np.int16) - original.astype(np.int16)
    largest = int(np.abs(delta).max())
    gain = max(1, 127 // largest) if largest else 1
    return np.clip(128 + gain * delta, 0, 255).astype(np.uint8), gain


def _photo_views(photos: dict, decoder) -> dict[str, np.ndarray]:
    """The photos in the frames of what is compared with them: each in the decoder's frame (beside the face
    recovered from its embedding, pixel for pixel) and the probe in the attributes' crop (under the LBP map)."""
    from explainer.attributes.frame import ATTRIBUTE_CROP
    from explainer.generation.frame import decoder_frame

    frame = decoder_frame(decoder)
    views = {f"{role}_decoder_frame": faces.align(image, face.landmarks, frame) for role, (image, face) in photos.items()}
    image, face = photos["probe"]
    views["probe_attribute_crop"] = faces.align(image, face.landmarks, ATTRIBUTE_CROP)
    return views


def _representative(results, threshold: float) -> int:
    """The member shown as "the" counterfactual: a flipping one with the median budget (lowest index on ties);
    when none flipped, the one whose score came closest to the threshold (how near the attack got)."""
    flipping = [k for k, r in enumerate(results) if r.flipped]
    if not flipping:
        return min(range(len(results)), key=lambda k: (abs(results[k].similarity - threshold), k))
    ordered = sorted(flipping, key=lambda k: (results[k].linf_eps, results[k].l2, k))
    return ordered[(len(ordered) - 1) // 2]


def _member_latents(pack, probe_latent: torch.Tensor, z_probe: torch.Tensor, z_members: torch.Tensor) -> torch.Tensor:
    """Each member's latent: the probe's recovered latent moved by T(z_adv) - T(z_p) (each through T alone:
    batched matrix products round differently, and a member must not depend on its batch-mates). Refining
    members further toward z_adv was tried (10 steps, four dlib pairs): it made rankings depend on the seed
    (median top-10 overlap 10 -> 7.5 on four pairs) for a small gain between attacks, and cost more time."""
    with torch.no_grad():
        base = pack.transformer(z_probe[None])
        return torch.cat([probe_latent[None] + pack.transformer(z[None]) - base for z in z_members])


def _top(values: dict[str, float], names: list[str], n: int = 10) -> set[str]:
    return set(sorted((k for k in names if np.isfinite(values.get(k, np.nan))), key=lambda k: (-values[k], k))[:n])


def _agreement(member_values: list[dict[str, float]], names: list[str]) -> float | None:
    """Mean top-10 overlap (over the non-LBP attributes) between every two members' own s_a rankings."""
    tops = [_top(values, names) for values in member_values]
    pairs = [(a, b) for i, a in enumerate(tops) for b in tops[i + 1:] if len(a) == len(b) == 10]
    return float(np.mean([len(a & b) / 10 for a, b in pairs])) if pairs else None


def _score_attributes(estimates: dict | None, n_faces: int, jitters: int, kind: str | None, seed: int,
                      unscored: str | None, notes: list[str]):
    """s_a of every attribute from estimate_all's output on jitter-major rows of (probe, reference, flipping
    members): (groups, kinds, values, flags, intervals, each flipping member's s_a). kind: force one kind for
    all (the one-draw baseline compared probability vectors as plain vectors); None: each estimator's own.
    unscored: the flag every attribute gets when there is nothing to score ("undefined": identical
    embeddings; "no_flip": no member flipped the decision); None: score them."""
    from explainer import attributes

    groups, kinds, values, flags, intervals = {}, {}, {}, {}, {}
    per_member: list[dict[str, float]] = [{} for _ in range(n_faces - 2)]
    for estimator in attributes.estimators():
        name = estimator.name
        groups[name], kinds[name] = estimator.group, estimator.kind
        if unscored is not None:
            values[name], flags[name] = None, unscored
            continue
        estimate, valid = estimates[name]
        estimate = estimate.reshape(jitters, n_faces, -1)
        usable = valid.reshape(jitters, n_faces).all(axis=1)  # the jitters at which every face has an estimate
        if not usable.any():
            seen = valid.reshape(jitters, n_faces).any(axis=0)
            which = [role for role, ok in zip(("probe", "reference"), seen[:2]) if not ok] or ["counterfactual"]
            values[name], flags[name] = None, "invalid"
            notes.append(f"{name}: no valid estimate on the recovered {', '.join(which)} face")
            continue
        estimate = estimate[usable]
        s = ensemble_significance(estimate[:, 0], estimate[:, 1], estimate[:, 2:], kind or estimator.kind)
        values[name] = s.value
        if s.flag is not None:
            flags[name] = s.flag
        if s.interval is not None:
            intervals[name] = [s.interval[0], s.interval[1]]
            for k, v in enumerate(s.members):
                per_member[k][name] = v
    return groups, kinds, values, flags, intervals, per_member


def explain_pair(probe, reference, pack="dlib-dcgan", attack: str = "pgd", seed: int = 0,
                 progress: Progress = None, *, surrogate: str | None = None, refine_steps: int = REFINE_CAP,
                 members: int | None = None, jitters: int = JITTERS, tolerance: float = TOLERANCE,
                 one_draw: bool = False) -> PairExplanation:
    """Why `pack`'s recognizer decided as it did on (probe, reference): photos as paths or RGB uint8 arrays.

    seed drives every random choice (each member's PGD random start or transfer dropout masks);
    refine_steps is the step cap of the recovery stopping rule. one_draw=True: the pre-ensemble
    baseline (ONE_DRAW_STEPS), for benchmarks only."""
    from explainer import attributes

    chosen = ATTACKS[attack]  # UnknownName, listing the attacks, for any other name
    members = chosen.members if members is None else members
    if members < 1 or refine_steps < 0 or int(seed) < 0:
        raise ExplanationError(f"members must be at least 1, refine_steps and seed at least 0 (got {members}, "
                               f"{refine_steps}, {seed})")
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str, fraction: float) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now
        report_progress(progress, fraction, stage)

    pack = resolve_pack(pack)
    recognizer = pack.recognizer
    notes: list[str] = []
    inputs = {"probe": _input_record(probe), "reference": _input_record(reference)}
    seeds = member_seeds(seed, members)
    rule = recovery_rule(refine_steps, tolerance)
    if one_draw:
        members, jitters, seeds = 1, 1, [None] if chosen.seedless else [seed]
        rule = RefineSettings(steps=refine_steps) if refine_steps > 0 else None
    with single_thread():
        # 1. faces and decision
        photos = {}
        for role, source in (("probe", probe), ("reference", reference)):
            image = faces.load_image(source)
            photos[role] = (image, faces.find_face(image))
            if photos[role][1].note:
                notes.append(f"{role}: {photos[role][1].note}")
        crops = {role: faces.align(image, face.landmarks, recognizer.crop) for role, (image, face) in photos.items()}
        with torch.no_grad():
            z_probe, z_reference = recognizer(faces.to_tensor(np.stack([crops["probe"], crops["reference"]])))
            score = float(recognizer.similarity(z_probe[None], z_reference[None])[0])
            matches = bool(recognizer.matches(z_probe[None], z_reference[None])[0])
        threshold = recognizer.threshold
        evidence = pair_evidence(recognizer.name, score, photos, {"probe": probe, "reference": reference})
        strength = evidence.pop("decision")  # log10_lr, verbal, warnings, ...
        decision = Decision(match=matches, similarity=score, threshold=threshold.value, metric=recognizer.metric.name,
                            fmr=threshold.fmr, threshold_source=threshold.source, recognizer=recognizer.name,
                            **{**strength, "warnings": tuple(strength["warnings"])})
        lap("faces_and_decision", 0.1)

        # 2. the counterfactual ensemble
        parameters = {"attack": attack, "seed": seed, "members": members, "member_seeds": seeds,
                      "jitters": jitters, "refine_rule": describe(rule), "refine_steps": refine_steps,
                      "tolerance": tolerance, "interval": INTERVAL_METHOD, "confidence": CONFIDENCE,
                      "margin": MARGIN,
                      **({"one_draw": True} if one_draw else {})}
        (reference_image, reference_face), probe_face = photos["reference"], photos["probe"][1]
        run = chosen.run(AttackInput(recognizer, crops["probe"], probe_face.landmarks, reference_image,
                                     reference_face.landmarks, z_reference, matches, seeds, surrogate))
        results = run.members
        parameters.update(chosen.parameters, **run.parameters)
        notes += run.notes
        with torch.no_grad():
            z_members = recognizer(faces.to_tensor(np.stack([r.image for r in results])))
        # No flip, no ranking: s_a comes only from members whose saved counterfactual flips the decision.
        scored = [k for k, r in enumerate(results) if r.flipped]
        flipped = len(scored)
        largest = max(r.linf_eps for r in results) * 255
        if not scored:
            notes.append(f"no member flipped the decision within L∞ {largest:g}/255: without a counterfactual that "
                         "changes the decision there is nothing to rank, so no attribute has an s_a")
        elif flipped < len(results):
            notes.append(f"{len(results) - flipped} of {len(results)} members did not flip the decision within L∞ "
                         f"{largest:g}/255: s_a, its interval and the member counts use the {flipped} that did")
        shown = _representative(results, decision.threshold)
        lap("counterfactual", 0.45)

        # 3. recovered faces: probe and reference by the stopping rule, members from the probe's latent
        (probe_latent, probe_steps, probe_score), (reference_latent, reference_steps, reference_score) = (
            recover_one(pack, z, rule) for z in (z_probe, z_reference))
        if one_draw:  # the counterfactual's face refined alone, as the probe's
            member_latents = torch.stack([recover_one(pack, z, rule)[0] for z in z_members])
        else:
            member_latents = _member_latents(pack, probe_latent, z_probe, z_members)
        latents = torch.cat([torch.stack([probe_latent, reference_latent]), member_latents])
        with torch.no_grad():
            recovered_images = pack.decoder(latents)
            recovered_embeddings = pack.recoverer.embed_images(recovered_images)
            member_similarity = recognizer.similarity(recovered_embeddings[2:], z_members)
            # what the model makes of the recovered faces against the reference (beside the counterfactual's own
            # score): the member's face is not recovered from z_adv but moved from the probe's by T(z_adv) - T(z_p)
            to_reference = recognizer.similarity(recovered_embeddings, z_reference[None].expand(len(latents), -1))
        lap("recovery", 0.75)

        # 4. attributes of the recovered faces under jitter: rows jitter-major, faces (p, r, flipping members)
        faces_scored = recovered_images[[0, 1] + [2 + k for k in scored]]
        estimates = attributes.estimate_all(attributes.jittered_crops_from_decoder(faces_scored, pack.decoder,
                                                                                   jitters)) if scored else None
        lap("attributes", 0.95)

    identical = bool(torch.equal(z_probe, z_reference))
    unscored = "undefined" if identical else None if scored else "no_flip"
    groups, kinds, values, flags, intervals, per_member = _score_attributes(
        estimates, 2 + len(scored), jitters, "continuous" if one_draw else None, seed, unscored, notes)
    if identical:
        notes.append("probe and reference have identical embeddings (the same photo, or the model cannot tell them "
                     "apart at all): there is no probe-to-reference difference to compare a counterfactual with, so "
                     "no attribute has an s_a")
    lap("significance", 1.0)

    result = results[shown]
    gain_image, gain = _amplified(result.image, crops["probe"])
    recovered = to_uint8(recovered_images)
    images = {"probe_aligned": crops["probe"], "reference_aligned": crops["reference"], "counterfactual": result.image,
              "perturbation_amplified": gain_image, "recovered_probe": recovered[0],
              "recovered_reference": recovered[1], "recovered_counterfactual": recovered[2 + shown],
              "recovered_probe_attribute_crop": to_uint8(attributes.crops_from_decoder(recovered_images[:1],
                                                                                       pack.decoder))[0],
              **_photo_views(photos, pack.decoder)}
    notes.append(f"perturbation_amplified shows 128 + {gain} x (counterfactual - probe), per channel")
    named = [n for n in groups if groups[n] != "lbp"]
    counterfactual = CounterfactualOutcome(
        attack=result.attack, flipped=result.flipped, linf_eps=result.linf_eps, linf=result.linf, l2=result.l2,
        similarity=result.similarity, steps=result.steps, budgets_tried=result.budgets_tried,
        transferred=result.transferred, surrogate=result.surrogate, target_checks=result.target_checks,
        details=result.details, perturbation_gain=gain, shown_member=shown,
        recovered_similarity=(probe_score, reference_score, float(member_similarity[shown])),
        recovered_to_reference={"probe": float(to_reference[0]), "counterfactual": float(to_reference[2 + shown])},
        members=tuple(Member(seed=seeds[k], flipped=r.flipped, linf_eps_255=r.linf_eps * 255, l2=r.l2,
                             similarity=r.similarity, recovered_similarity=float(member_similarity[k]),
                             linf_255=r.linf_255, recovered_to_reference=float(to_reference[2 + k]))
                      for k, r in enumerate(results)))
    stability = Stability(
        members=len(results), members_flipped=flipped, jitters=jitters, refine_rule=describe(rule),
        refine_steps_taken={"probe": probe_steps, "reference": reference_steps},
        top10_agreement_between_members=_agreement(per_member, named),
        significant_members_agree={n: sum(v > 1.0 for v in (m.get(n, np.nan) for m in per_member))
                                   for n in intervals if intervals[n][0] > 1.0})
    provenance = {"inputs": inputs, "pack": pack_provenance(pack), "parameters": parameters,
                  "attributes": attributes_provenance(groups), "versions": library_versions()}
    if run.crafted_on:
        provenance["surrogates"] = [recognizer_provenance(r) for r in run.crafted_on]
    return PairExplanation(decision=decision, counterfactual=counterfactual, significance=values, groups=groups,
                           images=images, notes=notes, provenance=provenance, significance_flags=flags, kinds=kinds,
                           significance_interval=intervals, stability=stability, evidence=evidence, seconds=seconds,
                           interval_confidence=reachable_confidence(flipped, CONFIDENCE) if flipped else None)


def attributes_provenance(names) -> dict:
    """The estimator set (count and a digest of the names in order) and the fitted data files it reads."""
    from explainer import attributes
    from explainer.reports.provenance import file_sha256

    folder = Path(attributes.__file__).parent / "data"
    data = {p.name: file_sha256(p) for p in sorted(folder.glob("*")) if p.is_file()} if folder.is_dir() else {}
    return {"count": len(names), "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
            "data_sha256": data}


def clear_recovery_cache() -> None:
    """Forget cached recovered faces (benchmarks use it to time explanations from cold)."""
    _recovered.clear()
