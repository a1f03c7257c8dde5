"""The users file: who may sign in to a lab's app, each with an argon2id password hash (never the password).

The file is JSON, written only by `facexplain users ...` (atomically, readable by its owner only):

    {"format": "facexplain-users", "version": 1, "users": {"alice": "$argon2id$v=19$m=65536,t=3,p=4$..."}}

Hashing is argon2-cffi's PasswordHasher (its RFC 9106 profile): slow on purpose, salted per user.
"""
from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from explainer.core.errors import FacexplainError

FORMAT = "facexplain-users"
VERSION = 1
MIN_PASSWORD = 8
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_HASHER = PasswordHasher()


class UsersFileError(FacexplainError):
    """The users file is missing, unreadable or not in facexplain's format, or a change to it is refused."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsersFileError(f"{name!r} is not a usable user name: 1 to 64 letters, digits and . _ @ -, starting with "
                             "a letter or digit.")
    return name


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsersFileError(f"The password is too short: use at least {MIN_PASSWORD} characters.")
    return _HASHER.hash(password)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash of no one's password: checking an unknown name costs what checking a known one does, so the
    time a refusal takes does not tell whether the name exists."""
    return _HASHER.hash("no user has this password")


class Users:
    """The users of one file: `names()`, `check(name, password)`; `add`/`remove` then `save()` change it."""

    def __init__(self, path: Path, hashes: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.hashes = dict(hashes or {})

    @classmethod
    def load(cls, path, missing_ok: bool = False) -> Users:
        """The users in `path`; UsersFileError with a plain message when it is missing (unless
        `missing_ok`: then no users) or malformed."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if missing_ok:
                return cls(path)
            raise UsersFileError(f"The users file {path} does not exist. Create it with "
                                 f"`facexplain users add NAME --file {path}`.") from None
        except (OSError, UnicodeDecodeError) as error:
            raise UsersFileError(f"The users file {path} could not be read: {error}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsersFileError(f"The users file {path} is not valid JSON (line {error.lineno}): write it only with "
                                 "`facexplain users add/remove`.") from None
        if not (isinstance(data, dict) and data.get("format") == FORMAT and data.get("version") == VERSION
                and isinstance(data.get("users"), dict)):
            raise UsersFileError(f"The users file {path} is not a facexplain users file (format {FORMAT!r}, version "
                                 f"{VERSION}, a 'users' object): write it only with `facexplain users add/remove`.")
        for name, hashed in data["users"].items():
            check_name(name)
            if not (isinstance(hashed, str) and hashed.startswith("$argon2")):
                raise UsersFileError(f"The users file {path}: the entry of {name!r} is not an argon2 password hash.")
        return cls(path, data["users"])

    def names(self) -> list[str]:
        return sorted(self.hashes)

    def add(self, name: str, password: str, replace: bool = False) -> None:
        check_name(name)
        if name in self.hashes and not replace:
            raise UsersFileError(f"User {name!r} already exists in {self.path}; give --replace to set a new password.")
        self.hashes[name] = hash_password(password)

    def remove(self, name: str) -> None:
        if name not in self.hashes:
            raise UsersFileError(f"There is no user {name!r} in {self.path}.")
        del self.hashes[name]

    def save(self) -> Path:
        """Write the file atomically (a complete new file renamed over the old), readable by its owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, "version": VERSION, "users": dict(sorted(self.hashes.items()))},
                          indent=2) + "\n"
        handle, staging = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(staging, 0o600)
            os.replace(staging, self.path)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        return self.path

    def check(self, name: str, password: str) -> bool:
        """Whether `password` is `name`'s. Takes as long for an unknown name as for a wrong password."""
        hashed = self.hashes.get(name) if isinstance(name, str) else None
        try:
            return _HASHER.verify(hashed or _dummy_hash(), password or "") and hashed is not None
        except (VerificationError, InvalidHashError):
            return False
