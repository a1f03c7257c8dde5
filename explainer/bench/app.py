"""`facexplain bench app`: the web app under concurrent clients, as real users reach it.

Starts app.py in a child process on a free loopback port (its own upload and state folders), then N
gradio_client clients at once, each with its own Client and one /explain request:
  - half send the SAME probe and reference (a team sharing one photo): the case that lost uploads;
  - half send photos of their own (distinct bytes), pairs of held-out ORL people;
  - clients take the registered attacks in turn (pgd, transfer).
Each client ends as one of:
  served    a decision came back
  refused   told plainly that the app is busy and to retry (the admission message)
  lost      told its photo was no longer on the server (an upload deleted under it)
  failed    anything else: an error without that message, Gradio's bare "Queue is full", a timeout
Reported: those counts, p50 / p95 latency of the served (submit to result), the server's peak resident
memory (VmHWM), and what is left on disk once every client is done: uploads (files with the bytes of a
sent photo), Gradio's copies of results, and report folders. Then the app is stopped (SIGTERM) and its
run folder must be gone. Bounded: at most MAX_CLIENTS clients, `timeout_s` for the whole run; loopback
only. The machine may be shared: read latencies as upper bounds.
"""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from explainer import assets
from explainer.core.errors import FacexplainError
from explainer.counterfactual.attacks import ATTACKS

MAX_CLIENTS = 64
APP = Path(__file__).resolve().parents[2] / "app.py"
BUSY_WORDS = "The app is busy"
LOST_WORDS = "no longer on the server"


class BenchError(FacexplainError):
    """The benchmark could not run (no app.py, the app did not start)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _photos(folder: Path, clients: int) -> list[tuple[Path, Path]]:
    """One (probe, reference) per client: the first half all the same two files' bytes, the rest distinct
    (held-out ORL people, a marker pixel making every file's bytes unique)."""
    orl = assets.path("orl")
    shared = []
    for name, (person, photo) in (("shared_probe.png", ("s36", 4)), ("shared_reference.png", ("s36", 9))):
        pixels = np.array(Image.open(orl / person / f"{photo}.pgm").convert("RGB"))
        pixels[0, 0] = (255, 0, 255)  # never the bytes of an app example (those are public, never deleted)
        Image.fromarray(pixels).save(folder / name)
        shared.append(folder / name)
    pairs = []
    for k in range(clients):
        if k < (clients + 1) // 2:
            pairs.append((shared[0], shared[1]))
            continue
        people = [f"s{31 + (k + j) % 10}" for j in (0, (k % 2))]  # genuine and impostor pairs alternate
        files = []
        for role, person, photo in (("probe", people[0], 1 + k % 10), ("reference", people[1], 1 + (k + 3) % 10)):
            pixels = np.array(Image.open(orl / person / f"{photo}.pgm").convert("RGB"))
            pixels[0, 0] = (k, k // 256, 7)
            path = folder / f"client{k:02d}_{role}.png"
            Image.fromarray(pixels).save(path)
            files.append(path)
        pairs.append((files[0], files[1]))
    return pairs


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def wait_ready(url: str, process: subprocess.Popen, deadline: float) -> None:
    """Return once `url` answers 200; BenchError if the app exits first or `deadline` (monotonic) passes."""
    import httpx

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the app exited with code {process.returncode} before serving")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise BenchError("the app did not start within the time limit")


def _one_client(url: str, probe: Path, reference: Path, attack: str, downloads: Path, timeout_s: float) -> dict:
    from gradio_client import Client, handle_file

    started = time.monotonic()
    try:
        client = Client(url, verbose=False, download_files=str(downloads))
        job = client.submit(handle_file(str(probe)), handle_file(str(reference)), "dlib-dcgan", attack, 0,
                            api_name="/explain")
        result = job.result(timeout=timeout_s)
        outcome, message = ("served", "") if result[1].get("decision") else ("failed", "no decision")
    except Exception as error:  # noqa: BLE001 - every way a client can end is counted, none hides
        message = str(error) or type(error).__name__
        outcome = "refused" if BUSY_WORDS in message else "lost" if LOST_WORDS in message else "failed"
    return {"outcome": outcome, "seconds": time.monotonic() - started, "attack": attack, "message": message[:300]}


def _leftovers(gradio_dir: Path, reports_dirs: list[Path], sent: set[str]) -> dict:
    uploads, results = 0, 0
    for path in gradio_dir.rglob("*"):
        if path.is_file():
            if hashlib.sha256(path.read_bytes()).hexdigest() in sent:
                uploads += 1
            else:
                results += 1
    reports = sum(1 for folder in reports_dirs for p in folder.glob("report-*"))
    return {"uploads": uploads, "gradio_result_files": results, "report_folders": reports}


def run(clients: int = 16, timeout_s: float = 900.0, queue_size: int | None = None) -> dict:
    """Run the app benchmark with `clients` concurrent clients; the figures as a dict (see module doc)."""
    if not 1 <= clients <= MAX_CLIENTS:
        raise BenchError(f"--clients must be between 1 and {MAX_CLIENTS}")
    if not APP.is_file():
        raise BenchError(f"{APP} not found: run the app benchmark from a source checkout")
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="facexplain-bench-app-") as tmp:
        tmp = Path(tmp)
        for name in ("photos", "gradio", "state", "downloads"):
            (tmp / name).mkdir()
        pairs = _photos(tmp / "photos", clients)
        sent = {hashlib.sha256(p.read_bytes()).hexdigest() for pair in pairs for p in pair}
        port = _free_port()
        env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
               "GRADIO_TEMP_DIR": str(tmp / "gradio"), "FACEXPLAIN_APP_STATE": str(tmp / "state"),
               "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        if queue_size is not None:
            env["FACEXPLAIN_QUEUE_SIZE"] = str(queue_size)
        log = open(tmp / "app.log", "w")
        process = subprocess.Popen([sys.executable, str(APP)], cwd=APP.parent, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            started = time.monotonic()
            wait_ready(url, process, min(deadline, started + 300))
            startup_s = time.monotonic() - started
            names = list(ATTACKS)  # clients take the registered attacks in turn
            attacks = [names[k % len(names)] for k in range(clients)]
            # All clients are let go at once, as a burst of users would be.
            gate = threading.Barrier(clients)

            def client(k: int) -> dict:
                gate.wait()
                return _one_client(url, *pairs[k], attacks[k], tmp / "downloads", max(1.0, deadline - time.monotonic()))

            wall = time.monotonic()
            with ThreadPoolExecutor(clients) as pool:
                outcomes = list(pool.map(client, range(clients)))
            wall = time.monotonic() - wall
            peak_mb = _peak_rss_mb(process.pid)
            reports_dirs = [run / "reports" for run in (tmp / "state").glob("run-*") if run.is_dir()]
            left = _leftovers(tmp / "gradio", reports_dirs, sent)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
        run_folders_after_stop = len([p for p in (tmp / "state").glob("run-*")])
        uploads_after_stop = _leftovers(tmp / "gradio", [], sent)["uploads"]
        served = [o["seconds"] for o in outcomes if o["outcome"] == "served"]
        counts = {kind: sum(o["outcome"] == kind for o in outcomes) for kind in ("served", "refused", "lost", "failed")}
        messages = sorted({o["message"] for o in outcomes if o["outcome"] != "served"})
        return {
            "clients": clients, "identical_upload_clients": (clients + 1) // 2, **counts,
            "latency_p50_s": float(np.percentile(served, 50)) if served else None,
            "latency_p95_s": float(np.percentile(served, 95)) if served else None,
            "wall_s": wall, "startup_s": startup_s, "server_peak_rss_mb": peak_mb,
            "left_while_running": left, "uploads_left_after_stop": uploads_after_stop,
            "run_folders_left_after_stop": run_folders_after_stop,
            "messages": messages, "queue_size": queue_size, "outcomes": outcomes,
            "machine": {"cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        }
