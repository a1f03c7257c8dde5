"""Attribute fidelity's measures (explainer.packs.attribute_fidelity) on small synthetic data with known
answers; the block's place in `bench recover` is checked in test_bench_recover."""
from __future__ import annotations

import numpy as np
import pytest

from explainer.packs import attribute_fidelity as af


def test_the_measured_attributes_are_the_papers_nine_and_two_more():
    assert af.ATTRIBUTES[:9] == ("shape", "expression", "head_pose", "skin_color", "hair_color", "age", "glasses",
                                 "hat", "earrings")
    assert af.ATTRIBUTES[9:] == ("skin_tone_ita", "expression_3dmm") and set(af.TARGETS) <= set(af.ATTRIBUTES)


def test_labels_threshold_one_column_and_take_the_largest_of_several():
    assert af.labels(np.array([[0.2], [0.5], [0.9]])).tolist() == [0, 1, 1]
    assert af.labels(np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])).tolist() == [1, 0]


def test_pearson_r_is_averaged_over_dimensions_and_constant_dimensions_are_left_out():
    rng = np.random.default_rng(0)
    photo = rng.normal(size=(50, 3))
    made = np.stack([photo[:, 0], -photo[:, 1], np.full(50, 2.0)], 1)  # r = +1, -1, undefined
    assert af.agreement("continuous", photo, made) == pytest.approx(0.0, abs=1e-12)
    assert af.agreement("continuous", photo[:, :1], photo[:, :1] * 3 + 1) == pytest.approx(1.0)
    assert af.agreement("continuous", photo[:, :1], np.ones((50, 1))) is None


def test_balanced_accuracy_weighs_each_class_of_the_photos_equally():
    photo = np.array([0] * 8 + [1] * 2)
    always_zero = np.zeros(10, np.int64)
    assert af.agreement("categorical", photo, always_zero) == pytest.approx(0.5)  # chance, not 0.8
    assert af.agreement("categorical", photo, photo) == pytest.approx(1.0)


def test_interval_brackets_the_value_and_needs_enough_faces():
    rng = np.random.default_rng(1)
    photo = rng.normal(size=(80, 1))
    made = photo + rng.normal(size=(80, 1))  # true r = 1 / sqrt(2)
    entry = af.with_interval("continuous", photo, made)
    assert entry["n"] == 80 and entry["low"] < entry["value"] < entry["high"]
    assert entry["low"] < 1 / np.sqrt(2) < entry["high"]
    assert af.with_interval("continuous", photo[:3], made[:3])["value"] is None


def test_the_probe_reads_a_linear_attribute_and_a_linear_class_from_held_out_embeddings():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(300, 16))
    weights = rng.normal(size=(16, 2))
    attribute = z @ weights + 0.3 * rng.normal(size=(300, 2))
    predicted = af.probe_predictions("continuous", z[:200], attribute[:200], z[200:])
    assert af.agreement("continuous", attribute[200:], predicted) > 0.9
    noise = rng.normal(size=(300, 2))  # unrelated to the embedding: the probe must not find it
    assert abs(af.agreement("continuous", noise[200:], af.probe_predictions("continuous", z[:200], noise[:200],
                                                                             z[200:]))) < 0.3
    probability = 1 / (1 + np.exp(-3 * z[:, :1]))
    classes = af.probe_predictions("categorical", z[:200], probability[:200], z[200:])
    assert af.agreement("categorical", af.labels(probability[200:]), classes) > 0.8
    assert af.probe_predictions("categorical", z[:200], np.zeros((200, 1)), z[200:]) is None  # one class
