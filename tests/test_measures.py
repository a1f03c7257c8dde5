"""Mutual-information estimators and s_a against closed forms and known distributions."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from explainer.measures import (entropy_miller_madow, linfoot, mutual_information, mutual_information_categorical,
                                mutual_information_ksg, mutual_information_mixed)


def gaussian_pair(rho: float, n: int, dims: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x, y [n, dims]: component j of (x, y) is a standard bivariate normal with correlation rho."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dims))
    y = rho * x + math.sqrt(1 - rho ** 2) * rng.standard_normal((n, dims))
    return x, y


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_ksg_matches_correlated_gaussians(rho):
    x, y = gaussian_pair(rho, 2000, seed=1)
    truth = -0.5 * math.log(1 - rho ** 2)
    estimate = mutual_information(x, y, "continuous", n_boot=100)
    # KSG's sampling sd at N = 2000 is about 0.02 nats; 95 % intervals cover the truth 93-95 % of the
    # time in a 40-seed check (N = 600-1000).
    assert estimate.value == pytest.approx(truth, abs=0.06)
    assert estimate.ci_low < estimate.value < estimate.ci_high
    assert estimate.ci_low <= truth <= estimate.ci_high
    # Linfoot's coefficient recovers |rho| for a Gaussian pair.
    assert estimate.normalised == pytest.approx(rho, abs=0.1 if rho < 0.5 else 0.04)


def test_ksg_multidimensional_gaussians_add_up():
    x, y = gaussian_pair(0.7, 2000, dims=3, seed=2)
    truth = 3 * -0.5 * math.log(1 - 0.7 ** 2)  # independent components: the informations add
    # KSG underestimates strong dependence in higher dimensions (Kraskov et al., Fig. 4): within 15 %.
    assert mutual_information_ksg(x, y) == pytest.approx(truth, rel=0.15)
    assert mutual_information_ksg(x, y) > 3 * mutual_information_ksg(x[:, :1], y[:, :1]) * 0.8


def test_ksg_is_invariant_to_a_monotone_reparametrisation():
    x, y = gaussian_pair(0.8, 1500, seed=3)
    # Exactly invariant in theory; in a finite sample the neighbourhoods change, so within ~2 sd.
    assert mutual_information_ksg(np.exp(x), y ** 3) == pytest.approx(mutual_information_ksg(x, y), abs=0.08)


def test_known_discrete_distribution():
    joint = np.array([[0.4, 0.1], [0.1, 0.4]])
    px, py = joint.sum(1), joint.sum(0)
    truth = float((joint * np.log(joint / np.outer(px, py))).sum())
    rng = np.random.default_rng(4)
    cells = rng.choice(4, size=5000, p=joint.ravel())
    x, y = cells // 2, cells % 2
    estimate = mutual_information(x, y, "categorical")
    assert estimate.value == pytest.approx(truth, abs=0.015)
    assert estimate.ci_low <= truth <= estimate.ci_high
    assert estimate.entropy == pytest.approx(math.log(2), abs=0.01)


def test_miller_madow_corrects_the_plugin_bias():
    # Uniform over 20 symbols, 100 samples: the plug-in entropy falls short of log 20 by ~(m-1)/2N.
    rng = np.random.default_rng(5)
    plugin_errors, corrected_errors = [], []
    for _ in range(50):
        labels = rng.integers(0, 20, 100)
        p = np.bincount(labels) / 100
        p = p[p > 0]
        plugin_errors.append(-(p * np.log(p)).sum() - math.log(20))
        corrected_errors.append(entropy_miller_madow(labels) - math.log(20))
    assert abs(np.mean(corrected_errors)) < abs(np.mean(plugin_errors)) / 3


def test_mutual_information_with_itself_is_the_entropy():
    rng = np.random.default_rng(6)
    a = rng.choice(5, size=400, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    estimate = mutual_information(a, a, "categorical")
    assert estimate.value == pytest.approx(entropy_miller_madow(a), abs=1e-12)
    assert estimate.normalised == pytest.approx(1.0)
    # multi-column categorical values: each distinct row is a category
    rows = np.stack([a % 2, a // 2], axis=1)
    assert mutual_information_categorical(rows, rows) == pytest.approx(entropy_miller_madow(a), abs=1e-12)


@pytest.mark.parametrize("kind", ["categorical", "continuous"])
def test_independent_and_shuffled_variables_carry_about_nothing(kind):
    rng = np.random.default_rng(7)
    if kind == "categorical":
        a = rng.integers(0, 4, 600)
        b = rng.integers(0, 3, 600)
        dependent = (a + (rng.random(600) < 0.2)) % 4
    else:
        a, dependent = gaussian_pair(0.8, 600, dims=2, seed=8)
        b = rng.standard_normal((600, 2))
    for other in (b, rng.permutation(dependent)):
        estimate = mutual_information(a, other, kind, n_boot=100, seed=1)
        assert estimate.ci_low <= 0.0 <= estimate.ci_high
        assert abs(estimate.value) < 0.1  # about 3 sampling sd at N = 600
    assert mutual_information(a, dependent, kind, n_boot=100).ci_low > 0.3  # the same variables, not shuffled


def test_mixed_estimator_matches_a_gaussian_mixture():
    # Y uniform on {0, 1}; X | Y ~ N(±1, 1). I = h(X) - h(X|Y), h(X) by quadrature.
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 2, 3000)
    x = rng.standard_normal(3000) + np.where(labels == 1, 1.0, -1.0)

    def density(t):
        return 0.5 * (stats.norm.pdf(t, -1) + stats.norm.pdf(t, 1))

    h_x, _ = integrate.quad(lambda t: -density(t) * math.log(density(t)), -12, 12)
    truth = h_x - 0.5 * math.log(2 * math.pi * math.e)
    assert mutual_information_mixed(x, labels) == pytest.approx(truth, abs=0.03)
    estimate = mutual_information(x, labels, "mixed")
    assert estimate.ci_low - 0.03 <= truth <= estimate.ci_high + 0.03


def test_estimates_are_deterministic_for_a_seed():
    x, y = gaussian_pair(0.5, 300, seed=10)
    assert mutual_information(x, y, "continuous", seed=3) == mutual_information(x, y, "continuous", seed=3)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same number"):
        mutual_information(np.zeros(5), np.zeros(6), "continuous")
    with pytest.raises(ValueError, match="unknown kind"):
        mutual_information(np.zeros(5), np.zeros(5), "ordinal")
    with pytest.raises(ValueError, match="NaN"):
        mutual_information_ksg(np.array([0.0, np.nan, 1, 2, 3]), np.arange(5.0))
    with pytest.raises(ValueError, match="more than"):
        mutual_information_ksg(np.arange(3.0), np.arange(3.0), k=3)


def test_linfoot_is_bounded():
    assert linfoot(0.0) == 0.0 and linfoot(-0.1) == 0.0
    assert 0.99 < linfoot(5.0) < 1.0


def test_resolution_hides_differences_far_below_it():
    rng = np.random.default_rng(11)
    a = rng.standard_normal(400)
    faint = 1e-3 * (a + 0.3 * rng.standard_normal(400))  # strongly dependent, but a thousand times smaller
    assert mutual_information(a, faint, "continuous", n_boot=50).value > 0.8  # scale-free by default
    blurred = mutual_information(a, faint, "continuous", n_boot=50, resolution=0.05)
    assert blurred.ci_low <= 0.0 <= blurred.ci_high
    strong = mutual_information(a, a + 0.3 * rng.standard_normal(400), "continuous", n_boot=50, resolution=0.05)
    assert strong.value > 0.8


def test_knn_distance_matrices_give_the_k_d_tree_terms_exactly(monkeypatch):
    """Small samples use full distance matrices, large ones k-d trees: the same terms, bit for bit."""
    from explainer.measures import knn

    rng = np.random.default_rng(7)
    for n, dim in ((40, 1), (60, 9), (120, 40)):
        x = rng.standard_normal((n, dim))
        x[:6] = np.round(x[:6])  # ties, broken only by the jitter
        y = x[:, :3] + 0.5 * rng.standard_normal((n, 3))
        labels = rng.integers(0, 3, n)
        monkeypatch.setattr(knn, "BRUTE_FORCE_MAX", 10_000)
        matrix = knn.ksg_terms(x, y), knn.mixed_terms(x, labels)
        monkeypatch.setattr(knn, "BRUTE_FORCE_MAX", 0)
        tree = knn.ksg_terms(x, y), knn.mixed_terms(x, labels)
        assert np.array_equal(matrix[0], tree[0]) and np.array_equal(matrix[1], tree[1])
