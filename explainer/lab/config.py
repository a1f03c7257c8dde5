"""A lab deployment's settings, from the environment; both off by default.

    FACEXPLAIN_USERS_FILE   users file (`facexplain users add`): sign-in required, for the pages and the API
    FACEXPLAIN_AUDIT_LOG    audit log (hash-chained JSONL); with sign-in on and this unset, the log is
                            audit.jsonl beside the users file: signed-in use is always logged

A missing or malformed users file, or a log that cannot be written, stops start-up with a plain message.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from explainer.lab.audit import AuditLog
from explainer.lab.users import Users, UsersFileError

USERS_ENV = "FACEXPLAIN_USERS_FILE"
AUDIT_ENV = "FACEXPLAIN_AUDIT_LOG"
DEFAULT_LOG_NAME = "audit.jsonl"


@dataclass(frozen=True)
class Lab:
    users: Users | None = None     # None: no sign-in
    audit: AuditLog | None = None  # None: no audit trail

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Lab:
        environ = os.environ if environ is None else environ
        users_file = environ.get(USERS_ENV, "").strip()
        users = None
        if users_file:
            users = Users.load(users_file)
            if not users.names():
                raise UsersFileError(f"The users file {users_file} has no users, so nobody could sign in. Add one with "
                                     f"`facexplain users add NAME --file {users_file}`.")
        return cls(users, audit_log_from_env(environ))

    @property
    def auth(self):
        """Gradio's `auth`: an async check (argon2 is slow on purpose: it runs off the event loop), or None."""
        if self.users is None:
            return None
        users = self.users

        async def signed_in(name: str, password: str) -> bool:
            return await asyncio.to_thread(users.check, name, password)

        return signed_in

    def describe(self) -> str:
        """One line for the start-up log."""
        sign_in = (f"sign-in required ({len(self.users.names())} users in {self.users.path})" if self.users
                   else "no sign-in")
        audit = f"audit log {self.audit.path}" if self.audit else "no audit log"
        return f"facexplain lab settings: {sign_in}; {audit}"


def audit_log_from_env(environ: dict | None = None) -> AuditLog | None:
    """The audit log the environment names (checked writable), the default one when sign-in is on, or None."""
    environ = os.environ if environ is None else environ
    users_file, log_file = environ.get(USERS_ENV, "").strip(), environ.get(AUDIT_ENV, "").strip()
    if users_file and not log_file:
        log_file = str(Path(users_file).parent / DEFAULT_LOG_NAME)
    if not log_file:
        return None
    audit = AuditLog(log_file)
    audit.check_writable()
    return audit
