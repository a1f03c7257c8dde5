"""Every attribute estimator in its stable order, and `estimate_all`, which shares work across them.

FAMILIES is the extension point for attributes: a family is a function returning estimators, and
the registered families, in order, make the attribute list (reports, MI tables and s_a all follow it).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from explainer.attributes.accessories import accessory_estimators
from explainer.attributes.age import Age
from explainer.attributes.base import AttributeEstimator, FaceBatch
from explainer.attributes.colour import HairColour, SkinColour
from explainer.attributes.custom import custom_estimators
from explainer.attributes.faceplugin import Expression, HeadPose
from explainer.attributes.lbp import lbp_estimators
from explainer.attributes.shape import ShapeEstimator
from explainer.attributes.tddfa import MorphableExpression, MorphableShape
from explainer.core.registry import Registry, UnknownName

CORE = ("shape", "expression", "head_pose", "skin_color", "hair_color", "age", "glasses", "hat", "earrings")


def core_estimators() -> list[AttributeEstimator]:
    """The paper's nine, in CORE order."""
    accessories = {e.name: e for e in accessory_estimators()}
    return [MorphableShape(), Expression(), HeadPose(), SkinColour(), HairColour(), Age(),
            accessories["glasses"], accessories["hat"], accessories["earrings"]]


def second_opinions() -> list[AttributeEstimator]:
    """`shape_2d` (the landmark PCA that was `shape`) and `expression_3dmm` (beside the categorical one)."""
    return [ShapeEstimator(), MorphableExpression()]


FAMILIES: Registry = Registry("attribute family", {
    "core": core_estimators,  # the paper's nine
    "custom": custom_estimators,  # landmark and colour measurements
    "lbp": lbp_estimators,  # 7x7 LBP texture cells
    "second": second_opinions,  # other views of core attributes: 2-D landmark shape, 3DMM expression
})


@lru_cache(maxsize=1)
def _all() -> tuple[AttributeEstimator, ...]:
    everything = tuple(e for family in FAMILIES.values() for e in family())
    assert tuple(e.name for e in everything[:len(CORE)]) == CORE
    assert len({e.name for e in everything}) == len(everything), "attribute names must be unique"
    return everything


def estimators() -> list[AttributeEstimator]:
    """The paper's nine, then the 24 custom attributes, the 49 LBP cells (lbp_r{row}_c{col}), then
    shape_2d and expression_3dmm."""
    return list(_all())


def n_attributes() -> int:
    """How many attributes there are: the length of the registry, never a number written in code."""
    return len(_all())


def estimate_all(crops: torch.Tensor | np.ndarray, names=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every estimator (or those in `names`) on one batch of ATTRIBUTE_CROP crops: {name: (values
    [B, dim], valid [B])} in estimators() order. Landmarks, colour conversion, LBP codes, accessory
    features and the 3DMM fit are computed once for the batch."""
    batch = FaceBatch(crops)
    chosen = [e for e in _all() if names is None or e.name in set(names)]
    if names is not None and len(chosen) != len(set(names)):
        unknown = sorted(set(names) - {e.name for e in chosen})
        raise UnknownName("attribute", unknown[0] if len(unknown) == 1 else unknown, [e.name for e in _all()])
    return {e.name: e.estimate_batch(batch) for e in chosen}
