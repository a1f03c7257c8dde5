"""Plain-text output shared by the command line and the benchmarks: tables and JSON files.

Below both `cli` and `bench`, so each bench prints its own table without importing the CLI.
"""
from __future__ import annotations

import json
from pathlib import Path


def print_table(headers: list[str], rows: list[list]) -> None:
    """Left-aligned columns under a dashed rule; floats to 4 significant digits."""
    cells = [[str(h) for h in headers]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_json(path: str | None, payload: dict) -> None:
    """`payload` as indented, key-sorted JSON at `path` (nothing when `path` is None)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path}")


class TqdmProgress:
    """A job's progress callback (fraction, stage) drawn as a tqdm bar in percent."""

    def __init__(self, description: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, desc=description, unit="%", disable=None,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")
        self.done = 0

    def __call__(self, fraction: float, stage: str) -> None:
        target = int(round(100 * min(max(fraction, 0.0), 1.0)))
        if target > self.done:
            self.bar.update(target - self.done)
            self.done = target
        self.bar.set_postfix_str(stage)

    def close(self) -> None:
        self.bar.close()
