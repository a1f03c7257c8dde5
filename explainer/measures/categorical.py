"""Entropy and mutual information of categorical variables: plug-in with the Miller-Madow correction.

The plug-in entropy of N samples over m occupied bins underestimates H by about (m - 1) / (2N)
(Miller 1955); adding that term back is the Miller-Madow estimator. I(X; Y) = H(X) + H(Y) - H(X, Y),
each term corrected, so the first-order biases cancel and independent variables give I ≈ 0 (the
corrected value can be slightly negative; it is reported as it is). All in nats.
"""
from __future__ import annotations

import numpy as np


def as_labels(values: np.ndarray) -> np.ndarray:
    """Integer codes [N] of categorical values: [N] or [N, dim] (each distinct row is one category)."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"categorical values must be [N] or [N, dim], got shape {values.shape}")
    _, codes = np.unique(values, axis=0, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def entropy_miller_madow(labels: np.ndarray) -> float:
    """H(X) in nats from integer labels [N], Miller-Madow corrected."""
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    if n == 0:
        raise ValueError("entropy of an empty sample is undefined")
    counts = np.bincount(labels - labels.min())
    counts = counts[counts > 0]
    p = counts / n
    return float(-(p * np.log(p)).sum() + (len(counts) - 1) / (2 * n))


def _joint_labels(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return x.astype(np.int64) * (int(y.max()) + 1) + y.astype(np.int64)


def mutual_information_categorical(x: np.ndarray, y: np.ndarray) -> float:
    """I(X; Y) in nats of two categorical variables (values [N] or [N, dim] each), Miller-Madow."""
    x, y = as_labels(x), as_labels(y)
    if len(x) != len(y):
        raise ValueError(f"x and y need the same number of samples, got {len(x)} and {len(y)}")
    return entropy_miller_madow(x) + entropy_miller_madow(y) - entropy_miller_madow(_joint_labels(x, y))
