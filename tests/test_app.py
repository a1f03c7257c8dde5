"""The app: handlers called directly on real photos, then the launched app driven through gradio_client.

The explain run is the expensive part, so each way in (direct, API) runs it once per session.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from explainer import assets
from explainer.app.examples import digests, example_pairs
from explainer.app.uploads import discard, read_photo
from explainer.core.errors import ImageError
from explainer.evidence.verification import verify_pair
from explainer.packs.catalogue import PACKS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def examples(tmp_path_factory):
    return example_pairs(tmp_path_factory.mktemp("examples"))


@pytest.fixture(scope="session")
def handlers_module(app_module):
    from explainer.app import handlers

    return handlers


# -- examples and uploads (no models) -------------------------------------------------------------------
def test_examples_are_real_genuine_and_impostor_pairs_as_png(examples):
    assert len(examples) >= 4
    labels = [p.label for p in examples]
    assert any(label.startswith("Same person") for label in labels)
    assert any(label.startswith("Different people") for label in labels)
    for pair in examples:
        for path in (pair.probe, pair.reference):
            assert path.read_bytes()[:8] == PNG_SIGNATURE
            assert read_photo(str(path), "probe photo").shape[2] == 3
    # Ground truth, from the data sets' identity labels encoded in the file names.
    orl_same, orl_diff = examples[0], examples[1]
    assert orl_same.probe.name.split("_")[0] == orl_same.reference.name.split("_")[0]
    assert orl_diff.probe.name.split("_")[0] != orl_diff.reference.name.split("_")[0]
    # Written once: a second call rewrites nothing.
    before = {p: p.stat().st_mtime_ns for pair in examples for p in (pair.probe, pair.reference)}
    again = example_pairs(examples[0].probe.parent)
    assert {p: p.stat().st_mtime_ns for pair in again for p in (pair.probe, pair.reference)} == before


def test_discard_deletes_uploads_only(tmp_path, examples):
    upload_folder = tmp_path / "gradio"
    (upload_folder / "a1").mkdir(parents=True)
    (upload_folder / "b2").mkdir()
    private = upload_folder / "a1" / "probe.png"  # a photo that is not an example
    Image.open(assets.path("orl") / "s34" / "2.pgm").save(private)
    public = upload_folder / "b2" / "reference.png"
    shutil.copy(examples[1].reference, public)
    outside = tmp_path / "evidence.png"
    shutil.copy(examples[1].probe, outside)
    keep = digests(examples)
    deleted = discard([{"path": str(private)}, str(public), outside, np.zeros((4, 4, 3), np.uint8), None],
                      upload_folder, keep)
    assert deleted == [private.resolve()]
    assert not private.exists() and not private.parent.exists()  # its own folder went too
    assert public.exists() and outside.exists()


def test_read_photo_errors_are_plain(tmp_path):
    junk = tmp_path / "notes.png"
    junk.write_text("not a picture")
    with pytest.raises(ImageError, match="The probe photo could not be used"):
        read_photo({"path": str(junk)}, "probe photo")
    with pytest.raises(ImageError, match="No reference photo was given"):
        read_photo(None, "reference photo")
    with pytest.raises(ImageError, match="upload it again"):
        read_photo(str(tmp_path / "gone.png"), "probe photo")


# -- handlers called directly on a real pair -------------------------------------------------------------
def _two_faces(left: Path, right: Path) -> Image.Image:
    """A picture with two people: `left` enlarged 1.5x (the largest face), `right` as it is."""
    big = Image.open(left).convert("RGB")
    big = big.resize((big.width * 3 // 2, big.height * 3 // 2), Image.BICUBIC)
    small = Image.open(right).convert("RGB")
    canvas = Image.new("RGB", (big.width + small.width + 40, big.height + 20), (128, 128, 128))
    canvas.paste(big, (10, 10))
    canvas.paste(small, (big.width + 30, 40))
    return canvas


@pytest.fixture(scope="session")
def direct_explanation(handlers_module, examples, tmp_path_factory):
    """One explain run through the handler on held-out ORL people, given as two uploads: the probe a
    private picture with two faces (s31, enlarged, and s35), the reference an example's bytes (public)."""
    upload_folder = tmp_path_factory.mktemp("uploads")
    probe = upload_folder / "u1" / "probe.png"
    reference = upload_folder / "u2" / "reference.png"
    for target in (probe, reference):
        target.parent.mkdir()
    orl = assets.path("orl")
    _two_faces(orl / "s31" / "1.pgm", orl / "s35" / "3.pgm").save(probe)
    shutil.copy(examples[1].reference, reference)
    probe_copy = tmp_path_factory.mktemp("kept") / "probe.png"
    shutil.copy(probe, probe_copy)  # the uploaded picture is deleted by the handler; the check needs it
    handlers = handlers_module.Handlers(upload_folder=upload_folder, keep_digests=digests(examples),
                                        work_dir=tmp_path_factory.mktemp("work"))
    with pytest.warns(UserWarning, match="2 faces found"):  # gr.Warning, outside a running app
        outputs = handlers.explain({"path": str(probe)}, {"path": str(reference)})
    return outputs, probe, reference, probe_copy


def test_explain_handler_on_a_real_pair(direct_explanation, handlers_module):
    outputs, probe, reference, probe_copy = direct_explanation
    names, sliders = list(handlers_module.EXPLAIN_IMAGES), handlers_module.SLIDERS
    assert len(outputs) == 2 + len(names) + 4 + 4 + 1 + len(sliders) + 1
    markdown, details = outputs[:2]
    images = dict(zip(names, outputs[2:2 + len(names)]))
    significance, heatmap, report_json, report_html = outputs[2 + len(names):6 + len(names)]
    evidence, tippett, ece, report_pdf = outputs[6 + len(names):10 + len(names)]
    in_short, *pairs, trust = outputs[10 + len(names):]
    # Under the recovered faces: the second model (dlib's pack: MobileFaceNet) on each, with its verdict.
    assert trust.count("\n- *") == 3 and "mobilefacenet scores it" in trust
    assert all(word in trust for word in ("threshold", "lower = more alike"))
    # The decision agrees with an independent verification of the same photos by the same model.
    decision = details["decision"]
    check = verify_pair(probe_copy, reference, models=[PACKS["dlib-dcgan"].recognizer])[0]
    assert decision["match"] == check.match
    assert decision["similarity"] == pytest.approx(check.score, abs=1e-4)
    assert decision["threshold"] == pytest.approx(check.threshold)
    assert markdown.startswith("## Match" if decision["match"] else "## No match")
    assert f"{decision['threshold']:.3f}" in markdown and "false-match rate" in markdown
    # Several faces: the investigator is told which one was used.
    assert "2 faces found; used the largest (left of centre)" in markdown
    gain = details["counterfactual"]["perturbation_gain"]
    assert f"amplified ×{gain}" in markdown
    for name, image in images.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert image.std() > 1, f"{name} is blank"
    # The counterfactual is a small change of the aligned probe, and the amplified image shows exactly it.
    delta = images["counterfactual"].astype(int) - images["probe_aligned"].astype(int)
    # The text states the measured change of the saved image, which stays within the (whole-level) budget.
    linf = details["counterfactual"]["linf_255"]
    assert np.abs(delta).max() == linf > 0 and linf <= round(details["counterfactual"]["linf_eps"] * 255)
    assert f"at most {linf}/255" in markdown
    # The recovered counterfactual face is said for what it is, with the model's score of it to the reference.
    moved = details["counterfactual"]["recovered_to_reference"]
    assert "T(z_cf) − T(z_probe)" in markdown and f"scores it {moved['counterfactual']:.3f} against the reference" in markdown
    assert np.array_equal(images["perturbation_amplified"], np.clip(128 + gain * delta, 0, 255).astype(np.uint8))
    # The s_a chart has a bar for every named attribute that could be measured (which ones can depends on
    # the recovered faces), and says so when none could; the LBP map always has its 7x7 cells.
    assert isinstance(significance, go.Figure) and isinstance(heatmap, go.Figure)
    charted = [row[0] for trace in significance.data if trace.type == "bar" for row in trace.customdata]
    assert set(details["top_attributes"]) <= set(charted)
    if not charted:
        assert "measured on these recovered" in significance.layout.annotations[-1].text
    assert np.asarray(heatmap.data[-1].z).shape == (7, 7)
    # The summary comes first in the page, in three sentences with no identifiers in them.
    assert in_short.startswith("### In short") and in_short.count(". ") >= 2
    assert ("**match**" if decision["match"] else "**no match**") in in_short
    assert not any(f" {name} " in in_short for name in details["top_attributes"] if "_" in name)
    # Each slider pairs two pictures of one frame: photo and recovered face, probe and counterfactual.
    for (left, right), (left_name, right_name, _) in zip(pairs, sliders.values()):
        assert left.shape == right.shape and left.dtype == right.dtype == np.uint8, (left_name, right_name)
    assert np.array_equal(pairs[2][1], images["counterfactual"]) and np.array_equal(pairs[0][1], images["recovered_probe"])
    report = json.loads(open(report_json).read())
    assert report["decision"]["match"] == decision["match"]
    assert report["decision"]["similarity"] == pytest.approx(decision["similarity"], abs=1e-5)
    assert "<html" in open(report_html).read().lower()
    # The evidence accordion: the LR in words, each attribute's FISWG component, the calibration's plots, the PDF.
    assert f"log10 LR = {report['decision']['log10_lr']:+.2f}" in evidence and "FISWG component" in evidence
    assert report["decision"]["verbal"] in evidence
    assert isinstance(tippett, go.Figure) and isinstance(ece, go.Figure) and len(tippett.data) == 2
    assert open(report_pdf, "rb").read(5) == b"%PDF-"
    # The private upload is gone; the example's bytes stay (they are public and may be clicked again).
    assert not probe.exists() and reference.exists()


def test_explain_handler_errors_are_plain_and_uploads_still_go(handlers_module, tmp_path):
    import gradio as gr

    blank = tmp_path / "u" / "wall.png"
    blank.parent.mkdir()
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    reference = assets.path("orl") / "s31" / "1.pgm"
    handlers = handlers_module.Handlers(upload_folder=tmp_path, work_dir=tmp_path / "work")
    with pytest.raises(gr.Error) as caught:
        handlers.explain({"path": str(blank)}, str(reference))
    assert "No face was found" in caught.value.message and caught.value.title == "No face found"
    assert not blank.exists() and reference.exists()


def test_compare_handler_on_the_uploaded_pair(handlers_module, examples, tmp_path):
    pair = examples[0]  # the same held-out person twice
    handlers = handlers_module.Handlers(upload_folder=tmp_path, work_dir=tmp_path / "work")
    reading, figure, gallery = handlers.compare("dlib-dcgan", "mobilefacenet-dcgan", "pair",
                                                str(pair.probe), str(pair.reference))
    decisions = {}
    for pack in ("dlib-dcgan", "mobilefacenet-dcgan"):
        check = verify_pair(pair.probe, pair.reference, models=[PACKS[pack].recognizer])[0]
        decisions[pack] = check.match
        assert f"`{pack}`: **{'match' if check.match else 'no match'}**" in reading
    assert ("agree" if len(set(decisions.values())) == 1 else "**disagree**") in reading.splitlines()[0]
    assert [trace.name for trace in figure.data] == ["dlib-dcgan", "mobilefacenet-dcgan"]
    captions = [caption for _, caption in gallery]
    assert len(gallery) == 6 and sum(c.startswith("dlib-dcgan:") for c in captions) == 3
    assert all(image.dtype == np.uint8 and image.std() > 1 for image, _ in gallery)


def test_comparison_is_computed_once_then_read_back(handlers_module, tmp_path):
    from explainer.app import comparisons
    from explainer.reports import comparison_figure

    photos = tmp_path / "photos"  # 12 photos of four held-out people: the fewest MI is estimated on
    photos.mkdir()
    for subject in (31, 32, 33, 34):
        for photo in (1, 4, 8):
            Image.open(assets.path("orl") / f"s{subject}" / f"{photo}.pgm").save(photos / f"s{subject}_{photo}.png")
    packs = ("dlib-dcgan", "mobilefacenet-dcgan")
    cache = tmp_path / "cache"
    first = comparisons.comparison(packs, str(photos), folder=cache)
    stored = list(cache.glob("*.json"))
    assert len(stored) == 1
    comparisons._MEMORY.clear()
    again = comparisons.comparison(packs, str(photos), folder=cache)  # from disk: no recomputation
    assert again is not first and again.to_json() == first.to_json()
    assert list(cache.glob("*.json")) == stored
    reading = handlers_module.read_differences(again)
    assert reading.startswith("Over 12 faces") and all(f"`{p}`" in reading for p in packs)
    assert [trace.name for trace in comparison_figure(again).data] == list(packs)
    # Another seed is another result, under another key.
    assert comparisons.cache_key(packs, str(photos), 1) != stored[0].stem


def test_progress_names_the_stage_and_the_time_left_once_known():
    from explainer.app.progress import SHOWN, StageReporter, StageTimes

    assert SHOWN == ("finding faces", "counterfactuals", "recovery", "attributes", "reports")
    times, shown = StageTimes(), []
    key = ("dlib-dcgan", "pgd")
    reporter = StageReporter(lambda fraction, desc: shown.append((fraction, desc)), times, key)
    reporter(0.1, "faces_and_decision")
    assert shown[0][1].startswith("Stage 1 of 5: finding faces") and "known after a first run" in shown[0][1]
    assert shown[1][1].startswith("Stage 2 of 5: counterfactuals")
    # After one run, the time left is the sum of the stages still to come.
    seconds = {"faces_and_decision": 1.0, "counterfactual": 4.0, "recovery": 3.0, "attributes": 1.5, "significance": 0.5}
    times.record(key, {**seconds, "reports": 2.0})
    fraction, text = times.describe(key, "counterfactual")
    assert text == "Stage 3 of 5: recovery, about 7 s left" and fraction == pytest.approx(5 / 12)
    assert times.describe(key, "significance")[1] == "Stage 5 of 5: reports, about 2 s left"
    assert times.describe(("dlib-dcgan", "transfer"), None)[0] is None  # another attack: not known yet
    times.record(key, {**seconds, "counterfactual": 14.0, "reports": 2.0})  # a moving average
    assert times.typical(key)["counterfactual"] == pytest.approx(0.7 * 4.0 + 0.3 * 14.0)


# -- the launched app through gradio_client --------------------------------------------------------------
@pytest.fixture(scope="session")
def client(app_url, tmp_path_factory):
    from gradio_client import Client

    return Client(app_url, verbose=False, download_files=str(tmp_path_factory.mktemp("client")))


def test_api_explain_takes_probe_and_reference_first_and_the_rest_is_optional(client):
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/explain"]
    parameters = info["parameters"]
    assert [p["parameter_name"] for p in parameters[:2]] == ["probe", "reference"]
    assert not any(p["parameter_has_default"] for p in parameters[:2])
    assert all(p["parameter_has_default"] for p in parameters[2:])


def test_api_explain_on_a_real_pair_keeps_no_upload(client, handlers_module, tmp_path):
    import hashlib
    import os

    from gradio_client import handle_file

    # A genuine pair of a held-out person, as a user's own files (not examples).
    photos = []
    for photo in (2, 5):
        path = tmp_path / f"person_{photo}.png"
        Image.open(assets.path("orl") / "s38" / f"{photo}.pgm").save(path)
        photos.append(path)
    result = client.predict(handle_file(str(photos[0])), handle_file(str(photos[1])), api_name="/explain")
    names = list(handlers_module.EXPLAIN_IMAGES)
    markdown, details = result[:2]
    assert markdown.startswith("## Match" if details["decision"]["match"] else "## No match")
    check = verify_pair(photos[0], photos[1], models=[PACKS["dlib-dcgan"].recognizer])[0]
    assert details["decision"]["match"] == check.match
    assert details["decision"]["similarity"] == pytest.approx(check.score, abs=1e-4)
    for path in result[2:2 + len(names)]:
        assert open(path, "rb").read(8) == PNG_SIGNATURE  # lossless, as the UI shows them
    for plot in result[2 + len(names):4 + len(names)]:
        assert plot["type"] == "plotly"
        assert json.loads(plot["plot"])["data"]
    report_json, report_html = result[4 + len(names):6 + len(names)]
    evidence, tippett, ece, report_pdf = result[6 + len(names):10 + len(names)]
    in_short, *sliders, trust = result[10 + len(names):]
    assert in_short.startswith("### In short") and len(sliders) == len(handlers_module.SLIDERS)
    for pair in sliders:  # each slider: two lossless pictures
        assert all(open(path, "rb").read(8) == PNG_SIGNATURE for path in pair), pair
    assert "mobilefacenet scores it" in trust
    assert "likelihood ratio" in evidence.lower() and tippett["type"] == ece["type"] == "plotly"
    assert report_pdf.endswith(".pdf")
    report = json.loads(open(report_json).read())
    assert report["decision"]["match"] == details["decision"]["match"]
    assert report["decision"]["similarity"] == pytest.approx(details["decision"]["similarity"], abs=1e-5)
    assert report_html.endswith(".html")
    # Neither upload is left on the server once the request is over.
    uploaded = {hashlib.sha256(p.read_bytes()).hexdigest() for p in photos}
    left = [p for p in Path(os.environ["GRADIO_TEMP_DIR"]).rglob("*") if p.is_file()
            and hashlib.sha256(p.read_bytes()).hexdigest() in uploaded]
    assert not left, left


def test_compare_tab_lists_both_default_packs(client):
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/compare"]
    for parameter in info["parameters"][:2]:
        choices = parameter["type"]["enum"]
        assert set(PACKS) <= set(choices), choices


def test_both_tabs_offer_the_users_pack_on_disk(client):
    from conftest import USER_PACK

    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    pack_parameters = [endpoints["/explain"]["parameters"][2], *endpoints["/compare"]["parameters"][:2]]
    for parameter in pack_parameters:
        assert USER_PACK in parameter["type"]["enum"], parameter


def test_a_pack_made_while_the_app_runs_is_offered_at_the_next_page_load(app_module):
    from pack_helpers import ready_pack

    from explainer.app.handlers import fresh_pack_dropdowns

    demo = app_module.demo
    loads = [f for f in demo.fns.values() if f.fn is fresh_pack_dropdowns]
    assert len(loads) == 1 and [t[1] for t in loads[0].targets] == ["load"]
    dropdowns = {c.elem_id: c for c in demo.blocks.values() if isinstance(c, app_module.gr.Dropdown)}
    assert {o._id for o in loads[0].outputs} == {dropdowns[k]._id for k in ("pack", "pack-a", "pack-b")}
    assert "made-while-running" not in [value for _, value in dropdowns["pack"].choices]
    ready_pack("made-while-running")  # `facexplain pack create` while the app is up
    for dropdown in fresh_pack_dropdowns():
        assert "made-while-running" in [value for _, value in dropdown.choices]


def test_served_privately(app_url, app_module, tmp_path):
    import os

    import httpx

    from explainer.faces.image_io import MAX_FILE_BYTES

    assert app_module.demo.analytics_enabled is False
    assert httpx.get(f"{app_url}monitoring").status_code == 403  # monitoring off
    big = tmp_path / "big.png"
    with open(big, "wb") as handle:
        handle.write(PNG_SIGNATURE)
        handle.truncate(MAX_FILE_BYTES + 1)
    with open(big, "rb") as handle:
        response = httpx.post(f"{app_url}gradio_api/upload", files={"files": ("big.png", handle, "image/png")},
                              timeout=60)
    assert response.status_code == 413, response.text
    assert not [p for p in Path(os.environ["GRADIO_TEMP_DIR"]).rglob("*") if p.is_file()
                and p.stat().st_size > MAX_FILE_BYTES]


def test_readme_gradio_client_example_runs(app_url, examples, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = readme.split("Scripting it with")[1].split("```python\n")[1].split("```")[0]
    pair = examples[3]  # colour portraits of two held-out people
    snippet = (snippet.replace("http://127.0.0.1:7860/", app_url)
               .replace('"probe.jpg"', repr(str(pair.probe))).replace('"reference.jpg"', repr(str(pair.reference))))
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert set(namespace["details"]["decision"]) >= {"match", "similarity", "threshold", "metric", "fmr"}
    assert namespace["decision_md"].startswith(("## Match", "## No match"))
    assert namespace["summary_md"].startswith("### In short")
    assert open(namespace["recovered_counterfactual"], "rb").read(8) == PNG_SIGNATURE
    assert "'match'" in capsys.readouterr().out
