"""The running app's own folder on disk, and clearing what a killed app left behind.

Each app process works in `<state_dir>/run-<pid>-<random>/` (reports for download and, unless
GRADIO_TEMP_DIR says otherwise, Gradio's uploads and file copies), next to `run-....lock`, a file the
process holds an exclusive lock on for as long as it lives. The kernel drops that lock when the process
dies, even by SIGKILL, so at start an app deletes every run folder whose lock it can take: uploads and
half-written files of a crashed run never outlive it past the next start. Several apps may share one
state_dir; a live one's folder is never touched.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no sweeping of crashed runs (nothing else changes)
    fcntl = None


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def sweep_stale(state_dir: Path) -> list[Path]:
    """Delete the run folders of apps that are no longer running; returns them."""
    removed = []
    if fcntl is None or not state_dir.is_dir():
        return removed
    for lock in sorted(state_dir.glob("run-*.lock")):
        try:
            with open(lock, "a") as handle:
                if not _try_lock(handle):
                    continue  # its app is alive
                folder = lock.with_suffix("")
                shutil.rmtree(folder, ignore_errors=True)
                lock.unlink(missing_ok=True)
                removed.append(folder)
        except FileNotFoundError:
            continue  # another app swept it first
    # A run folder without its lock file is left from a sweep interrupted half-way.
    for folder in state_dir.glob("run-*"):
        if folder.is_dir() and not folder.with_suffix(".lock").exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class Workspace:
    """This process's run folder: `reports` and `gradio` inside it; `close()` deletes it all."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.swept = sweep_stale(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        name = f"run-{os.getpid()}-{secrets.token_hex(4)}"
        # Locked under a name no sweep looks at, then renamed: a visible lock file is always held.
        hidden = self.state_dir / f".{name}.lock"
        self._lock = open(hidden, "w")
        if fcntl is not None:
            assert _try_lock(self._lock), "a fresh lock file is locked by someone else"
        hidden.rename(self.state_dir / f"{name}.lock")
        self._lock_path = self.state_dir / f"{name}.lock"
        self.root = self.state_dir / name
        self.reports = self.root / "reports"
        self.gradio = self.root / "gradio"
        self.reports.mkdir(parents=True)
        self.gradio.mkdir()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if not self._lock.closed:
            self._lock_path.unlink(missing_ok=True)
            self._lock.close()
