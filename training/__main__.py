"""`python -m training transformer --config NAME --out DIR [--key value ...]`."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from training.configs import CONFIGS, get_config


def _parse_overrides(config, pairs: list[str]) -> dict:
    """`--steps 10 --weights.identity 4` -> typed field changes."""
    if len(pairs) % 2:
        raise SystemExit(f"overrides come as --key value pairs, got {pairs}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    weight_fields = {f.name for f in dataclasses.fields(config.weights)}
    changes = {}
    for key, raw in zip(pairs[::2], pairs[1::2]):
        name = key.lstrip("-").replace("-", "_")
        if name.startswith("weights.") and name[len("weights."):] in weight_fields:
            changes[name] = float(raw)
            continue
        if name not in fields:
            raise SystemExit(f"unknown config field {name!r}")
        current = getattr(config, name)
        if isinstance(current, bool):
            changes[name] = raw.lower() in ("1", "true", "yes")
        elif isinstance(current, int) or (current is None and raw.isdigit()):
            changes[name] = int(raw)
        elif isinstance(current, float):
            changes[name] = float(raw)
        else:
            changes[name] = raw
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    parser.add_argument("what", choices=["transformer"])
    parser.add_argument("--config", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--out", required=True, type=Path)
    args, rest = parser.parse_known_args(argv)
    config = get_config(args.config)
    config = config.override(**_parse_overrides(config, rest))
    from training.train_transformer import train

    train(config, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
