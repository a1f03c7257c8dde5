"""Thresholds at a false-match rate and ROC statistics, against closed forms."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from explainer.recognition.base import Metric
from explainer.recognition.calibration import auc, best_balanced_accuracy, threshold_at_fmr, verification_stats

EUCLID, COSINE = Metric("euclidean"), Metric("cosine")


@pytest.mark.parametrize("fmr", [1e-3, 1e-2, 0.1])
def test_threshold_accepts_exactly_floor_fmr_n_impostors(fmr):
    impostor = np.random.default_rng(0).uniform(0.5, 1.5, 10_000)
    t = threshold_at_fmr(impostor, fmr, EUCLID)
    assert np.sum(impostor <= t) == int(fmr * impostor.size)
    # the same scores as similarities (negated) give the mirrored threshold
    assert threshold_at_fmr(-impostor, fmr, COSINE) == pytest.approx(-t)
    assert np.sum(-impostor >= -t) == int(fmr * impostor.size)


def test_threshold_with_too_few_impostors_accepts_none():
    impostor = np.array([0.9, 1.0, 1.1])
    t = threshold_at_fmr(impostor, 1e-3, EUCLID)
    assert not np.any(impostor <= t) and t > 0.89


def test_auc_matches_gaussian_closed_form():
    rng = np.random.default_rng(1)
    genuine, impostor = rng.normal(0.4, 0.1, 4000), rng.normal(0.7, 0.1, 40_000)
    expected = norm.cdf(0.3 / (0.1 * np.sqrt(2)))  # P(impostor distance > genuine distance)
    assert auc(genuine, impostor, EUCLID) == pytest.approx(expected, abs=3e-3)
    assert auc(-genuine, -impostor, COSINE) == pytest.approx(expected, abs=3e-3)
    # balanced accuracy at the midpoint threshold is Phi(1.5) for equal variances
    assert best_balanced_accuracy(genuine, impostor, EUCLID) == pytest.approx(norm.cdf(1.5), abs=1e-2)


def test_stats_on_separable_scores():
    stats = verification_stats(np.array([0.1, 0.2]), np.array([0.8, 0.9, 1.0]), EUCLID, threshold=0.5)
    assert stats.auc == 1.0 and stats.acc_at_threshold == 1.0 and stats.best_acc == 1.0
    assert stats.tar_at_far_1e_3 == 1.0 and (stats.n_genuine, stats.n_impostor) == (2, 3)
    flipped = verification_stats(np.array([0.1, 0.2]), np.array([0.8, 0.9, 1.0]), EUCLID, threshold=0.05)
    assert flipped.acc_at_threshold == 0.5
