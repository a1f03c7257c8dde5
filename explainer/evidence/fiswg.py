"""FISWG facial components for facexplain's attributes (Facial Identification Scientific Working Group,
"Facial Image Comparison Feature List for Morphological Analysis": component names as its list groups
features). Expression, head pose, age and accessories are not facial components in FISWG's list; they
are named as what they are (a condition of the photo, or an object worn) so no row pretends otherwise.

Each attribute is named by the facial component it describes; attributes that measure a relation
between components (ratios) name the first component of the ratio and, in the table in
docs/attributes.md, both. LBP cells name "skin" for the texture they summarise, with the face region
(row, column of the 7x7 grid) in the attribute's own name.
"""
from __future__ import annotations

import re

COMPONENTS = ("face/head outline", "face/head composition", "eyes", "eyebrows", "nose", "mouth", "chin/jawline",
              "hair", "skin", "accessories (worn)", "expression (condition)", "head pose (condition)",
              "age (overall appearance)")
FISWG = {
    "shape": "face/head outline",
    "expression": "expression (condition)",
    "head_pose": "head pose (condition)",
    "skin_color": "skin",
    "hair_color": "hair",
    "age": "age (overall appearance)",
    "glasses": "accessories (worn)",
    "hat": "accessories (worn)",
    "earrings": "accessories (worn)",
    "nose_width_to_mouth_width": "nose",
    "eye_distance_to_mouth_width": "eyes",
    "left_eye_to_face_edge_to_mouth_width": "eyes",
    "right_eye_to_face_edge_to_mouth_width": "eyes",
    "nose_length_to_nose_to_underjaw": "nose",
    "eyebrow_width_to_nose_width": "eyebrows",
    "mouth_to_underjaw_to_eyebrow_to_mouth": "face/head composition",
    "eye_to_nose_to_nose_to_underjaw": "face/head composition",
    "eye_distance_to_face_width": "eyes",
    "eye_width_to_eyebrow_width": "eyes",
    "face_height_to_face_width": "face/head outline",
    "jaw_width_to_face_width": "chin/jawline",
    "mouth_width_to_face_width": "mouth",
    "eye_openness": "eyes",
    "mouth_openness": "mouth",
    "upper_to_lower_lip_thickness": "mouth",
    "nose_width_to_face_width": "nose",
    "eyebrow_height_to_eye_distance": "eyebrows",
    "chin_height_to_face_height": "chin/jawline",
    "philtrum_to_nose_length": "mouth",
    "inner_eye_distance_to_eye_distance": "eyes",
    "skin_tone_ita": "skin",
    "hair_color_lab": "hair",
    "iris_color_lab": "eyes",
    "shape_2d": "face/head outline",
    "expression_3dmm": "expression (condition)",
}
_LBP = re.compile(r"^lbp_r\d+_c\d+$")


def fiswg_component(attribute: str) -> str:
    """The FISWG component of an attribute name; KeyError names an attribute without one."""
    if attribute in FISWG:
        return FISWG[attribute]
    if _LBP.match(attribute):
        return "skin"
    raise KeyError(f"attribute {attribute!r} has no FISWG component; add it to explainer/evidence/fiswg.py")
