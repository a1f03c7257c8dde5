"""Attribute estimation on aligned faces: the paper's nine (shape as 3DMM coefficients), 24 custom
landmark/colour attributes, 49 LBP texture cells and two second views (shape_2d, expression_3dmm), on
real photos and on recovered faces alike.

    crops = crops_from_photos(["a.jpg"])            # or crops_from_decoder(images, decoder)
    results = estimate_all(crops)                   # {name: (values [B, dim], valid [B])}

Every estimator reads ATTRIBUTE_CROP; see docs/attributes.md for each attribute's definition.
"""
from explainer.attributes.base import GROUPS, KINDS, AttributeEstimator, FaceBatch
from explainer.attributes.frame import ATTRIBUTE_CROP, crops_from_decoder, crops_from_photos, jittered_crops_from_decoder
from explainer.attributes.registry import CORE, FAMILIES, estimate_all, estimators, n_attributes

__all__ = ["ATTRIBUTE_CROP", "CORE", "FAMILIES", "GROUPS", "KINDS", "AttributeEstimator", "FaceBatch",
           "crops_from_decoder", "crops_from_photos", "estimate_all", "estimators", "jittered_crops_from_decoder",
           "n_attributes"]
