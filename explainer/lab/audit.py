"""The audit trail: one JSON line per analysis, each carrying the sha256 of the line before it.

    {"endpoint": "explain", ..., "prev": "<sha256 of line seq-1>", "seq": 7, "time": "2026-12-03T10:41:07.512Z"}

Editing a line changes its sha256, so the next line's "prev" no longer matches it; removing a line
breaks "seq" and "prev" at once. The end of the log is pinned by `<log>.head` ({"lines": n, "sha256": h},
rewritten atomically after each append), so cutting lines off the end is caught too. `verify` names the
first line that is not confirmed by the chain.

Appends hold an exclusive lock (flock) on the log itself, so concurrent requests of one app, and several
apps or commands sharing a log, never interleave a line; each line is written with one write call and
fsync'd before the analysis returns. Nothing is kept in memory between appends: the log survives a
restart. A key-less chain shows changes to anyone holding a copy of an earlier head (print it with
`facexplain audit verify` and keep it with the case file); it cannot stop someone who may rewrite the
whole file and its head from doing so: keep the log on storage the app's users cannot write.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from explainer.core.errors import FacexplainError

try:
    import fcntl
except ImportError:  # Windows: appends are serialised within one process only
    fcntl = None

GENESIS = "0" * 64  # the "prev" of the first line
_TAIL_CHUNK = 64 * 1024


class AuditError(FacexplainError):
    """The audit log cannot be appended to (unwritable, or its last line incomplete or unreadable)."""


def line_sha256(line: bytes) -> str:
    """The sha256 a line is chained by: of its bytes without the newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _encode(record: dict) -> bytes:
    # ASCII JSON with sorted keys on one line: no byte of a value can pass for a newline.
    return json.dumps(record, sort_keys=True, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _last_line(handle: int, size: int) -> bytes:
    """The file's last line (with its newline), read backwards from the end in chunks."""
    tail = b""
    position = size
    while position > 0:
        start = max(0, position - _TAIL_CHUNK)
        os.lseek(handle, start, os.SEEK_SET)
        tail = os.read(handle, position - start) + tail
        position = start
        cut = tail.rfind(b"\n", 0, len(tail) - 1)
        if cut >= 0:
            return tail[cut + 1:]
    return tail


def _write_all(handle: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view):]


class AuditLog:
    """An append-only, hash-chained JSONL file. `append(record)` adds "seq", "prev" (and nothing else) to
    the record and writes it as one line; returns the line as written (a dict)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._lock = threading.Lock()

    def check_writable(self) -> None:
        """Create the log if needed and check its end is whole; AuditError with a plain message if not."""
        with self._locked() as (handle, size):
            self._tail(handle, size)

    def append(self, record: dict) -> dict:
        if {"seq", "prev"} & set(record):
            raise ValueError("'seq' and 'prev' are the chain's own fields")
        with self._locked() as (handle, size):
            seq, prev = self._tail(handle, size)
            line = dict(record, seq=seq + 1, prev=prev)
            data = _encode(line)
            try:
                _write_all(handle, data)  # O_APPEND: at the end, whatever the offset
                os.fsync(handle)
            except OSError as error:
                os.ftruncate(handle, size)  # no half line left behind (a full disk, say)
                raise AuditError(f"The audit log {self.path} could not be written ({error.strerror}); the analysis "
                                 "is not released without its line.") from None
            self._write_head(seq + 1, line_sha256(data))
        return line

    # -- inside the lock -----------------------------------------------------------------------------
    @contextmanager
    def _locked(self):
        """The log opened for appending and locked against every other writer: yields (fd, size)."""
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
            except OSError as error:
                raise AuditError(f"The audit log {self.path} cannot be opened for writing ({error.strerror}). Every "
                                 "analysis must be logged, so none can run until it can.") from None
            try:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_EX)  # released when the descriptor closes
                yield handle, os.fstat(handle).st_size
            finally:
                os.close(handle)

    def _tail(self, handle: int, size: int) -> tuple[int, str]:
        """(seq, sha256) of the last line, (0, GENESIS) for an empty log; AuditError when it is not whole."""
        if size == 0:
            return 0, GENESIS
        last = _last_line(handle, size)
        try:
            if not last.endswith(b"\n"):
                raise ValueError("no newline")
            seq = json.loads(last)["seq"]
            if not isinstance(seq, int):
                raise ValueError("no sequence number")
        except (ValueError, KeyError, TypeError):
            raise AuditError(f"The audit log {self.path} ends in an incomplete or unreadable line, so the next line "
                             f"cannot be chained to it. Run `facexplain audit verify {self.path}`, keep the file as "
                             "evidence and start a new log.") from None
        return seq, line_sha256(last)

    def _write_head(self, lines: int, sha256: str) -> None:
        handle, staging = tempfile.mkstemp(prefix=f".{self.head_path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w") as out:
                out.write(json.dumps({"lines": lines, "sha256": sha256}) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(staging, self.head_path)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise


@dataclass
class Verdict:
    """What `verify` found: `intact`, how many `lines`, the last line's sha256 (`head`), and where broken:
    `bad_line` (1-based, the first line the chain does not confirm) with the `problem` in words."""

    intact: bool
    lines: int
    head: str | None = None
    bad_line: int | None = None
    problem: str | None = None
    notes: tuple[str, ...] = ()


def verify(path, use_head: bool = True) -> Verdict:
    """Check the chain of the log at `path` line by line, then (`use_head`) its end against `<log>.head`."""
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"There is no audit log at {path}.")
    prev, count, hashes = GENESIS, 0, []

    def broken(line: int, problem: str) -> Verdict:
        return Verdict(False, count, hashes[-1] if hashes else None, line, problem)

    with open(path, "rb") as handle:
        for count, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return broken(count, "the line is incomplete (no newline): cut off while being written, or edited")
            try:
                record = json.loads(line)
                seq, claimed = record["seq"], record["prev"]
            except (ValueError, KeyError, TypeError):
                return broken(count, "the line is not a JSON record with 'seq' and 'prev': it was edited")
            if seq != count:
                return broken(count, f"its sequence number is {seq!r} where {count} was expected: a line was "
                                     + ("removed" if isinstance(seq, int) and seq > count else "added or edited")
                                     + " here")
            if claimed != prev:
                if count == 1:
                    return broken(1, "the first line does not start the chain: lines before it were removed, or it was "
                                     "edited")
                return broken(count - 1, f"line {count}'s 'prev' is not this line's sha256: this line was edited "
                                         f"(or line {count}'s 'prev')")
            prev = line_sha256(line)
            hashes.append(prev)
    notes = []
    if use_head:
        head_file = path.with_name(path.name + ".head")
        try:
            head = json.loads(head_file.read_text())
            lines, sha256 = int(head["lines"]), str(head["sha256"])
        except FileNotFoundError:
            if count == 0:
                return Verdict(True, 0)  # opened, never written to
            return broken(count + 1, f"{head_file.name} is missing, so lines cut off the end cannot be detected "
                                     "(check the chain alone with --no-head)")
        except (ValueError, KeyError, TypeError):
            return broken(count + 1, f"{head_file.name} is not a head record: it was edited")
        if lines > count:
            return broken(count + 1, f"the log ends after {count} lines but its head records {lines}: lines were "
                                     "removed from the end")
        if lines < 1 or hashes[lines - 1] != sha256:
            return broken(max(lines, 1), f"line {lines}'s sha256 differs from the one {head_file.name} records: "
                                         "it was edited")
        if lines < count:
            notes.append(f"{count - lines} line(s) after the head's last update (an append cut short by a crash "
                         "leaves one)")
    return Verdict(True, count, hashes[-1] if hashes else None, notes=tuple(notes))
