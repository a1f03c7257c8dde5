"""End-to-end explanations and model analysis on real ORL photos, and the validity checks:
MI(a, a) = H(a), a shuffled pairing carries ~0, and a randomised recognizer ranks other attributes
(Adebayo et al.'s model-randomisation test; for `analyze`, measured against the identity null, see
tests/test_mi_planted.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from explainer import assets, attributes
from explainer.assets import datasets
from explainer.bench.stability import named_top
from explainer.cli import main
from explainer.core.errors import NoFaceError
from explainer.jobs.analysis import _codes
from explainer.jobs.pipeline import ExplanationError, analyze_model, explain_pair, randomised_pack
from explainer.measures import entropy_miller_madow, mutual_information


def orl(path: str) -> str:
    return str(assets.path("orl") / path)


PROGRESS: list[tuple[float, str]] = []


@pytest.fixture(scope="module")
def genuine_explanation():
    return explain_pair(orl("s31/1.pgm"), orl("s31/6.pgm"), pack="dlib-dcgan", attack="pgd", seed=0,
                        progress=lambda fraction, stage: PROGRESS.append((fraction, stage)))


def test_progress_is_reported_by_stage(genuine_explanation):
    fractions = [f for f, _ in PROGRESS]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [s for _, s in PROGRESS] == ["faces_and_decision", "counterfactual", "recovery", "attributes", "significance"]


def test_explain_flips_a_genuine_pair_and_scores_every_attribute(genuine_explanation):
    expl = genuine_explanation
    assert expl.decision["match"] and expl.decision["recognizer"] == "dlib-resnet"
    c = expl.counterfactual
    assert c["flipped"] and c["similarity"] > expl.decision["threshold"] and 0 < c["linf_eps"] <= 32 / 255
    names = [e.name for e in attributes.estimators()]
    assert len(names) == attributes.n_attributes() and list(expl.groups) == names
    # every attribute has an s_a with its interval, or an explicit reason why not
    for name in names:
        missing = expl.significance_flags.get(name) in ("undefined", "invalid")
        assert (expl.significance[name] is None) == missing == (name not in expl.significance_interval), name
        if not missing:
            low, high = expl.significance_interval[name]
            assert low <= expl.significance[name] <= high, name
    assert set(expl.significance_flags.values()) <= {"floored", "undefined", "invalid"}
    assert len(expl.scored) >= 49  # at least as many as the texture cells
    # significant: intervals wholly above 1, ranked by their lower bound
    lows = [expl.significance_interval[n][0] for n in expl.significant]
    assert all(low > 1 for low in lows) and lows == sorted(lows, reverse=True)
    st = expl.stability
    assert st["members"] == 5 and st["members_flipped"] == 5 and len(c["members"]) == 5
    assert len({m["seed"] for m in c["members"]}) == 5 and "until the loss falls" in st["refine_rule"]
    assert set(expl.images) >= {"probe_aligned", "reference_aligned", "counterfactual", "perturbation_amplified",
                                "recovered_probe", "recovered_reference", "recovered_counterfactual"}
    assert all(im.dtype == np.uint8 and im.ndim == 3 for im in expl.images.values())
    assert expl.provenance["inputs"]["probe"]["sha256"] != expl.provenance["inputs"]["reference"]["sha256"]
    assert expl.provenance["pack"]["transformer_sha256"]


def test_cli_explain_writes_byte_identical_report_json(genuine_explanation, tmp_path, capsys):
    assert main(["explain", orl("s31/1.pgm"), orl("s31/6.pgm"), "--pack", "dlib-dcgan", "--attack", "pgd",
                 "--out", str(tmp_path)]) == 0
    written = (tmp_path / "report.json").read_bytes()
    assert written == genuine_explanation.to_json().encode()  # a second, independent run: same bytes
    payload = json.loads(written)
    assert {"match", "similarity", "threshold", "metric"} <= set(payload["decision"])
    assert {"flipped", "linf_eps", "l2", "similarity"} <= set(payload["counterfactual"])
    assert len(payload["significance"]) == attributes.n_attributes() and "seconds" not in payload
    assert {"significance_interval", "stability", "significant", "unresolved"} <= set(payload)
    for name in payload["images"].values():
        assert (tmp_path / name).is_file()
    assert (tmp_path / "report.html").stat().st_size > 1_000_000 and (tmp_path / "timings.json").is_file()
    assert "flipped" in capsys.readouterr().out


def test_transfer_explanation_reports_whether_it_transferred():
    expl = explain_pair(orl("s33/2.pgm"), orl("s33/7.pgm"), attack="transfer")
    c = expl.counterfactual
    assert c["attack"] == "transfer" and c["surrogate"] == "mobilefacenet"
    assert c["transferred"] is True and c["flipped"] is True  # the member shown is one that transferred
    assert expl.stability["members"] == 3 and len({m["seed"] for m in c["members"]}) == 3
    assert expl.provenance["surrogate"]["name"] == "mobilefacenet"
    assert any("transferred" in note for note in expl.notes)


def test_placebo_identical_photos_give_no_ranking():
    expl = explain_pair(orl("s32/4.pgm"), orl("s32/4.pgm"), members=2, jitters=1)
    assert expl.decision["match"] and expl.decision["similarity"] == 0.0
    assert expl.scored == [] and expl.significant == [] and expl.significance_interval == {}
    assert all(v is None for v in expl.significance.values())
    assert set(expl.significance_flags.values()) == {"undefined"}
    assert any(note.startswith("probe and reference have identical embeddings") for note in expl.notes)


def test_placebo_randomised_recognizer_ranks_other_attributes(genuine_explanation):
    # Same pair, same decoder and transformer, the recognizer's weights redrawn: an explanation that reads
    # the model shares at most 3 of its top 10 named attributes with the trained model's.
    random = explain_pair(orl("s31/1.pgm"), orl("s31/6.pgm"), pack=randomised_pack("dlib-dcgan", seed=0))
    trained_top, random_top = named_top(genuine_explanation), named_top(random)
    assert len(trained_top) == 10
    assert len(set(trained_top) & set(random_top)) <= 3, (trained_top, random_top)


def test_bad_inputs_fail_clearly():
    with pytest.raises(ExplanationError, match="unknown attack"):
        explain_pair(orl("s31/1.pgm"), orl("s31/6.pgm"), attack="fgsm")
    with pytest.raises(NoFaceError):
        explain_pair(np.full((200, 200, 3), 128, np.uint8), orl("s31/6.pgm"))
    with pytest.raises(ExplanationError, match="unknown data"):
        analyze_model("dlib-dcgan", data="no-such-set")


def test_mutual_information_of_real_attributes_with_themselves_and_shuffled():
    crops = attributes.crops_from_photos([s.path for s in datasets.orl(datasets.ORL_TEST)][::3])
    values = attributes.estimate_all(crops)
    expression, valid = values["expression"]
    codes = _codes(expression[valid])
    assert mutual_information(codes, codes, "categorical").value == pytest.approx(entropy_miller_madow(codes), abs=1e-12)
    pose, valid = values["head_pose"]
    pose = pose[valid]
    shuffled = np.random.default_rng(0).permutation(pose)
    estimate = mutual_information(pose, shuffled, "continuous", n_boot=100)
    assert estimate.ci_low <= 0.0 <= estimate.ci_high
    assert mutual_information(pose, pose + 0.01 * np.random.default_rng(1).standard_normal(pose.shape),
                              "continuous").ci_low > 1.0
