"""Our ArcFace alignment against insightface's reference implementation (`face_align`)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from insightface.utils import face_align  # installed by `make setup` with --no-deps (see Makefile)

from explainer import faces
from explainer.recognition.base import ARCFACE_112


@pytest.fixture(scope="module")
def found(real_photos):
    return [faces.find_face(photo) for photo in real_photos]


def test_similarity_transform_equals_insightface(found):
    template = np.array(ARCFACE_112.template)
    for face in found:
        points = face.landmarks.arcface5.astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # skimage's estimate() deprecation, inside insightface
            theirs = face_align.estimate_norm(points, 112)
        ours = faces.similarity_transform(face.landmarks.arcface5, template)
        scale = np.hypot(*theirs[0, :2])
        np.testing.assert_allclose(ours[:, :2], theirs[:, :2], atol=1e-5 * scale)
        np.testing.assert_allclose(ours[:, 2], theirs[:, 2], atol=1e-3)  # pixels


def test_crops_equal_insightface_where_no_shrinking_is_needed(real_photos, found):
    """On ORL faces (enlarged into the crop) both are one bilinear warp: the pixels agree."""
    orl = [(p, f) for p, f in zip(real_photos, found) if p.shape[:2] == (112, 92)]
    assert len(orl) == 8
    for photo, face in orl:
        ours = faces.align(photo, face.landmarks, ARCFACE_112).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            theirs = face_align.norm_crop(photo, face.landmarks.arcface5.astype(np.float32), 112).astype(int)
        inside = theirs.sum(axis=2) > 0  # insightface fills outside the photo with black too
        assert np.abs(ours - theirs)[inside].mean() < 0.5
