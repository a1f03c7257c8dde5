"""The command line's pack commands: `facexplain pack list [--json]` and `facexplain pack create ...`
(explainer.cli adds them to its parser)."""
from __future__ import annotations

import json
import sys

from explainer.core.console import print_table


def pack_rows() -> list[dict]:
    """One record per pack, built-in then on disk: what `pack list --json` prints."""
    from explainer.packs.catalogue import PACKS
    from explainer.packs.store import user_packs
    from explainer.recognition.registry import RECOGNIZERS

    rows = []
    for name, spec in PACKS.items():
        entry = RECOGNIZERS[spec.recognizer]
        rows.append({"name": name, "source": "built-in", "recognizer": spec.recognizer, "crop": entry.crop,
                     "metric": entry.metric, "decoder": spec.decoder, "description": spec.description,
                     "available": spec.transformer_path.is_file()})
    for manifest in user_packs():
        if manifest.name in PACKS:
            continue
        from explainer.packs.store import pack_dir
        from explainer.packs.user_recognizers import read_spec

        spec = read_spec(pack_dir(manifest.name) / manifest.recognizer)
        rows.append({"name": manifest.name, "source": manifest.kind, "recognizer": spec.file, "crop": spec.crop,
                     "metric": spec.metric, "decoder": manifest.decoder, "description": manifest.description,
                     "available": True, "threshold": manifest.calibration.get("value"),
                     "auc": manifest.calibration.get("auc"), "folder": str(pack_dir(manifest.name))})
    return rows


def cmd_pack_list(args) -> int:
    rows = pack_rows()
    if args.json:
        print(json.dumps({"packs": rows}, indent=2))
        return 0
    print_table(["pack", "source", "recognizer", "crop", "metric", "decoder", "description"],
                [[r["name"], r["source"], r["recognizer"], r["crop"], r["metric"], r["decoder"], r["description"]]
                 for r in rows])
    return 0


def cmd_pack_create(args) -> int:
    from explainer.packs import create as pack_create

    chosen = [bool(args.recognizer), bool(args.paper), bool(args.insightface)]
    if sum(chosen) != 1:
        print("give exactly one of: NAME --recognizer FILE, --paper DIR, --insightface buffalo_l|buffalo_s",
              file=sys.stderr)
        return 2
    if args.recognizer and not args.name:
        print("name the pack: facexplain pack create NAME --recognizer FILE", file=sys.stderr)
        return 2
    if args.paper:
        pack_create.create_paper_packs(args.paper, config=args.config, min_auc=args.min_auc)
    elif args.insightface:
        for model in args.insightface.split(","):
            pack_create.create_insightface_pack(model.strip(), root=args.insightface_root, config=args.config)
    else:
        pack_create.create_pack(args.name, args.recognizer, crop=args.crop, metric=args.metric, config=args.config,
                                min_auc=args.min_auc, pixel_mean=args.pixel_mean, pixel_std=args.pixel_std,
                                bgr=args.bgr, train_args=_train_args(args.train_arg))
    return 0


def _train_args(pairs: list[str] | None) -> tuple[str, ...]:
    """["data=DIR", ...] -> ("--data", "DIR", ...)."""
    out = []
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--train-arg takes KEY=VALUE, got {pair!r}")
        out += [f"--{key}", value]
    return tuple(out)


def add_pack_commands(sub) -> None:
    from explainer.packs.store import DEFAULT_CONFIG, MIN_AUC  # no torch at start-up

    pack = sub.add_parser("pack", help="model packs: list them, make your own").add_subparsers(
        dest="pack_command", required=True)
    listing = pack.add_parser("list", help="built-in packs and the packs on disk ($FACEXPLAIN_HOME/packs)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=cmd_pack_list)
    create = pack.add_parser("create", help="a pack from your recognizer (ONNX or checkpoint), the paper's "
                                            "checkpoints, or insightface's published models")
    create.add_argument("name", nargs="?", help="the new pack's name (lower case, digits, . _ -)")
    create.add_argument("--recognizer", metavar="FILE", help="an ONNX file or a checkpoint `checkpoint identify` knows")
    create.add_argument("--paper", metavar="DIR", help="a copy of the paper's checkpoint folder: makes "
                                                       "paper-arcface-r50 and paper-mobiface")
    create.add_argument("--insightface", metavar="MODELS", help="buffalo_l and/or buffalo_s (comma-separated): "
                        "fetched with insightface's downloader (needs internet; non-commercial licence)")
    create.add_argument("--insightface-root", default="~/.insightface", metavar="DIR",
                        help="where insightface keeps its models (ROOT/models/NAME/)")
    create.add_argument("--crop", choices=("arcface112", "dlib150"), help="the aligned crop the model takes "
                        "(default arcface112)")
    create.add_argument("--metric", choices=("cosine", "euclidean"), help="how embeddings compare (default cosine)")
    create.add_argument("--config", default=DEFAULT_CONFIG, metavar="NAME",
                        help=f"transformer training config: offline-*, cpu-tiny (seconds; a smoke test), paper-gpu-* "
                             f"(default {DEFAULT_CONFIG})")
    create.add_argument("--min-auc", type=float, default=MIN_AUC, metavar="A",
                        help="refuse a model whose AUC on the offline pairs is below this")
    create.add_argument("--pixel-mean", type=float, metavar="M", help="ONNX input: (pixel - M) / S (default 127.5)")
    create.add_argument("--pixel-std", type=float, metavar="S", help="(default 127.5)")
    create.add_argument("--bgr", action="store_true", help="the ONNX model takes BGR input")
    create.add_argument("--train-arg", action="append", metavar="KEY=VALUE",
                        help="passed to the trainer as --KEY VALUE (e.g. data=DIR for paper-gpu-*); repeatable")
    create.set_defaults(func=cmd_pack_create)
