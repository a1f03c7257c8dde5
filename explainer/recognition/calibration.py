"""Decision thresholds and verification statistics from genuine and impostor scores.

Scores follow the recognizer's metric: distances (lower = same person) or cosines (higher = same).
Internally everything is turned into "closeness" (higher = same) so one code path serves both.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from explainer.recognition.base import Metric, Threshold

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
CALIBRATION_FMR = 1e-3


def _closeness(scores: np.ndarray, metric: Metric) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    return scores if metric.higher_is_closer else -scores


def threshold_at_fmr(impostor_scores: np.ndarray, fmr: float, metric: Metric) -> float:
    """The loosest threshold whose false-match rate on these impostors is at most `fmr`.

    It lies halfway between the k-th and (k+1)-th closest impostor, k = floor(fmr * n), so exactly k
    impostors are accepted (ties aside).
    """
    close = np.sort(_closeness(impostor_scores, metric))[::-1]
    if close.size == 0:
        raise ValueError("no impostor scores to calibrate on")
    k = int(np.floor(fmr * close.size))
    if k == 0:
        value = np.nextafter(close[0], np.inf)
    elif k >= close.size:
        value = close[-1]
    else:
        value = (close[k - 1] + close[k]) / 2
    return float(value if metric.higher_is_closer else -value)


def auc(genuine: np.ndarray, impostor: np.ndarray, metric: Metric) -> float:
    """Area under the ROC curve: P(a genuine pair is closer than an impostor pair), ties count half."""
    g, i = _closeness(genuine, metric), _closeness(impostor, metric)
    ranks = rankdata(np.concatenate([g, i]))
    return float((ranks[: g.size].sum() - g.size * (g.size + 1) / 2) / (g.size * i.size))


def best_balanced_accuracy(genuine: np.ndarray, impostor: np.ndarray, metric: Metric) -> float:
    """The best mean of TAR and TRR over all thresholds: what LFW-style accuracies report (optimistic)."""
    g, i = np.sort(_closeness(genuine, metric)), np.sort(_closeness(impostor, metric))
    candidates = np.concatenate([g, i, [np.inf]])
    tar = 1 - np.searchsorted(g, candidates, side="left") / g.size  # accepted: closeness >= t
    trr = np.searchsorted(i, candidates, side="left") / i.size
    return float(np.max((tar + trr) / 2))


@dataclass(frozen=True)
class VerificationStats:
    auc: float
    acc_at_threshold: float  # balanced accuracy (mean of TAR and TRR) at `threshold`
    best_acc: float
    tar_at_far_1e_2: float
    tar_at_far_1e_3: float
    threshold: float
    n_genuine: int
    n_impostor: int

    def as_json(self) -> dict:
        return {"auc": self.auc, "acc_at_threshold": self.acc_at_threshold, "best_acc": self.best_acc,
                "tar_at_far_1e-2": self.tar_at_far_1e_2, "tar_at_far_1e-3": self.tar_at_far_1e_3,
                "threshold": self.threshold, "n_genuine": self.n_genuine, "n_impostor": self.n_impostor}


def verification_stats(genuine: np.ndarray, impostor: np.ndarray, metric: Metric,
                       threshold: float) -> VerificationStats:
    genuine, impostor = np.asarray(genuine), np.asarray(impostor)

    def tar_at(far: float) -> float:
        return float(np.mean(metric.accepts(genuine, threshold_at_fmr(impostor, far, metric))))

    tar = float(np.mean(metric.accepts(genuine, threshold)))
    trr = 1 - float(np.mean(metric.accepts(impostor, threshold)))
    return VerificationStats(
        auc=auc(genuine, impostor, metric), acc_at_threshold=(tar + trr) / 2,
        best_acc=best_balanced_accuracy(genuine, impostor, metric),
        tar_at_far_1e_2=tar_at(1e-2), tar_at_far_1e_3=tar_at(1e-3), threshold=float(threshold),
        n_genuine=int(genuine.size), n_impostor=int(impostor.size))


def load_calibrated(name: str) -> Threshold | None:
    """The committed FMR-1e-3 threshold of recognizer `name`, if it has been calibrated."""
    if not CALIBRATION_FILE.is_file():
        return None
    entry = json.loads(CALIBRATION_FILE.read_text()).get(name)
    if entry is None:
        return None
    return Threshold(entry["threshold"], entry["fmr"], entry["source"])


def save_calibrated(name: str, threshold: float, n_impostor: int, data: str) -> Threshold:
    table = json.loads(CALIBRATION_FILE.read_text()) if CALIBRATION_FILE.is_file() else {}
    source = f"FMR {CALIBRATION_FMR:g} on {n_impostor} real impostor pairs ({data})"
    table[name] = {"threshold": round(threshold, 6), "fmr": CALIBRATION_FMR, "n_impostor": n_impostor,
                   "source": source, "command": "facexplain bench verify --calibrate"}
    CALIBRATION_FILE.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    return Threshold(table[name]["threshold"], CALIBRATION_FMR, source)
