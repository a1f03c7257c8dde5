"""Running facexplain for a lab: who may use it, what each analysis was about, and a log nobody can quietly edit.

Everything here is off unless a deployment turns it on (environment variables; see `config`), so public
demos run exactly as without it.

    case      case numbers: validated text carried into reports and the audit trail, never a path
    users     the users file (names and argon2 password hashes) and checking a sign-in
    audit     the hash-chained JSONL audit log: atomic appends under a file lock, and verifying the chain
    records   what one audit line says about one analysis (inputs' sha256, packs, decision, reports)
    config    the deployment's settings from the environment, with plain errors that stop start-up
"""
