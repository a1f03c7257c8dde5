"""What each attribute is called where people read it: charts, the app's summary, report.html and report.pdf.

The identifiers (`philtrum_to_nose_length`) stay in report.json and the tables that list definitions;
everything written for a reader goes through `phrase` (inside a sentence) or `label` (a chart axis).
Every registered attribute must have a phrase here (tests/test_reports.py checks FAMILIES against it).
"""
from __future__ import annotations

import re

from explainer.attributes.registry import CORE

# One phrase per attribute, as it reads inside a sentence ("the counterfactual moved <phrase>").
# Left and right are the image's, as in docs/attributes.md.
PHRASES = {
    # the paper's nine
    "shape": "the 3-D shape of the face",
    "expression": "the facial expression",
    "head_pose": "the pose of the head",
    "skin_color": "the skin colour",
    "hair_color": "the hair colour",
    "age": "the apparent age",
    "glasses": "whether glasses are worn",
    "hat": "whether a hat is worn",
    "earrings": "whether earrings are worn",
    # landmark ratios and colour measurements
    "nose_width_to_mouth_width": "the width of the nose against the mouth",
    "eye_distance_to_mouth_width": "the distance between the eyes against the mouth width",
    "left_eye_to_face_edge_to_mouth_width": "the gap from the left eye to the face edge",
    "right_eye_to_face_edge_to_mouth_width": "the gap from the right eye to the face edge",
    "nose_length_to_nose_to_underjaw": "the length of the nose against nose-to-chin",
    "eyebrow_width_to_nose_width": "the width of the eyebrows against the nose",
    "mouth_to_underjaw_to_eyebrow_to_mouth": "the mouth-to-chin distance against brows-to-mouth",
    "eye_to_nose_to_nose_to_underjaw": "the eyes-to-nose distance against nose-to-chin",
    "eye_distance_to_face_width": "the distance between the eyes",
    "eye_width_to_eyebrow_width": "the width of the eyes against the eyebrows",
    "face_height_to_face_width": "the height of the face against its width",
    "jaw_width_to_face_width": "the width of the jaw",
    "mouth_width_to_face_width": "the width of the mouth",
    "eye_openness": "how open the eyes are",
    "mouth_openness": "how open the mouth is",
    "upper_to_lower_lip_thickness": "the thickness of the upper lip against the lower",
    "nose_width_to_face_width": "the width of the nose",
    "eyebrow_height_to_eye_distance": "the height of the eyebrows above the eyes",
    "chin_height_to_face_height": "the height of the chin",
    "philtrum_to_nose_length": "the gap between the nose and the upper lip",
    "inner_eye_distance_to_eye_distance": "the distance between the inner eye corners",
    "skin_tone_ita": "the skin tone (light to dark)",
    "hair_color_lab": "the average hair colour",
    "iris_color_lab": "the eye colour",
    # second views of core attributes
    "shape_2d": "the outline of the face (2-D landmarks)",
    "expression_3dmm": "the facial expression (3-D model)",
}
PAPER_ATTRIBUTES = frozenset(CORE)  # Ren et al.'s nine; the rest are this project's additions

# The 7x7 LBP grid over ATTRIBUTE_CROP (128 px, rows of 18 px): the template puts the eyes in row 3, the
# nose tip in row 4 and the mouth corners in row 5; columns 2 and 4 hold the eyes.
LBP_CELL = re.compile(r"^lbp_r(\d+)_c(\d+)$")
LBP_ROWS = ("top of the head", "forehead", "eyebrows", "eyes", "nose", "mouth", "chin")
LBP_COLUMNS = ("left edge", "outer left", "left", "middle", "right", "outer right", "right edge")


def lbp_cell(name: str) -> tuple[int, int] | None:
    """(row, column) of an LBP cell's name, None for any other attribute."""
    match = LBP_CELL.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def phrase(name: str) -> str:
    """The attribute as it reads inside a sentence: "the distance between the eyes"."""
    cell = lbp_cell(name)
    if cell is not None:
        return f"the texture at the {LBP_ROWS[cell[0]]} ({LBP_COLUMNS[cell[1]]})"
    try:
        return PHRASES[name]
    except KeyError:
        # A family registered later without a phrase still reads (tests/test_reports.py catches the gap).
        return name.replace("_", " ")


def label(name: str) -> str:
    """The attribute as a chart label: its phrase without a leading "the", capitalised."""
    text = phrase(name)
    text = text[4:] if text.startswith("the ") else text
    return text[:1].upper() + text[1:]


def is_paper(name: str) -> bool:
    """Whether the attribute is one of the paper's nine (charts set them apart from the custom ones)."""
    return name in PAPER_ATTRIBUTES
