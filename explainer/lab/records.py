"""What one audit line says about one analysis: who, which case, which inputs (by sha256 only), which packs
and weights, which parameters, what came out, and whether it ended well.

The inputs are recorded by the sha256 of their bytes as received (a file) or of their pixels (an array):
never pixels, and never a file name, since a name from the client's disk can itself be personal data.
"""
from __future__ import annotations

import getpass
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import explainer
from explainer.assets.fetch import sha256_file
from explainer.lab.audit import AuditLog

# What an audit line keeps of a decision (report.json has the rest).
DECISION_FIELDS = ("match", "similarity", "threshold", "metric", "recognizer", "log10_lr", "verbal")


def input_sha256(value) -> str | None:
    """sha256 of an input as the analysis gets it: a file's bytes (a path, or an upload payload {"path": ...}),
    an array's pixels ("pixels:<sha256>", as report.json writes it); None when there is nothing to hash."""
    if isinstance(value, dict):
        value = value.get("path")
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        path = Path(value)
        return sha256_file(path) if path.is_file() else None
    from explainer.faces import sha256_of  # an array or a PIL image

    return sha256_of(value)


def os_user() -> str:
    """Who runs a command on this machine (the audit line's user for the command line)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        return f"uid {os.getuid()}"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class AnalysisRecord:
    """One analysis, filled in as it runs. `endpoint`: "explain", "compare" or "cli explain"; `user`: who
    signed in (None when sign-in is off); `inputs`: role -> sha256; `parameters`: attack, seed, data set...;
    `packs`: name -> provenance (weight hashes) once the analysis has loaded them."""

    endpoint: str
    user: str | None
    inputs: dict[str, str | None] = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    packs: dict[str, dict] = field(default_factory=dict)
    case: str | None = None
    decisions: dict[str, dict] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    outcome: str = "ok"
    time: str = field(default_factory=utc_now)  # when the request began

    def explained(self, explanation, files: dict | None = None) -> None:
        """Take the pack, its weight hashes and the decision from a PairExplanation, and the sha256 of the
        report files handed out (`files`: name -> path; the PNGs are in report.json by name)."""
        pack = explanation.provenance.get("pack", {})
        name = pack.get("name", explanation.decision.recognizer)
        self.packs[name] = pack
        self.decisions[name] = {k: getattr(explanation.decision, k) for k in DECISION_FIELDS}
        for key, path in (files or {}).items():
            if str(key).startswith("report."):
                self.reports[key] = sha256_file(Path(path))

    def compared(self, comparison) -> None:
        """Packs and their weight hashes from a ModelComparison over a data set (and the data's hash)."""
        for name, report in comparison.reports.items():
            self.packs[name] = report.provenance.get("pack", {"name": name})
            self.parameters.setdefault("data_sha256", report.provenance.get("data", {}).get("files_sha256"))

    def as_record(self) -> dict:
        return {"time": self.time, "user": self.user, "case": self.case, "endpoint": self.endpoint,
                "inputs_sha256": self.inputs, "parameters": _clipped(self.parameters), "packs": self.packs,
                "decisions": self.decisions, "reports_sha256": self.reports,
                "facexplain_version": explainer.__version__, "outcome": self.outcome}


def _clipped(value, limit: int = 200):
    """Parameters as the client sent them, each string cut to `limit` characters (a request cannot bloat the log)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, dict):
        return {k: _clipped(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clipped(v, limit) for v in value]
    return value


@contextmanager
def audited(log: AuditLog | None, record: AnalysisRecord):
    """Run the body, then append `record` to `log` (nothing when there is no log): outcome "ok", or
    "error: <class>" when the body raised (the error still propagates). When the line cannot be written
    the analysis fails too: no result leaves without its line."""
    if log is None:
        yield record
        return
    try:
        yield record
    except BaseException as error:
        record.outcome = f"error: {type(error).__name__}"
        log.append(record.as_record())
        raise
    log.append(record.as_record())
