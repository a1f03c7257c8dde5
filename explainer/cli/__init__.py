"""The command line, `facexplain ...` (also `python -m explainer.cli ...`)."""
from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    # Imported on call, so `import explainer.cli.lab` does not pull in every command's module.
    from explainer.cli.commands import main as run

    return run(argv)
