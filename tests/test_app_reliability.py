"""The app under load and faults: shared uploads, overload, limits, crash recovery, damaged cache, fetch.

Timings are never asserted here (they are `facexplain bench app`'s); these tests check outcomes.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainer import assets
from explainer.app.settings import AppSettings
from explainer.app.uploads import UploadLedger, read_photo
from explainer.core.errors import ImageError

ROOT = Path(__file__).resolve().parents[1]


def _private_photo(path: Path, person: str = "s37", photo: int = 3, marker: int = 0) -> Path:
    """A held-out ORL face as a PNG whose bytes are no example's (a marker pixel)."""
    pixels = np.array(Image.open(assets.path("orl") / person / f"{photo}.pgm").convert("RGB"))
    pixels[0, 0] = (marker, 1, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _uploaded(folder: Path, name: str, source: Path) -> Path:
    """`source` as Gradio stores an upload: <folder>/<sha256>/<name>."""
    target = folder / hashlib.sha256(source.read_bytes()).hexdigest() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return target


# -- the upload ledger (no models) ---------------------------------------------------------------------
def test_a_shared_upload_stays_until_its_last_request_ends(tmp_path):
    uploads = tmp_path / "gradio"
    shared = _uploaded(uploads, "probe.png", _private_photo(tmp_path / "probe.png"))
    ledger = UploadLedger(uploads)
    ledger.uploaded([str(shared)] * 3)  # three clients sent the same photo: one file
    ledger.hold([{"path": str(shared)}])  # two of them are accepted into the queue
    ledger.hold([{"path": str(shared)}])
    assert ledger.release([{"path": str(shared)}]) == [] and shared.exists()
    assert ledger.release([{"path": str(shared)}]) == [] and shared.exists()  # the third has not asked yet
    ledger.hold([str(shared)])
    assert ledger.release([str(shared)]) == [shared.resolve()]
    assert not shared.exists() and not shared.parent.exists()
    # The same file as probe and reference of one request: one claim each, deleted once both are let go.
    again = _uploaded(uploads, "same.png", tmp_path / "probe.png")
    ledger.uploaded([str(again), str(again)])
    ledger.hold([str(again), str(again)])
    assert ledger.release([str(again), str(again)]) == [again.resolve()]


def test_unclaimed_or_expired_uploads_go_at_once(tmp_path):
    uploads = tmp_path / "gradio"
    photo = _private_photo(tmp_path / "probe.png")
    direct = _uploaded(uploads, "a.png", photo)
    assert UploadLedger(uploads).release([str(direct)]) == [direct.resolve()]  # a direct call, as before
    # Claims older than max_age_s are orphans (a client that left the queue): they no longer keep a file.
    orphaned = _uploaded(uploads, "b.png", photo)
    ledger = UploadLedger(uploads, max_age_s=0.0)
    ledger.uploaded([str(orphaned)] * 2)
    ledger.hold([str(orphaned)])
    assert ledger.claims(str(orphaned)) == 0
    assert ledger.release([str(orphaned)]) == [orphaned.resolve()]


# -- settings and limits -----------------------------------------------------------------------------
def test_settings_come_from_the_environment_and_are_checked():
    settings = AppSettings.from_env({"FACEXPLAIN_QUEUE_SIZE": "5", "FACEXPLAIN_CPU_SECONDS": "2.5",
                                     "FACEXPLAIN_MAX_PIXELS": "1000", "FACEXPLAIN_APP_STATE": "/tmp/x"})
    assert (settings.queue_size, settings.cpu_seconds, settings.max_pixels) == (5, 2.5, 1000)
    assert settings.state_dir == Path("/tmp/x") and settings.concurrency == AppSettings().concurrency
    with pytest.raises(ValueError, match="max_pixels"):
        AppSettings(max_pixels=10**12)
    with pytest.raises(ValueError):
        AppSettings(queue_size=0)


def test_cpu_limit_stops_work_with_a_plain_error():
    from explainer.app.limits import CpuTimeExceeded, cpu_limit

    with pytest.raises(CpuTimeExceeded, match="limit for one request is 0.05 s"):
        with cpu_limit(0.05) as check:
            while True:  # checked between stages, as the pipeline's progress reports do
                sum(range(10_000))
                check()
    # Work that never checks is stopped by force (past twice the limit), even through code that
    # swallows ordinary exceptions.
    with pytest.raises(CpuTimeExceeded, match="limit for one request is 0.05 s"):
        with cpu_limit(0.05):
            while True:
                try:
                    sum(range(10_000))
                except Exception:  # noqa: BLE001
                    pass
    with cpu_limit(60):  # work within the limit is untouched
        assert sum(range(10)) == 45


def test_photo_above_the_pixel_limit_is_refused_plainly(tmp_path):
    photo = _private_photo(tmp_path / "p.png")
    with pytest.raises(ImageError, match="at most 10,000 pixels"):
        read_photo(str(photo), "probe photo", max_pixels=10_000)
    assert read_photo(str(photo), "probe photo", max_pixels=92 * 112).shape == (112, 92, 3)


# -- handlers: limits, overload, atomic reports (direct calls) ----------------------------------------
@pytest.fixture()
def handlers_module(app_module):
    from explainer.app import handlers

    return handlers


def test_explanation_past_the_cpu_limit_is_a_plain_error_and_uploads_go(handlers_module, tmp_path):
    import gradio as gr

    probe = _uploaded(tmp_path / "up", "p.png", _private_photo(tmp_path / "p.png"))
    reference = _uploaded(tmp_path / "up", "r.png", _private_photo(tmp_path / "r.png", photo=8))
    handlers = handlers_module.Handlers(upload_folder=tmp_path / "up", work_dir=tmp_path / "work",
                                        settings=AppSettings(cpu_seconds=0.01))
    with pytest.raises(gr.Error) as caught:
        handlers.explain({"path": str(probe)}, {"path": str(reference)})
    assert caught.value.title == "Took too long" and "limit for one request is 0.01 s" in caught.value.message
    assert not probe.exists() and not reference.exists()
    assert not list((tmp_path / "work").glob("report-*"))


def test_a_full_queue_says_how_long_and_to_retry_and_keeps_nothing(handlers_module, tmp_path):
    probe = _uploaded(tmp_path / "up", "p.png", _private_photo(tmp_path / "p.png"))
    shared = _uploaded(tmp_path / "up", "r.png", _private_photo(tmp_path / "r.png", photo=8))
    handlers = handlers_module.Handlers(upload_folder=tmp_path / "up", work_dir=tmp_path / "work",
                                        settings=AppSettings(queue_size=3), waiting=lambda: 3)
    handlers.uploads.hold([str(shared)])  # another request, accepted earlier, uses the reference too
    verdict = handlers.admit_explain({"path": str(probe)}, {"path": str(shared)})
    assert verdict[0]["is_valid"] is False and all(v["is_valid"] for v in verdict[1:])
    assert "The app is busy: 3 requests are already waiting" in verdict[0]["message"]
    assert "please try again in" in verdict[0]["message"]
    assert not probe.exists() and shared.exists()  # the refused request's own upload went at once
    handlers.waiting = lambda: 2
    assert all(v["is_valid"] for v in handlers.admit_explain(str(shared), str(shared)))


def test_a_report_appears_only_once_complete(handlers_module, tmp_path):
    class CrashingExplanation:  # save() dies half-way, as a crash (or a full disk) would stop it
        def save(self, folder):
            (Path(folder) / "report.json").write_text('{"decision": ')
            raise OSError("No space left on device")

    handlers = handlers_module.Handlers(upload_folder=tmp_path / "up", work_dir=tmp_path / "work")
    with pytest.raises(OSError):
        handlers._save_report(CrashingExplanation())
    assert list((tmp_path / "work").iterdir()) == []


# -- the launched app, through gradio_client ------------------------------------------------------------
def test_clients_sending_the_same_photos_at_once_are_all_served(app_url, tmp_path):
    """The race of issue 18: identical uploads share one file, and the first request's clean-up used to
    delete it under the others ("no longer on the server")."""
    from gradio_client import Client, handle_file

    probe = _private_photo(tmp_path / "probe.png", "s39", 2, marker=18)
    reference = _private_photo(tmp_path / "reference.png", "s39", 7, marker=18)
    jobs = [Client(app_url, verbose=False, download_files=str(tmp_path / f"d{k}")).submit(
        handle_file(str(probe)), handle_file(str(reference)), api_name="/explain") for k in range(3)]
    results = [job.result(timeout=600) for job in jobs]
    assert [r[1]["decision"]["match"] for r in results] == [results[0][1]["decision"]["match"]] * 3
    sent = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (probe, reference)}
    left = [p for p in Path(os.environ["GRADIO_TEMP_DIR"]).rglob("*")
            if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() in sent]
    assert not left, left


def test_overload_is_told_plainly_not_queue_full(app_url, app_module, tmp_path, monkeypatch):
    from gradio_client import Client, handle_file

    photo = _private_photo(tmp_path / "p.png", marker=99)
    monkeypatch.setattr(app_module.demo.handlers, "waiting", lambda: 10_000)
    client = Client(app_url, verbose=False, download_files=str(tmp_path / "d"))
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(photo)), handle_file(str(photo)), api_name="/explain")
    message = str(caught.value)
    assert "The app is busy: 10000 requests are already waiting" in message and "try again" in message
    assert "Queue is full" not in message
    sent = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert not [p for p in Path(os.environ["GRADIO_TEMP_DIR"]).rglob("*")
                if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == sent]


# -- crash recovery: a real app process killed mid-explanation ------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_app(state: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}  # uploads in the run folder
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), FACEXPLAIN_APP_STATE=str(state),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _wait_up(url: str, process: subprocess.Popen, log: Path) -> None:
    from explainer.bench.app import BenchError, wait_ready

    try:
        wait_ready(url, process, time.monotonic() + 300)
    except BenchError as error:
        pytest.fail(f"{error}: " + log.read_text()[-3000:])


def test_app_killed_mid_explanation_restarts_clean_and_serves(tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    state = tmp_path / "state"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    probe = _private_photo(tmp_path / "probe.png", "s32", 4, marker=7)
    reference = _private_photo(tmp_path / "reference.png", "s32", 9, marker=7)
    first = _start_app(state, port, tmp_path / "first.log")
    try:
        _wait_up(url, first, tmp_path / "first.log")
        job = Client(url, verbose=False, download_files=str(tmp_path / "d1")).submit(
            handle_file(str(probe)), handle_file(str(reference)), api_name="/explain")
        while job.status().code not in (Status.PROCESSING, Status.PROGRESS, Status.FINISHED):
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    (crashed,) = [p for p in state.glob("run-*") if p.is_dir()]
    sent = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (probe, reference)}
    assert any(hashlib.sha256(p.read_bytes()).hexdigest() in sent for p in crashed.rglob("*") if p.is_file())

    second = _start_app(state, port, tmp_path / "second.log")
    try:
        _wait_up(url, second, tmp_path / "second.log")
        assert not crashed.exists()  # the killed run's folder, its uploads with it, went at start
        result = Client(url, verbose=False, download_files=str(tmp_path / "d2")).predict(
            handle_file(str(probe)), handle_file(str(reference)), api_name="/explain")
        assert result[1]["decision"]["match"] in (True, False)
        (live,) = [p for p in state.glob("run-*") if p.is_dir()]
        reports = list((live / "reports").iterdir())
        assert reports and all(r.name.startswith("report-") and (r / "report.html").is_file() for r in reports)
    finally:
        second.send_signal(signal.SIGTERM)  # a clean stop removes the run folder too
        second.wait(timeout=60)
    assert not [p for p in state.glob("run-*")]


def test_start_sweeps_only_dead_runs(tmp_path):
    from explainer.app.workspace import Workspace

    live = Workspace(tmp_path)
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys; sys.path.insert(0, sys.argv[1]);"
        "from explainer.app.workspace import Workspace; w = Workspace(sys.argv[2]);"
        "(w.gradio / 'upload.png').write_bytes(b'private'); os.kill(os.getpid(), signal.SIGKILL)"),
        str(ROOT), str(tmp_path)])
    assert killed.returncode == -signal.SIGKILL
    (dead,) = [p for p in tmp_path.glob("run-*") if p.is_dir() and p != live.root]
    restarted = Workspace(tmp_path)
    assert restarted.swept == [dead] and not dead.exists() and live.root.is_dir()
    live.close()
    restarted.close()
    assert not list(tmp_path.iterdir())


# -- the comparison cache: a damaged entry is recomputed, never served ---------------------------------
def test_corrupted_comparison_cache_is_recomputed(tmp_path, monkeypatch):
    from explainer.app import comparisons
    from explainer.jobs import pipeline

    report = pipeline.ModelReport(
        pack="dlib-dcgan", data="orl", n_images=12, n_faces=12, notes=[], provenance={},
        mi={"age": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "normalised": 0.25}},
        groups={"age": "demographic"}, kinds={"age": "continuous"})
    truth = pipeline.ModelComparison(["dlib-dcgan", "mobilefacenet-dcgan"], "orl",
                                     {"dlib-dcgan": report, "mobilefacenet-dcgan": report})
    calls = []
    monkeypatch.setattr(pipeline, "compare_models", lambda *a, **k: calls.append(1) or truth)
    packs, cache = ("dlib-dcgan", "mobilefacenet-dcgan"), tmp_path / "cache"
    first = comparisons.comparison(packs, "orl", folder=cache)
    (stored,) = cache.glob("*.json")
    comparisons._MEMORY.clear()
    assert comparisons.comparison(packs, "orl", folder=cache).to_json() == first.to_json() and len(calls) == 1
    # One digit changed: still valid JSON, a plausible but wrong result. The digest catches it.
    text = stored.read_text()
    header, body = text.split("\n", 1)
    damaged = header + "\n" + body.replace("0.5", "0.9", 1)
    assert damaged != text and damaged.count("0.9") == 1
    stored.write_text(damaged)
    comparisons._MEMORY.clear()
    again = comparisons.comparison(packs, "orl", folder=cache)
    assert len(calls) == 2 and again.to_json() == truth.to_json()
    assert stored.read_text() == text  # rewritten, verified
    stored.write_text(text[: len(text) // 2])  # and a truncated file
    comparisons._MEMORY.clear()
    assert comparisons.comparison(packs, "orl", folder=cache).to_json() == truth.to_json() and len(calls) == 3


# -- assets: an interrupted fetch resumes to a verified state ------------------------------------------
def test_killed_fetch_leaves_nothing_present_and_the_next_fetch_verifies(tmp_path):
    from explainer.assets import fetch as fetch_mod
    from explainer.assets.store import record

    name = "orl"
    asset = assets.get(name)
    expected = record(name)["files"]  # what the real, verified fetch recorded
    home = tmp_path / "home"
    (home / "downloads").mkdir(parents=True)
    for entry in (assets.home() / "downloads").iterdir():  # the verified archives, not downloaded again
        (home / "downloads" / entry.name).symlink_to(entry)
    env = {**os.environ, "FACEXPLAIN_HOME": str(home)}
    # Killed (SIGKILL) half-way through writing the files, as a power cut or OOM kill would.
    script = textwrap.dedent("""
        import os, signal, sys
        sys.path.insert(0, sys.argv[1])
        from explainer.assets import fetch as f
        unpack = f._UNPACK[sys.argv[3]]
        def cut(asset, staging):
            unpack(asset, staging)
            victim = max((p for p in staging.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
            victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        f._UNPACK[sys.argv[3]] = cut
        f.fetch_one(sys.argv[2])
        """)
    killed = subprocess.run([sys.executable, "-c", script, str(ROOT), name, asset.kind], env=env)
    assert killed.returncode == -signal.SIGKILL
    os.environ["FACEXPLAIN_HOME"], saved = str(home), os.environ.get("FACEXPLAIN_HOME")
    try:
        assert not assets.is_present(name)
        assert list((home / "assets").glob(f".{name}.staging-*"))  # what the killed fetch left
        assert fetch_mod.fetch_one(name) is True
        assert assets.is_present(name) and not list((home / "assets").glob(f".{name}.staging-*"))
        files = record(name)["files"]
        folder = assets.path(name).parent
        assert files and all(fetch_mod.sha256_file(folder / rel) == digest for rel, digest in files.items())
        assert files == expected
    finally:
        if saved is None:
            os.environ.pop("FACEXPLAIN_HOME")
        else:
            os.environ["FACEXPLAIN_HOME"] = saved
