"""The command line's lab commands: `users add|remove|list` and `audit verify` (explainer.cli adds them)."""
from __future__ import annotations

import getpass
import os
import sys

from explainer.core.errors import FacexplainError


def _users_file(args) -> str:
    from explainer.lab.config import USERS_ENV

    path = args.file or os.environ.get(USERS_ENV, "").strip()
    if not path:
        raise FacexplainError(f"Name the users file with --file FILE (or set {USERS_ENV}).")
    return path


def _read_password(args) -> str:
    """From one line of standard input (--password-stdin), or typed twice at a prompt (not echoed)."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise FacexplainError("No password on standard input (one line is read).")
        return password
    if not sys.stdin.isatty():
        raise FacexplainError("There is no terminal to ask for the password on: give it on standard input with "
                              "--password-stdin.")
    password = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != password:
        raise FacexplainError("The two passwords differ; nothing was changed.")
    return password


def cmd_users_add(args) -> int:
    from explainer.lab.users import Users, check_name

    path = _users_file(args)
    check_name(args.name)
    users = Users.load(path, missing_ok=True)
    replacing = args.name in users.names()
    users.add(args.name, _read_password(args), replace=args.replace)
    users.save()
    print(f"{'changed the password of' if replacing else 'added'} {args.name} in {path} ({len(users.names())} users); "
          "a running app reads the file at start: restart it")
    return 0


def cmd_users_remove(args) -> int:
    from explainer.lab.users import Users

    path = _users_file(args)
    users = Users.load(path)
    users.remove(args.name)
    users.save()
    print(f"removed {args.name} from {path} ({len(users.names())} users left); restart a running app")
    return 0


def cmd_users_list(args) -> int:
    from explainer.lab.users import Users

    for name in Users.load(_users_file(args)).names():
        print(name)
    return 0


def cmd_audit_verify(args) -> int:
    from explainer.lab.audit import verify

    verdict = verify(args.file, use_head=not args.no_head)
    if verdict.intact:
        print(f"intact: {verdict.lines} lines; last line's sha256 {verdict.head or '-'} (keep it with the case file: "
              "a later log must still contain that line)")
        for note in verdict.notes:
            print(f"note: {note}")
        return 0
    print(f"BROKEN at line {verdict.bad_line}: {verdict.problem}. Lines 1 to {verdict.bad_line - 1} are confirmed by "
          "the chain.", file=sys.stderr)
    return 1


def add_lab_commands(sub) -> None:
    """`facexplain users ...` and `facexplain audit ...`."""
    users = sub.add_parser("users", help="the users file of a lab deployment (sign-in to the app)").add_subparsers(
        dest="users_command", required=True)
    add = users.add_parser("add", help="add a user, or with --replace set a new password (argon2id hash)")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from one line of standard "
                                                                   "input (default: prompt twice, not echoed)")
    add.add_argument("--replace", action="store_true", help="set a new password for an existing user")
    remove = users.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    listing = users.add_parser("list", help="the user names, one a line")
    for parser, func in ((add, cmd_users_add), (remove, cmd_users_remove), (listing, cmd_users_list)):
        parser.add_argument("--file", metavar="F", help="the users file (default: $FACEXPLAIN_USERS_FILE)")
        parser.set_defaults(func=func)

    audit = sub.add_parser("audit", help="the audit trail of a lab deployment").add_subparsers(
        dest="audit_command", required=True)
    check = audit.add_parser("verify", help="check the hash chain of an audit log (exit 0 intact, 1 broken, naming "
                                            "the first bad line)")
    check.add_argument("file")
    check.add_argument("--no-head", action="store_true",
                       help="check the chain alone, without FILE.head (e.g. a copy of the log without it); lines "
                            "cut off the end then go unnoticed")
    check.set_defaults(func=cmd_audit_verify)
