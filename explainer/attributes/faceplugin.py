"""Head pose, expression and SSR-Net age (one of age.py's two models) from faceplugin's ONNX networks
(npm faceplugin-face-recognition-js).

Pre- and post-processing follow the package's lib/fr_pose.js, fr_expression.js and fr_age.js, which run
each network on a region derived from the UltraFace detector's box. In ATTRIBUTE_CROP that box is fixed
(frame.FACE_BOX mapped back to UltraFace geometry), so no detector runs here.

- pose: the box grown by a quarter of its size on each side, 224x224 RGB, ImageNet mean/std; three
  66-bin heads (HopeNet-style), yaw/pitch/roll = 3 * E[bin] - 99 degrees.
- expression: a box 1.2x the detector's, anchored at its top-left corner (as fr_expression.js does),
  224x224 RGB in [0, 1]; softmax over 7 classes.
- age: the box scaled 1.4x about its centre, 64x64 RGB, ImageNet mean/std; SSR-Net's three stages
  merged as fr_age.js mergeAge does, in years.

The nets were exported with batch size 1; nets.py runs them batched (bit-identical per face).
"""
from __future__ import annotations

import cv2
import numpy as np

from explainer.attributes.nets import run
from explainer.faces.align import warp
from explainer.faces.detect import ULTRAFACE_TO_HOG
from explainer.attributes.base import AttributeEstimator, FaceBatch
from explainer.attributes.frame import FACE_BOX

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

Box = tuple[float, float, float, float]


def ultraface_box(hog_box: Box) -> Box:
    """The UltraFace box whose HOG-geometry box is `hog_box` (inverse of detect.ULTRAFACE_TO_HOG)."""
    x0, y0, x1, y1 = hog_box
    fx0, fy0, fx1, fy1 = ULTRAFACE_TO_HOG
    width, height = (x1 - x0) / (fx1 - fx0), (y1 - y0) / (fy1 - fy0)
    ux0, uy0 = x0 - fx0 * width, y0 - fy0 * height
    return (ux0, uy0, ux0 + width, uy0 + height)


# The detector box of a face in ATTRIBUTE_CROP.
CROP_DETECTOR_BOX = ultraface_box(FACE_BOX)


def region(image: np.ndarray, box: Box, size: int) -> np.ndarray:
    """`box` (x0, y0, x1, y1 edges, pixels) of `image` resized to size x size (bilinear, area-reduced when
    shrinking); outside the image is black, as a photo's aligned crop is outside the photo."""
    x0, y0, x1, y1 = box
    # Box edges -> output edges: pixel centre x maps to (x + 0.5 - x0) * scale - 0.5.
    scale_x, scale_y = size / (x1 - x0), size / (y1 - y0)
    matrix = np.array([[scale_x, 0.0, (0.5 - x0) * scale_x - 0.5], [0.0, scale_y, (0.5 - y0) * scale_y - 0.5]])
    if abs(scale_x - scale_y) < 1e-9:
        return warp(image, matrix, size, border=cv2.BORDER_CONSTANT)
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _imagenet(patch: np.ndarray) -> np.ndarray:
    normalised = (patch.astype(np.float32) / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


# -- pose ------------------------------------------------------------------------------------------
def pose_box(detector_box: Box) -> Box:
    x0, y0, x1, y1 = detector_box
    grow_x, grow_y = (x1 - x0) / 4, (y1 - y0) / 4
    return (x0 - grow_x, y0 - grow_y, x1 + grow_x, y1 + grow_y)


def head_poses(images: np.ndarray, detector_box: Box = CROP_DETECTOR_BOX) -> np.ndarray:
    """(yaw, pitch, roll) in degrees [B, 3] of the face in `detector_box` of each uint8 RGB image."""
    tensor = np.stack([_imagenet(region(image, pose_box(detector_box), 224))[0] for image in images]) \
        if len(images) else np.zeros((0, 3, 224, 224), np.float32)
    heads = run("faceplugin-pose", tensor, ["output", "617", "618"])
    bins = np.arange(66, dtype=np.float64)
    return np.stack([(_softmax(h.astype(np.float64)) * bins).sum(-1) * 3 - 99 for h in heads], axis=1)


# -- expression ------------------------------------------------------------------------------------
# The order of the 7 classes: the package names none. FER2013's order (angry, disgust, fear, happy, sad,
# surprise, neutral) is the one that fits what the net says on our photos (docs/attributes.md).
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def expression_box(detector_box: Box) -> Box:
    x0, y0, x1, y1 = detector_box
    return (x0, y0, x0 + 1.2 * (x1 - x0), y0 + 1.2 * (y1 - y0))


def expressions(images: np.ndarray, detector_box: Box = CROP_DETECTOR_BOX) -> np.ndarray:
    """Probabilities [B, 7] of the EXPRESSIONS for the face in `detector_box` of each uint8 RGB image."""
    patches = [region(image, expression_box(detector_box), 224) for image in images]
    tensor = np.stack([(patch.astype(np.float32) / 255.0).transpose(2, 0, 1) for patch in patches]) \
        if patches else np.zeros((0, 3, 224, 224), np.float32)
    return _softmax(run("faceplugin-expression", tensor, ["output"])[0].astype(np.float64))


# -- age -------------------------------------------------------------------------------------------
AGE_SCALES = (1.0, 1.1, 1.2, 1.3, 1.4)  # box scales averaged by ages_averaged
_AGE_OUTPUTS = ("prob_stage_1", "prob_stage_2", "prob_stage_3", "stage1_delta_k", "stage2_delta_k",
                "stage3_delta_k", "index_offset_stage1", "index_offset_stage2", "index_offset_stage3")


def age_box(detector_box: Box, scale: float = 1.4) -> Box:
    x0, y0, x1, y1 = detector_box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w, half_h = (x1 - x0) * scale / 2, (y1 - y0) * scale / 2
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def _merge_age(p1, p2, p3, d1, d2, d3, o1, o2, o3, stages: int = 3, lambda_local: float = 1.0,
               lambda_d: float = 1.0, v: float = 101.0) -> float:
    """SSR-Net's soft stagewise regression (fr_age.js mergeAge): each stage refines the previous one's
    bins; `d` widens/narrows a stage's bins, `o` shifts each bin's index."""
    index = np.arange(stages, dtype=np.float64)
    width1 = stages * (1 + lambda_d * d1[0])
    width2 = stages * (1 + lambda_d * d2[0])
    width3 = stages * (1 + lambda_d * d3[0])
    a = ((index + lambda_local * o1) * p1).sum() / width1
    b = ((index + lambda_local * o2) * p2).sum() / width1 / width2
    c = ((index + lambda_local * o3) * p3).sum() / width1 / width2 / width3
    return float((a + b + c) * v)


def ages_averaged(images: np.ndarray, detector_box: Box = CROP_DETECTOR_BOX) -> np.ndarray:
    """Age in years [B] of each face: SSR-Net averaged over box scales 1.0-1.4 and a mirror image (10 runs
    of a 64 px net, all in one batch). SSR-Net moves by several years when its box shifts by a few
    pixels; on ORL (20 people x 4 photos) averaging raises the share of age variance that is between
    people, not between photos of one person, from 0.77 to 0.82."""
    patches = []
    for image in images:
        mirrored = np.ascontiguousarray(image[:, ::-1])
        for scale in AGE_SCALES:
            for picture in (image, mirrored):
                patches.append(_imagenet(region(picture, age_box(detector_box, scale), 64))[0])
    if not patches:
        return np.zeros(0)
    outputs = [o.astype(np.float64).reshape(len(patches), -1)
               for o in run("faceplugin-age", np.stack(patches), list(_AGE_OUTPUTS))]
    estimates = np.array([_merge_age(*[o[k] for o in outputs]) for k in range(len(patches))])
    return estimates.reshape(len(images), -1).mean(1)


# -- estimators ------------------------------------------------------------------------------------
# A face must fill the detector box: when more than this share of it is outside the photo or the decoder
# frame (black), the nets would be judging a border, not a face.
MAX_OUTSIDE = 0.5


def face_in_view(batch: FaceBatch) -> np.ndarray:
    x0, y0, x1, y1 = (int(round(v)) for v in FACE_BOX)
    window = batch.outside[:, max(y0, 0):y1, max(x0, 0):x1]
    return (window.mean((1, 2)) <= MAX_OUTSIDE) & batch.face_present


class HeadPose(AttributeEstimator):
    name = "head_pose"
    group = "structure"
    kind = "continuous"
    dim = 3
    description = ("yaw, pitch, roll in degrees (faceplugin fr_pose); in the aligned frame, where the eye "
                   "line is level, so roll is the head's tilt beyond the eyes' (small)")

    def _estimate(self, batch: FaceBatch):
        valid = face_in_view(batch)
        values = np.full((len(batch), 3), np.nan)
        values[valid] = head_poses(batch.pixels[valid])
        # The bins span -99..+99 degrees; an expectation at the ends means the net saw no face it knows.
        valid &= np.all(np.abs(np.nan_to_num(values, nan=99.0)) < 90.0, axis=1)
        return values, valid


class Expression(AttributeEstimator):
    name = "expression"
    group = "structure"
    kind = "categorical"
    dim = len(EXPRESSIONS)
    description = "probabilities of " + ", ".join(EXPRESSIONS) + " (faceplugin fr_expression)"

    def _estimate(self, batch: FaceBatch):
        valid = face_in_view(batch)
        values = np.full((len(batch), self.dim), np.nan)
        values[valid] = expressions(batch.pixels[valid])
        return values, valid
