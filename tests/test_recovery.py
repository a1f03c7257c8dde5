"""Recovery machinery: the Recoverer (feed-forward + refinement) and packs, on real ORL embeddings."""
from __future__ import annotations

import pytest
import torch

from explainer.assets import datasets
from explainer.evidence.verification import embed, prepare
from explainer.generation import LatentTransformer, TransformerConfig
from explainer.generation.recoverer import Recoverer, RefineSettings
from explainer.generation.recovery_rule import RECOVERY_RULE
from explainer.packs import catalogue as packs
from explainer.recognition.registry import load_recognizer


@pytest.fixture(scope="module")
def recoverer() -> Recoverer:
    torch.manual_seed(0)
    decoder = packs.load_decoder("dcgan-digiface")
    # Untrained on purpose: refinement must work from any starting point.
    transformer = LatentTransformer(TransformerConfig(128, 1, 100, tanh=False), decoder.mean_latent).eval()
    return Recoverer(load_recognizer("dlib-resnet"), transformer, decoder)


@pytest.fixture(scope="module")
def targets(recoverer) -> torch.Tensor:
    samples = [s for s in datasets.orl(datasets.ORL_TEST) if s.path.stem == "1"][:4]
    return embed(recoverer.recognizer, [prepare(s.path) for s in samples])


def test_refinement_brings_recovered_faces_to_the_identity(recoverer, targets):
    feed_forward = recoverer.recover(targets)
    refined = recoverer.recover(targets, RefineSettings(steps=20))
    assert refined.images.shape == (4, 3, 64, 64) and 0 <= refined.images.min() and refined.images.max() <= 1
    assert (refined.similarity < feed_forward.similarity).all()  # Euclidean: lower is closer
    assert refined.similarity.mean() < recoverer.recognizer.upstream_threshold.value
    assert isinstance(refined.seconds, float) and refined.seconds > 0
    again = recoverer.recover(targets, RefineSettings(steps=20))
    assert torch.equal(again.images, refined.images)  # deterministic


def test_a_recovery_does_not_depend_on_its_batch(recoverer, targets):
    together = recoverer.recover(targets[:2], RefineSettings(steps=5)).latents
    alone = torch.cat([recoverer.recover(targets[k:k + 1], RefineSettings(steps=5)).latents for k in range(2)])
    assert torch.equal(together, alone)
    feed_forward = recoverer.recover(targets[:3]).images
    torch.testing.assert_close(recoverer.recover(targets[1:2]).images, feed_forward[1:2], rtol=0, atol=1e-5)


def test_mismatched_parts_are_refused(recoverer):
    wrong = LatentTransformer(TransformerConfig(192, 1, 100))
    with pytest.raises(ValueError, match="128-D"):
        Recoverer(recoverer.recognizer, wrong, recoverer.decoder)


def test_transformer_checkpoint_round_trip(tmp_path, recoverer, targets):
    path = tmp_path / "t.pt"
    packs.save_transformer(path, recoverer.transformer, {"data": "none (test)"})
    loaded, card = packs.load_transformer(path, recoverer.decoder.mean_latent)
    assert card == {"data": "none (test)"}
    torch.testing.assert_close(loaded(targets), recoverer.transformer(targets), rtol=0, atol=0)


def test_missing_pack_names_the_training_command(monkeypatch, tmp_path):
    monkeypatch.setattr(packs, "TRANSFORMERS_DIR", tmp_path)
    packs.load_pack.cache_clear()
    with pytest.raises(packs.PackMissing, match="--config offline-mobilefacenet"):
        packs.load_pack("mobilefacenet-dcgan")
    with pytest.raises(KeyError, match="known"):
        packs.load_pack("no-such-pack")


def test_committed_default_pack_recovers_a_held_out_face():
    packs.load_pack.cache_clear()
    pack = packs.load_pack()
    assert pack.name == packs.DEFAULT_PACK and pack.card["command"].endswith("--config offline-dlib")
    target = pack.embed([datasets.orl(datasets.ORL_TEST)[0].path])
    refined = pack.recover(target, RECOVERY_RULE)  # the app's recovery
    assert pack.recognizer.metric.accepts(float(refined.similarity[0]), pack.recognizer.threshold.value)


def test_refinement_can_start_from_the_nearest_bank_sample(recoverer, targets):
    import dataclasses

    from explainer.generation.recoverer import StartBank

    latents = recoverer.decoder.sample_latents(6, torch.Generator().manual_seed(3))
    with torch.no_grad():
        bank = recoverer.embed_images(recoverer.decoder(latents))
    rule = RefineSettings(steps=1, start="nearest")
    with pytest.raises(ValueError, match="no start bank"):
        recoverer.recover(bank[:1], rule)
    recoverer.start_bank = StartBank(latents, bank)
    try:
        # a bank sample's own embedding finds that sample; one step moves it only a little
        found = recoverer.start_bank.nearest(recoverer.recognizer, bank[[4, 1]])
        assert torch.equal(found, latents[[4, 1]])
        started = recoverer.recover(bank[4:5], rule).latents
        assert (started - latents[4]).abs().max() <= rule.lr + 1e-6  # Adam's first step is at most lr per entry
        with pytest.raises(ValueError, match="unknown refinement start"):
            recoverer.recover(targets[:1], dataclasses.replace(rule, start="elsewhere"))
        assert "from the nearest bank sample" in dataclasses.replace(rule, anchor_weight=1.0).describe()
    finally:
        recoverer.start_bank = None
