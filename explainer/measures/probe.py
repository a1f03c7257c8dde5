"""A linear read-out of an embedding: what a probe recovers of an attribute from the embedding alone.

    probe = fit_probe(z_train, a_train, kind)   fitted on training people only
    a_probe = probe.predict(z_test)             the read-out, comparable with a recovered face's â

continuous   ridge regression of the attribute (all its columns) on the standardised embedding, its
             strength chosen among ALPHAS by efficient leave-one-out (sklearn's RidgeCV, GCV)
categorical  multinomial logistic regression on the standardised embedding (C = LOGISTIC_C); a training
             set with one class gives that class for every face

A recovered face can show at most what the embedding holds, so I(a; probe) beside I(a; â) says how much
of the embedding's information the decoder loses. Generic: any embeddings, any attribute arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
LOGISTIC_C = 1.0
KINDS = ("continuous", "categorical")


@dataclass(frozen=True)
class LinearProbe:
    kind: str
    mean: np.ndarray  # of the training embeddings, per column
    scale: np.ndarray  # their standard deviation (1 where constant)
    model: object  # a fitted sklearn estimator, or None for a single-class training set
    constant: int | None  # that class
    n_train: int

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """The read-out of each embedding [N, D]: attribute values [N, dim] (continuous) or labels [N]."""
        z = (np.asarray(embeddings, np.float64) - self.mean) / self.scale
        if self.model is None:
            return np.full(len(z), self.constant, np.int64)
        prediction = self.model.predict(z)
        return prediction.reshape(len(z), -1) if self.kind == "continuous" else prediction.astype(np.int64)

    @property
    def alpha(self) -> float | None:
        """The ridge strength chosen (continuous probes)."""
        return float(self.model.alpha_) if self.kind == "continuous" else None


def fit_probe(embeddings: np.ndarray, values: np.ndarray, kind: str) -> LinearProbe:
    """A probe from training embeddings [N, D] and their attribute values ([N] or [N, dim]; integer labels
    [N] for categorical attributes). All finite: leave invalid estimates out before fitting."""
    from sklearn.linear_model import LogisticRegression, RidgeCV

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    z = np.asarray(embeddings, np.float64)
    values = np.asarray(values)
    if len(z) != len(values) or len(z) < 2:
        raise ValueError(f"a probe needs at least 2 paired samples, got {len(z)} embeddings and {len(values)} values")
    if not (np.isfinite(z).all() and (kind == "categorical" or np.isfinite(values).all())):
        raise ValueError("embeddings or attribute values contain NaN or infinity")
    mean, scale = z.mean(0), z.std(0)
    scale[scale == 0] = 1.0
    z = (z - mean) / scale
    if kind == "categorical":
        labels = values.reshape(-1).astype(np.int64)
        if len(np.unique(labels)) < 2:
            return LinearProbe(kind, mean, scale, None, int(labels[0]), len(z))
        model = LogisticRegression(C=LOGISTIC_C, max_iter=2000).fit(z, labels)
        return LinearProbe(kind, mean, scale, model, None, len(z))
    model = RidgeCV(alphas=ALPHAS).fit(z, values.reshape(len(z), -1).astype(np.float64))
    return LinearProbe(kind, mean, scale, model, None, len(z))
