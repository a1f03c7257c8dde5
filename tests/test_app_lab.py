"""A lab deployment with real explanations: the app launched in-process with a users file (sign-in) and its
audit log, driven by gradio_client; the same app without those settings, unchanged; and the command line's
`explain --case` under FACEXPLAIN_AUDIT_LOG. Both explanations are of one pair (the second reuses the
first's recovered faces)."""
from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainer import assets
from explainer.lab.audit import verify
from explainer.lab.config import Lab
from explainer.lab.users import Users

PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _photo(path: Path, photo: int) -> Path:
    """A held-out ORL face as a PNG of the user's own (a marker pixel: no example's bytes)."""
    pixels = np.array(Image.open(assets.path("orl") / "s36" / f"{photo}.pgm").convert("RGB"))
    pixels[0, 0] = (19, 1, 2)
    Image.fromarray(pixels).save(path)
    return path


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lab_app(app_module, tmp_path_factory):
    """The app with FACEXPLAIN_USERS_FILE set (and no FACEXPLAIN_AUDIT_LOG: the log goes beside the users
    file), built and launched as app.py does; yields (url, lab)."""
    from explainer.app.handlers import Handlers

    folder = tmp_path_factory.mktemp("lab")
    users = Users(folder / "users.json")
    users.add("alice", PASSWORD)
    users.save()
    lab = Lab.from_env({"FACEXPLAIN_USERS_FILE": str(folder / "users.json")})
    handlers = Handlers(work_dir=folder / "reports", settings=app_module.SETTINGS, audit=lab.audit)
    demo = app_module.build_demo(handlers)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(), quiet=True,
                **app_module.launch_options(demo, lab))
    yield demo.local_url, lab
    demo.close()


def _lines(lab) -> list[dict]:
    return [json.loads(line) for line in lab.audit.path.read_bytes().splitlines()]


def test_without_the_settings_the_app_is_open_and_logs_nothing(app_url, app_module):
    import httpx

    assert app_module.LAB.users is None and app_module.LAB.audit is None  # the tests run without the settings
    assert app_module.demo.handlers.audit is None and app_module.launch_options()["auth"] is None
    assert httpx.get(f"{app_url}config").status_code == 200


def test_the_pages_and_the_api_need_sign_in(lab_app, tmp_path):
    import httpx
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    url, lab = lab_app
    assert lab.audit.path.parent == lab.users.path.parent  # sign-in on: always logged
    assert httpx.get(f"{url}config").status_code == 401
    assert httpx.post(f"{url}gradio_api/call/explain", json={"data": [None, None]}).status_code == 401
    assert httpx.post(f"{url}gradio_api/upload", files={"files": ("p.png", b"x", "image/png")}).status_code == 401
    with pytest.raises(AuthenticationError, match="credentials were not provided"):
        Client(url, verbose=False, download_files=str(tmp_path))
    refusals = []
    for name, password in (("alice", "wrong password"), ("mallory", PASSWORD)):
        response = httpx.post(f"{url}login", data={"username": name, "password": password})
        refusals.append((response.status_code, response.text))
    # A wrong password and an unknown name read the same: nothing says which part was wrong.
    assert refusals[0] == refusals[1] and refusals[0][0] == 400
    assert "password" not in refusals[0][1].lower() and "user" not in refusals[0][1].lower()
    with pytest.raises(ValueError, match="Could not login"):
        Client(url, auth=("alice", "wrong password"), verbose=False, download_files=str(tmp_path))


def test_a_signed_in_explanation_is_logged_with_user_case_and_input_hashes(lab_app, tmp_path):
    from gradio_client import Client, handle_file
    from pypdf import PdfReader

    url, lab = lab_app
    probe, reference = _photo(tmp_path / "IMG_suspect.png", 2), _photo(tmp_path / "IMG_known.png", 6)
    client = Client(url, auth=("alice", PASSWORD), verbose=False, download_files=str(tmp_path / "d"))
    result = client.predict(handle_file(str(probe)), handle_file(str(reference)), case="2026-0117",
                            api_name="/explain")
    # The outputs' order is app.py's: decision, details, images, two plots, then the reports (named by
    # their file type here, so outputs added later do not move what this test reads).
    files = [Path(item) for item in result if isinstance(item, str) and Path(item).suffix in {".json", ".html", ".pdf"}]
    report_json, report_html, report_pdf = (next(f for f in files if f.suffix == s) for s in (".json", ".html", ".pdf"))
    details = result[1]
    report = json.loads(Path(report_json).read_text())
    assert report["case"] == "2026-0117" and "2026-0117" in Path(report_html).read_text()
    assert "Case: 2026-0117" in "".join(page.extract_text() for page in PdfReader(report_pdf).pages)

    (line,) = _lines(lab)
    assert (line["user"], line["case"], line["endpoint"], line["outcome"]) == ("alice", "2026-0117", "explain", "ok")
    assert line["inputs_sha256"] == {"probe": _sha256(probe), "reference": _sha256(reference)}
    assert "IMG_" not in lab.audit.path.read_text()  # no file name from the client's disk
    ((pack, decision),) = line["decisions"].items()
    assert pack == line["packs"][pack]["name"] and line["packs"][pack]["transformer_sha256"]
    assert decision["match"] == details["decision"]["match"]
    assert decision["similarity"] == pytest.approx(details["decision"]["similarity"])
    assert decision["log10_lr"] == pytest.approx(details["decision"]["log10_lr"])
    assert (line["parameters"]["attack"], line["parameters"]["seed"]) == ("pgd", 0)
    # The files the client received are the files the line names.
    assert line["reports_sha256"]["report.json"] == _sha256(report_json)
    assert line["reports_sha256"]["report.pdf"] == _sha256(report_pdf)

    # A refused case number is an analysis that ended in an error: logged too, the uploads still go.
    with pytest.raises(Exception, match="letters, digits, spaces"):
        client.predict(handle_file(str(probe)), handle_file(str(reference)), case="../../etc", api_name="/explain")
    second = _lines(lab)[1]
    assert (second["user"], second["case"], second["outcome"]) == ("alice", None, "error: InvalidCase")
    assert second["inputs_sha256"]["probe"] == _sha256(probe)
    assert not [p for p in Path(os.environ["GRADIO_TEMP_DIR"]).rglob("*")
                if p.is_file() and _sha256(p) in (_sha256(probe), _sha256(reference))]
    verdict = verify(lab.audit.path)
    assert verdict.intact and verdict.lines == 2


def test_cli_explain_with_a_case_writes_it_and_is_logged(tmp_path, monkeypatch, capsys):
    from explainer import cli
    from explainer.lab.records import os_user

    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("FACEXPLAIN_AUDIT_LOG", str(log))
    monkeypatch.delenv("FACEXPLAIN_USERS_FILE", raising=False)
    probe, reference = _photo(tmp_path / "IMG_suspect.png", 2), _photo(tmp_path / "IMG_known.png", 6)
    out = tmp_path / "out"
    assert cli.main(["explain", str(probe), str(reference), "--out", str(out), "--case", "2026-0117", "--pdf"]) == 0
    assert json.loads((out / "report.json").read_text())["case"] == "2026-0117"
    (line,) = [json.loads(x) for x in log.read_bytes().splitlines()]
    assert (line["endpoint"], line["user"], line["case"], line["outcome"]) == ("cli explain", os_user(), "2026-0117", "ok")
    assert line["inputs_sha256"] == {"probe": _sha256(probe), "reference": _sha256(reference)}
    assert line["reports_sha256"] == {name: _sha256(out / name) for name in ("report.json", "report.html", "report.pdf")}
    assert verify(log).intact
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:  # a bad case number stops at the argument, before any work
        cli.main(["explain", str(probe), str(reference), "--out", str(out), "--case", "2026/0117"])
    assert stopped.value.code == 2 and "write 2026-0117 rather than 2026/0117" in capsys.readouterr().err
    assert len(log.read_bytes().splitlines()) == 1


def test_comparisons_are_logged_with_their_packs_and_data(app_module, tmp_path, monkeypatch):
    """The compare handler, called directly on a stand-in comparison: its line names both packs with their
    weight hashes and the data set's; a refused request is logged as an error."""
    import gradio as gr

    from explainer.app import comparisons
    from explainer.app import handlers as handlers_module
    from explainer.jobs import pipeline
    from explainer.lab.audit import AuditLog

    def report(pack: str):
        return pipeline.ModelReport(
            pack=pack, data="orl", n_images=12, n_faces=12, notes=[],
            provenance={"pack": {"name": pack, "transformer_sha256": {"t.pt": pack * 2}},
                        "data": {"name": "orl", "files_sha256": "d" * 64}},
            mi={"age": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "normalised": 0.25,
                        "normalisation": "Linfoot"}},
            groups={"age": "demographic"}, kinds={"age": "continuous"})

    packs = ("dlib-dcgan", "mobilefacenet-dcgan")
    stand_in = pipeline.ModelComparison(list(packs), "orl", {p: report(p) for p in packs})
    monkeypatch.setattr(comparisons, "comparison", lambda *a, **k: stand_in)
    monkeypatch.setattr(handlers_module, "_photos_gallery", lambda data: ())
    monkeypatch.setattr(handlers_module, "_recovered_gallery", lambda pack, data: ())
    log = AuditLog(tmp_path / "audit.jsonl")
    handlers = handlers_module.Handlers(upload_folder=tmp_path / "up", work_dir=tmp_path / "work", audit=log)
    handlers.compare(*packs, "orl", case="C-7")
    with pytest.raises(gr.Error):
        handlers.compare(packs[0], packs[0], "orl")
    done, refused = [json.loads(x) for x in log.path.read_bytes().splitlines()]
    assert (done["endpoint"], done["case"], done["outcome"], done["user"]) == ("compare", "C-7", "ok", None)
    assert {p: done["packs"][p]["transformer_sha256"]["t.pt"] for p in packs} == {p: p * 2 for p in packs}
    assert done["parameters"] == {"packs": list(packs), "source": "orl", "data_sha256": "d" * 64}
    assert done["inputs_sha256"] == {}  # over a data set: no uploads
    assert refused["outcome"] == "error: FacexplainError" and verify(log.path).intact
