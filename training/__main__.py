"""`python -m training decoder|encoder|transformer --config NAME --out DIR [--key value ...]`
and `python -m training align --src PHOTOS --dst FOLDER --size PX`.

Under torchrun the same command runs on every rank: `torchrun --nproc_per_node=8 -m training decoder ...`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path

from training.configs import CONFIGS, get_config

TRAINERS = ("decoder", "encoder", "transformer")


def _field_type(config, name: str) -> type | None:
    """The declared type of a config field (for fields whose current value is None)."""
    hint = typing.get_type_hints(type(config)).get(name)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) else []
    return args[0] if len(args) == 1 else hint if isinstance(hint, type) else None


def _optional(config, name: str) -> bool:
    hint = typing.get_type_hints(type(config)).get(name)
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def _parse_overrides(config, pairs: list[str]) -> dict:
    """`--steps 10 --weights.identity 4` -> typed field changes."""
    if len(pairs) % 2:
        raise SystemExit(f"overrides come as --key value pairs, got {pairs}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    weights = getattr(config, "weights", None)
    weight_fields = {f.name for f in dataclasses.fields(weights)} if weights is not None else set()
    changes = {}
    for key, raw in zip(pairs[::2], pairs[1::2]):
        name = key.lstrip("-").replace("-", "_")
        if name.startswith("weights.") and name[len("weights."):] in weight_fields:
            changes[name] = float(raw)
            continue
        if name not in fields or name == "name":
            raise SystemExit(f"unknown config field {name!r}")
        current = getattr(config, name)
        kind = type(current) if current is not None else _field_type(config, name)
        if raw.lower() in ("none", "null") and _optional(config, name):
            changes[name] = None
        elif kind is bool:
            changes[name] = raw.lower() in ("1", "true", "yes")
        elif kind is int:
            changes[name] = int(raw)
        elif kind is float:
            changes[name] = float(raw)
        elif kind is tuple:
            changes[name] = tuple(int(v) for v in raw.split(","))
        else:
            changes[name] = raw
    return changes


def _align(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m training align",
                                     description="Align photos to FFHQ's frame (the decoders' frame) as PNGs.")
    parser.add_argument("--src", required=True, type=Path)
    parser.add_argument("--dst", required=True, type=Path)
    parser.add_argument("--size", required=True, type=int)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    from training.data import align_folder

    written, skipped = align_folder(args.src, args.dst, args.size, args.limit)
    print(f"aligned {written} photos into {args.dst} ({skipped} without a usable face skipped)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["align"]:
        return _align(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m training")
    parser.add_argument("what", choices=TRAINERS + ("align",))
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args, rest = parser.parse_known_args(argv)
    if args.config not in CONFIGS[args.what]:
        parser.error(f"unknown {args.what} config {args.config!r}; known: {', '.join(CONFIGS[args.what])}")
    config = get_config(args.config, args.what)
    config = config.override(**_parse_overrides(config, rest))
    if args.what == "decoder":
        from training.train_decoder import train
    elif args.what == "encoder":
        from training.train_encoder import train
    else:
        from training.train_transformer import train
    train(config, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
