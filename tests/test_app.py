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
from explainer.errors import ImageError
from explainer.packs import PACKS
from explainer.verification import verify_pair

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
@pytest.fixture(scope="session")
def direct_explanation(handlers_module, examples, tmp_path_factory):
    """One explain run through the handler, on a held-out ORL impostor pair given as two uploads: the
    probe a private upload, the reference an example's bytes (public)."""
    upload_folder = tmp_path_factory.mktemp("uploads")
    probe = upload_folder / "u1" / "probe.png"
    reference = upload_folder / "u2" / "reference.png"
    for target in (probe, reference):
        target.parent.mkdir()
    # The probe as a user's own file (the example's pixels, saved again: other bytes, so not "public").
    Image.open(examples[1].probe).save(probe, format="PNG", compress_level=9)
    shutil.copy(examples[1].reference, reference)
    handlers = handlers_module.Handlers(upload_folder=upload_folder, keep_digests=digests(examples),
                                        work_dir=tmp_path_factory.mktemp("work"))
    outputs = handlers.explain({"path": str(probe)}, {"path": str(reference)})
    return outputs, probe, reference, examples[1]


def test_explain_handler_on_a_real_pair(direct_explanation, handlers_module):
    outputs, probe, reference, pair = direct_explanation
    names = list(handlers_module.EXPLAIN_IMAGES)
    assert len(outputs) == 2 + len(names) + 4
    markdown, details = outputs[:2]
    images = dict(zip(names, outputs[2:2 + len(names)]))
    significance, heatmap, report_json, report_html = outputs[2 + len(names):]
    # The decision agrees with an independent verification of the same photos by the same model.
    decision = details["decision"]
    recognizer = PACKS["dlib-dcgan"].recognizer
    check = verify_pair(pair.probe, pair.reference, models=[recognizer])[0]
    assert decision["match"] == check.match
    assert decision["similarity"] == pytest.approx(check.score, abs=1e-4)
    assert decision["threshold"] == pytest.approx(check.threshold)
    assert markdown.startswith("## Match" if decision["match"] else "## No match")
    assert f"{decision['threshold']:.3f}" in markdown and "false-match rate" in markdown
    for name, image in images.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert image.std() > 1, f"{name} is blank"
    assert isinstance(significance, go.Figure) and isinstance(heatmap, go.Figure)
    assert len(significance.data) >= 1 and len(heatmap.data) >= 1
    report = json.loads(open(report_json).read())
    assert report["decision"]["match"] == decision["match"]
    assert "<html" in open(report_html).read().lower()
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
    report_json, report_html = result[4 + len(names):]
    assert json.loads(open(report_json).read())["decision"] == details["decision"]
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
