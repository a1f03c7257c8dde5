"""All 82 estimators in their stable order, and `estimate_all`, which shares work across them."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from explainer.attributes.accessories import accessory_estimators
from explainer.attributes.base import AttributeEstimator, FaceBatch
from explainer.attributes.colour import HairColour, SkinColour
from explainer.attributes.custom import custom_estimators
from explainer.attributes.faceplugin import Age, Expression, HeadPose
from explainer.attributes.lbp import lbp_estimators
from explainer.attributes.shape import ShapeEstimator

CORE = ("shape", "expression", "head_pose", "skin_color", "hair_color", "age", "glasses", "hat", "earrings")


@lru_cache(maxsize=1)
def _all() -> tuple[AttributeEstimator, ...]:
    accessories = {e.name: e for e in accessory_estimators()}
    core = [ShapeEstimator(), Expression(), HeadPose(), SkinColour(), HairColour(), Age(),
            accessories["glasses"], accessories["hat"], accessories["earrings"]]
    everything = tuple(core + custom_estimators() + lbp_estimators())
    assert tuple(e.name for e in everything[:9]) == CORE
    assert len(everything) == 82 and len({e.name for e in everything}) == 82
    return everything


def estimators() -> list[AttributeEstimator]:
    """The paper's nine, then the 24 custom attributes, then the 49 LBP cells (lbp_r{row}_c{col})."""
    return list(_all())


def estimate_all(crops: torch.Tensor | np.ndarray, names=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every estimator (or those in `names`) on one batch of ATTRIBUTE_CROP crops: {name: (values
    [B, dim], valid [B])} in estimators() order. Landmarks, colour conversion, LBP codes and accessory
    features are computed once for the batch."""
    batch = FaceBatch(crops)
    chosen = [e for e in _all() if names is None or e.name in set(names)]
    if names is not None and len(chosen) != len(set(names)):
        unknown = sorted(set(names) - {e.name for e in chosen})
        raise KeyError(f"unknown attributes {unknown}")
    return {e.name: e.estimate_batch(batch) for e in chosen}
