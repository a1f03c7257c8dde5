"""Lab deployment without models: case numbers, the users file, the hash-chained audit log, start-up errors.

The launched app with sign-in is tests/test_app_lab.py.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from explainer import cli
from explainer.lab.audit import AuditError, AuditLog, verify
from explainer.lab.case import InvalidCase, case_number
from explainer.lab.config import Lab, audit_log_from_env
from explainer.lab.records import AnalysisRecord, audited, input_sha256
from explainer.lab.users import Users, UsersFileError

ROOT = Path(__file__).resolve().parents[1]


# -- case numbers ------------------------------------------------------------------------------------
def test_case_numbers_are_plain_text_never_paths():
    assert case_number("  2026-0117 ") == "2026-0117"
    assert case_number("NFI 2026.03:A#7_b") == "NFI 2026.03:A#7_b"
    assert case_number("") is None and case_number("   ") is None and case_number(None) is None
    for bad in ("../etc/passwd", "2026/0117", "a\\b", "..", "-rf", "<script>", "a\nb", "caso\u00e9", "x" * 65):
        with pytest.raises(InvalidCase):
            case_number(bad)
    with pytest.raises(InvalidCase, match="at most 64"):
        case_number("1" * 65)
    assert case_number("1" * 64) == "1" * 64


def test_a_report_names_its_case_only_when_there_is_one():
    from explainer.jobs.results import CounterfactualOutcome, Decision, PairExplanation, Stability

    bare = PairExplanation(
        decision=Decision(match=True, similarity=0.3, threshold=0.5, metric="euclidean", fmr=None,
                          threshold_source="", recognizer="r"),
        counterfactual=CounterfactualOutcome(attack="pgd", flipped=True, linf_eps=0.0, linf=0.0, l2=0.0, similarity=0.0),
        stability=Stability(members=1, members_flipped=1, jitters=1, refine_rule="", refine_steps_taken={},
                            top10_agreement_between_members=None, significant_members_agree={}),
        significance={}, groups={}, images={}, notes=[], provenance={})
    assert "case" not in json.loads(bare.to_json())  # without a case: the same bytes as before cases existed
    bare.case = "2026-0117"
    assert json.loads(bare.to_json())["case"] == "2026-0117"


# -- the users file ----------------------------------------------------------------------------------
def test_users_file_keeps_argon2_hashes_only_and_checks_passwords(tmp_path):
    path = tmp_path / "lab" / "users.json"
    users = Users.load(path, missing_ok=True)
    users.add("alice", "correct horse battery")
    users.add("bob.smith@nfi", "another long one")
    users.save()
    text = path.read_text()
    assert "correct horse" not in text and "another long" not in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = Users.load(path)
    assert loaded.names() == ["alice", "bob.smith@nfi"]
    assert all(h.startswith("$argon2id$") for h in json.loads(text)["users"].values())
    assert loaded.check("alice", "correct horse battery")
    assert not loaded.check("alice", "correct horse batterY")
    assert not loaded.check("bob.smith@nfi", "correct horse battery")  # someone else's password
    assert not loaded.check("carol", "correct horse battery") and not loaded.check("", "")
    with pytest.raises(UsersFileError, match="already exists"):
        loaded.add("alice", "whatever long")
    loaded.add("alice", "a new password", replace=True)
    loaded.remove("bob.smith@nfi")
    loaded.save()
    again = Users.load(path)
    assert again.names() == ["alice"] and again.check("alice", "a new password")
    with pytest.raises(UsersFileError, match="too short"):
        again.add("dave", "short")
    for bad_name in ("", "a b", "../x", "x" * 65, "-x"):
        with pytest.raises(UsersFileError, match="not a usable user name"):
            again.add(bad_name, "long enough pw")


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("alice:secret\n", "not valid JSON"),
    ('{"users": {"alice": "$argon2id$x"}}', "not a facexplain users file"),
    ('{"format": "facexplain-users", "version": 1, "users": {"alice": "secret"}}', "not an argon2 password hash"),
    ('{"format": "facexplain-users", "version": 1, "users": {"a b": "$argon2id$x"}}', "not a usable user name"),
    ('{"format": "facexplain-users", "version": 1, "users": {}}', "has no users"),
])
def test_a_missing_or_malformed_users_file_is_refused_plainly(tmp_path, content, message):
    path = tmp_path / "users.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsersFileError, match=message):
        Lab.from_env({"FACEXPLAIN_USERS_FILE": str(path)})


def test_app_start_stops_with_a_plain_message_on_a_bad_users_file(tmp_path):
    env = {**os.environ, "FACEXPLAIN_USERS_FILE": str(tmp_path / "nobody.json"), "FACEXPLAIN_APP_STATE": str(tmp_path)}
    result = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "facexplain cannot start: The users file" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_settings_the_lab_is_off(tmp_path):
    lab = Lab.from_env({})
    assert lab.users is None and lab.audit is None and lab.auth is None
    assert audit_log_from_env({}) is None
    # Sign-in on and no log named: the log sits beside the users file (signed-in use is always logged).
    lab = Lab.from_env({"FACEXPLAIN_USERS_FILE": str(_users_file(tmp_path))})
    assert lab.users.names() == ["alice"] and lab.audit.path == tmp_path / "audit.jsonl"
    assert "sign-in required (1 users" in lab.describe()


def _users_file(folder: Path) -> Path:
    users = Users(folder / "users.json")
    users.add("alice", "correct horse battery")
    return users.save()


def test_users_commands(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\n"))
    assert cli.main(["users", "add", "alice", "--file", str(path), "--password-stdin"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("bobs password 1\n"))
    monkeypatch.setenv("FACEXPLAIN_USERS_FILE", str(path))
    assert cli.main(["users", "add", "bob", "--password-stdin"]) == 0  # the file from the environment
    capsys.readouterr()
    assert cli.main(["users", "list", "--file", str(path)]) == 0
    assert capsys.readouterr().out.split() == ["alice", "bob"]
    assert Users.load(path).check("bob", "bobs password 1")
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert cli.main(["users", "add", "carol", "--file", str(path), "--password-stdin"]) == 1
    assert "too short" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal, no --password-stdin: no prompt to hang on
    assert cli.main(["users", "add", "carol", "--file", str(path)]) == 1
    assert "--password-stdin" in capsys.readouterr().err
    assert cli.main(["users", "remove", "alice", "--file", str(path)]) == 0
    assert Users.load(path).names() == ["bob"]
    assert cli.main(["users", "remove", "alice", "--file", str(path)]) == 1


# -- the audit log -----------------------------------------------------------------------------------
def _log_with(path: Path, n: int) -> AuditLog:
    log = AuditLog(path)
    for k in range(n):
        log.append({"endpoint": "explain", "user": "alice", "case": f"C-{k}", "decisions": {"x": {"similarity": 0.5}}})
    return log


def test_chain_is_intact_and_survives_a_restart(tmp_path):
    path = tmp_path / "audit.jsonl"
    _log_with(path, 3)
    line = AuditLog(path).append({"endpoint": "compare"})  # a fresh object, as after a restart
    assert line["seq"] == 4
    lines = path.read_bytes().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1, 2, 3, 4]
    assert json.loads(lines[0])["prev"] == "0" * 64
    assert json.loads(lines[3])["prev"] == hashlib.sha256(lines[2]).hexdigest()
    verdict = verify(path)
    assert verdict.intact and verdict.lines == 4 and verdict.head == hashlib.sha256(lines[3]).hexdigest()
    with pytest.raises(ValueError):
        AuditLog(path).append({"seq": 1})


def _rewrite(path: Path, change) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(change(lines)))


@pytest.mark.parametrize("change, bad_line", [
    (lambda ls: ls[:2] + [ls[2].replace(b'"C-2"', b'"C-9"')] + ls[3:], 3),   # a value edited
    (lambda ls: ls[:2] + [ls[2].replace(b'0.5', b'0.6')] + ls[3:], 3),
    (lambda ls: ls[:2] + ls[3:], 3),                                          # a line removed
    (lambda ls: ls[1:], 1),                                                   # the first line removed
    (lambda ls: ls[:-1], 5),                                                  # the last line removed
    (lambda ls: ls[:-1] + [ls[-1].replace(b'"C-4"', b'"C-0"')], 5),           # the last line edited
    (lambda ls: ls[:1] + [ls[2], ls[1]] + ls[3:], 2),                         # two lines swapped
    (lambda ls: ls[:4] + [ls[4].rstrip(b"\n")], 5),                           # cut mid-line
])
def test_verify_fails_on_an_edited_or_removed_line_and_names_it(tmp_path, change, bad_line, capsys):
    path = tmp_path / "audit.jsonl"
    _log_with(path, 5)
    assert cli.main(["audit", "verify", str(path)]) == 0
    assert "intact: 5 lines" in capsys.readouterr().out
    _rewrite(path, change)
    verdict = verify(path)
    assert not verdict.intact and verdict.bad_line == bad_line, verdict
    assert cli.main(["audit", "verify", str(path)]) == 1
    assert f"BROKEN at line {bad_line}:" in capsys.readouterr().err


def test_verify_without_the_head_checks_the_chain_alone(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    _log_with(path, 3)
    (tmp_path / "audit.jsonl.head").unlink()
    assert cli.main(["audit", "verify", str(path)]) == 1
    assert "audit.jsonl.head is missing" in capsys.readouterr().err
    assert cli.main(["audit", "verify", str(path), "--no-head"]) == 0
    assert cli.main(["audit", "verify", str(tmp_path / "none.jsonl")]) == 1


def test_an_incomplete_last_line_stops_appends_plainly(tmp_path):
    path = tmp_path / "audit.jsonl"
    _log_with(path, 2)
    with open(path, "ab") as handle:
        handle.write(b'{"seq": 3, "prev"')  # a crash mid-write, or an edit
    with pytest.raises(AuditError, match="incomplete or unreadable"):
        AuditLog(path).append({"endpoint": "explain"})
    with pytest.raises(AuditError, match="incomplete or unreadable"):
        audit_log_from_env({"FACEXPLAIN_AUDIT_LOG": str(path)})
    with pytest.raises(AuditError, match="cannot be opened"):
        AuditLog(tmp_path / "audit.jsonl.head" / "x.jsonl").append({})  # a file where a folder must be


def _append_many(path: str, worker: int, n: int) -> None:
    log = AuditLog(path)
    threads = [threading.Thread(target=lambda t=t: [log.append({"worker": worker, "thread": t, "k": k,
                                                                "pad": "x" * 5000}) for k in range(n)])
               for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_appends_from_processes_and_threads_never_interleave(tmp_path):
    path = str(tmp_path / "audit.jsonl")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(path, w, 10)) for w in range(3)]
    for worker in workers:
        worker.start()
    _append_many(path, 99, 10)
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    verdict = verify(path)
    assert verdict.intact and verdict.lines == 4 * 3 * 10
    seen = {(r["worker"], r["thread"], r["k"]) for r in map(json.loads, Path(path).read_bytes().splitlines())}
    assert len(seen) == 120


# -- what an analysis writes -------------------------------------------------------------------------
def test_audited_records_the_outcome_and_inputs_by_hash_only(tmp_path):
    photo = tmp_path / "suspect_name.png"
    photo.write_bytes(b"\x89PNG not really")
    log = AuditLog(tmp_path / "audit.jsonl")
    record = AnalysisRecord("explain", user="alice", inputs={"probe": input_sha256({"path": str(photo)})},
                            parameters={"pack": "p" * 1000})
    with audited(log, record):
        record.case = "C-1"
    with pytest.raises(InvalidCase), audited(log, AnalysisRecord("explain", user="bob")):
        case_number("../x")
    first, second = map(json.loads, (tmp_path / "audit.jsonl").read_bytes().splitlines())
    assert first["outcome"] == "ok" and first["user"] == "alice" and first["case"] == "C-1"
    assert first["inputs_sha256"] == {"probe": hashlib.sha256(photo.read_bytes()).hexdigest()}
    assert len(first["parameters"]["pack"]) == 201  # a request cannot bloat the log
    assert "suspect_name" not in (tmp_path / "audit.jsonl").read_text()
    assert second["outcome"] == "error: InvalidCase" and second["user"] == "bob"
    assert set(first) >= {"time", "endpoint", "packs", "decisions", "reports_sha256", "facexplain_version"}
    assert input_sha256({"path": str(tmp_path / "gone.png")}) is None
