"""k-nearest-neighbour mutual information for continuous (1-D or multi-D) and mixed variables.

KSG (Kraskov, Stögbauer & Grassberger 2004, their first estimator), continuous X and Y:
    I = ψ(k) + ψ(N) - < ψ(n_x + 1) + ψ(n_y + 1) >
with ε_i the max-norm distance from point i to its k-th neighbour in the joint space and n_x, n_y the
numbers of other points strictly closer than ε_i in the X and Y marginals.

Ross (2014), continuous X and categorical Y:
    I = ψ(N) - < ψ(N_y) > + ψ(k) - < ψ(m) >
with d_i the distance to the k-th neighbour among the points of i's own class (N_y of them) and m_i the
number of other points, of any class, within d_i.

Both are means of per-point terms; the terms themselves are returned too, so a bootstrap can resample
them (resampling the points instead would create exact duplicates, distance-0 neighbours that inflate
any k-NN estimate). Each variable is scaled to unit standard deviation per column, and a deterministic
jitter of 1e-10 breaks ties (Kraskov et al. recommend a low-intensity noise for discrete-valued data).

Up to BRUTE_FORCE_MAX points, distances come from full max-norm distance matrices instead of k-d trees:
the same numbers (|difference| maxed over columns, the same strict and inclusive counts), several times
faster for the small samples a bootstrap draws, where building three trees per estimate dominated.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma

JITTER = 1e-10
BRUTE_FORCE_MAX = 1000  # points; an [N, N] float64 matrix per variable (8 MB at the limit)


def standardise(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Columns scaled to unit standard deviation, plus the tie-breaking jitter (drawn from `rng`)."""
    values = np.asarray(values, np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"continuous values must be [N] or [N, dim], got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("continuous values contain NaN or infinity")
    scale = values.std(axis=0)
    scale[scale == 0] = 1.0  # a constant column carries no information; leave it constant
    values = (values - values.mean(axis=0)) / scale
    return values + JITTER * rng.standard_normal(values.shape)


def max_norm_distances(points: np.ndarray) -> np.ndarray:
    """[N, N] max-norm distances between the rows of `points` [N, dim]."""
    out = np.abs(points[:, None, 0] - points[None, :, 0])
    for column in range(1, points.shape[1]):
        np.maximum(out, np.abs(points[:, None, column] - points[None, :, column]), out=out)
    return out


def _count_within(points: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Number of other points strictly closer than `radius[i]` to point i (max-norm)."""
    tree = cKDTree(points)
    strictly = np.nextafter(radius, 0)  # query_ball_point counts distance <= r
    return tree.query_ball_point(points, strictly, p=np.inf, return_length=True) - 1


def ksg_terms(x: np.ndarray, y: np.ndarray, k: int = 3, seed: int = 0) -> np.ndarray:
    """Per-point KSG terms [N] (their mean is I(X; Y) in nats)."""
    rng = np.random.default_rng(seed)
    x, y = standardise(x, rng), standardise(y, rng)
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y need the same number of samples, got {n} and {len(y)}")
    if n <= k:
        raise ValueError(f"KSG with k={k} needs more than {k} samples, got {n}")
    if n <= BRUTE_FORCE_MAX:
        return ksg_terms_from_distances(max_norm_distances(x), max_norm_distances(y), k)
    joint = np.hstack([x, y])
    distances, _ = cKDTree(joint).query(joint, k=k + 1, p=np.inf)  # neighbour 0 is the point itself
    radius = distances[:, k]
    n_x, n_y = _count_within(x, radius), _count_within(y, radius)
    return digamma(k) + digamma(n) - digamma(n_x + 1) - digamma(n_y + 1)


def ksg_terms_from_distances(d_x: np.ndarray, d_y: np.ndarray, k: int = 3) -> np.ndarray:
    """Per-point KSG terms from max-norm distance matrices [..., N, N] of X and Y (leading axes: a batch,
    e.g. permutations of Y; explainer.measures.permutation reuses the matrices that way)."""
    n = d_x.shape[-1]
    radius = np.partition(np.maximum(d_x, d_y), k, axis=-1)[..., k]  # position 0: the point itself
    n_x = (d_x < radius[..., None]).sum(-1) - 1
    n_y = (d_y < radius[..., None]).sum(-1) - 1
    return digamma(k) + digamma(n) - digamma(n_x + 1) - digamma(n_y + 1)


def mutual_information_ksg(x: np.ndarray, y: np.ndarray, k: int = 3, seed: int = 0) -> float:
    """I(X; Y) in nats of continuous X [N] / [N, dx] and Y [N] / [N, dy] (KSG estimator 1)."""
    return float(ksg_terms(x, y, k, seed).mean())


def mixed_terms(x: np.ndarray, labels: np.ndarray, k: int = 3, seed: int = 0) -> np.ndarray:
    """Per-point Ross terms [M] for continuous X and integer labels; points whose class has no more than
    k members are left out (they have no k-th neighbour of their own class), so M <= N."""
    rng = np.random.default_rng(seed)
    x = standardise(x, rng)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(x):
        raise ValueError(f"x and labels need the same number of samples, got {len(x)} and {len(labels)}")
    classes, counts = np.unique(labels, return_counts=True)
    keep = np.isin(labels, classes[counts > k])
    if keep.sum() <= k:
        raise ValueError(f"no class has more than k={k} samples; the mixed estimator needs more data")
    x, labels = x[keep], labels[keep]
    radius = np.empty(len(x))
    class_size = np.empty(len(x))
    matrix = max_norm_distances(x) if len(x) <= BRUTE_FORCE_MAX else None
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if matrix is not None:
            radius[members] = np.partition(matrix[np.ix_(members, members)], k, axis=1)[:, k]
        else:
            distances, _ = cKDTree(x[members]).query(x[members], k=k + 1, p=np.inf)
            radius[members] = distances[:, k]
        class_size[members] = len(members)
    # Points of any class within the radius (inclusive, as Ross counts the k neighbours themselves).
    if matrix is not None:
        m = (matrix <= radius[:, None]).sum(1) - 1
    else:
        m = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True) - 1
    return digamma(len(x)) - digamma(class_size) + digamma(k) - digamma(m)


def mutual_information_mixed(x: np.ndarray, labels: np.ndarray, k: int = 3, seed: int = 0) -> float:
    """I(X; Y) in nats of continuous X and categorical Y (integer labels), Ross (2014)."""
    return float(mixed_terms(x, labels, k, seed).mean())
