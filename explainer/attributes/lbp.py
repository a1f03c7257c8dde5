"""LBP texture: the crop split into a 7x7 grid, a uniform LBP histogram per cell, one attribute per cell
(`lbp_r{row}_c{col}`, rows top to bottom, columns image-left to right).

Local binary patterns (scikit-image, P = 8 neighbours at radius R = 1, "uniform": rotation-invariant
uniform patterns, codes 0..9) on the grey crop; each cell's 10-bin histogram is normalised to sum to 1.
The crop is 128 px, so cells are 18-19 px (edges by np.linspace rounding). A cell is invalid when more
than half of it lies outside the photo or the decoder's frame (exact black): its texture would be the
border's.
"""
from __future__ import annotations

import numpy as np

from explainer.attributes.base import AttributeEstimator, FaceBatch
from explainer.attributes.frame import CROP_SIZE

GRID = 7
POINTS, RADIUS = 8, 1
BINS = POINTS + 2  # uniform patterns 0..P plus one bin for all non-uniform ones
EDGES = np.linspace(0, CROP_SIZE, GRID + 1).round().astype(int)
MAX_OUTSIDE = 0.5


def lbp_codes(batch: FaceBatch) -> np.ndarray:
    """Uniform LBP codes of every crop, int [B, S, S] (computed once per batch)."""
    if "lbp_codes" not in batch.cache:
        from skimage.feature import local_binary_pattern

        codes = [local_binary_pattern(grey, POINTS, RADIUS, method="uniform") for grey in batch.grey]
        batch.cache["lbp_codes"] = np.stack(codes).astype(np.int64) if codes else \
            np.zeros((0, CROP_SIZE, CROP_SIZE), np.int64)
    return batch.cache["lbp_codes"]


class LBPCell(AttributeEstimator):
    group = "lbp"
    kind = "continuous"
    dim = BINS

    def __init__(self, row: int, col: int) -> None:
        self.row, self.col = row, col
        self.name = f"lbp_r{row}_c{col}"
        self.description = f"uniform LBP (P=8, R=1) histogram of grid cell row {row}, column {col} of 7x7"

    def _estimate(self, batch: FaceBatch):
        rows = slice(EDGES[self.row], EDGES[self.row + 1])
        cols = slice(EDGES[self.col], EDGES[self.col + 1])
        cells = lbp_codes(batch)[:, rows, cols].reshape(len(batch), -1)
        counts = np.stack([np.bincount(cell, minlength=BINS) for cell in cells]) if len(batch) else np.zeros((0, BINS))
        values = counts / cells.shape[1]
        valid = batch.outside[:, rows, cols].reshape(len(batch), -1).mean(1) <= MAX_OUTSIDE
        return values, valid


def lbp_estimators() -> list[AttributeEstimator]:
    return [LBPCell(row, col) for row in range(GRID) for col in range(GRID)]
