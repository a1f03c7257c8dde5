"""The transformer trainer: a tiny CPU run end to end, and its output loads as a pack's transformer."""
from __future__ import annotations

import json

import pytest
import torch

from explainer.packs import catalogue as packs
from training.__main__ import main
from training.configs import get_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    assert main(["transformer", "--config", "cpu-tiny", "--out", str(out), "--steps", "3"]) == 0
    return out


def test_tiny_run_logs_every_loss(tiny_run):
    records = [json.loads(line) for line in (tiny_run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        for term in ("identity", "reconstruction", "perceptual", "guide", "regularisation", "lightness"):
            assert record[term] >= 0 and torch.isfinite(torch.tensor(record[term]))


def test_output_is_a_pack_transformer(tiny_run, monkeypatch):
    monkeypatch.setattr(packs, "TRANSFORMERS_DIR", tiny_run)
    (tiny_run / "transformer.pt").rename(tiny_run / "dlib-dcgan.pt")
    packs.load_pack.cache_clear()
    pack = packs.load_pack("dlib-dcgan")
    assert pack.card["command"] == "python -m training transformer --config cpu-tiny"
    assert pack.card["data"]["real_identities"] > 1
    recovery = pack.recover(torch.randn(2, 128))
    assert recovery.images.shape == (2, 3, 64, 64)
    packs.load_pack.cache_clear()


def test_overrides_are_typed():
    config = get_config("offline-dlib").override(steps=10, **{"weights.identity": 4.0})
    assert config.steps == 10 and config.weights.identity == 4.0 and config.weights.guide == 0.1
    with pytest.raises(SystemExit, match="unknown config field"):
        main(["transformer", "--config", "cpu-tiny", "--out", "/tmp/unused", "--no-such-field", "1"])
