"""Face geometry every layer shares: landmark schemes, crop specs, mean faces, similarity transforms.

The lowest module of explainer (numpy only): `faces` aligns photos to a `CropSpec`, `recognition`
declares each model's crop, `generation` places its templates in a decoder's frame, all from here.
Coordinates are pixel centres: pixel (row r, column c) is the point (x=c, y=r), as in dlib and OpenCV.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The two five-point schemes our crops are defined in. Points are (x, y) in crop pixels.
#  - "arcface5": left-eye centre, right-eye centre, nose tip, left and right mouth corner (image left
#    first), the convention of the ArcFace 112x112 template.
#  - "dlib5": dlib's 5-point predictor order: outer and inner corner of the eye on the image right (the
#    subject's left eye), outer and inner corner of the image-left eye, then the nose base.
LANDMARK_SCHEMES = ("arcface5", "dlib5")


@dataclass(frozen=True)
class CropSpec:
    """The canonical aligned crop a model expects: size, and where the five points land in it."""

    size: int
    scheme: str
    template: tuple[tuple[float, float], ...]
    # How the crop is warped from the photo: "similarity" (least squares over the five points) or
    # "dlib_chip" (dlib.get_face_chip with `padding`, which is what dlib's own pipeline does).
    method: str = "similarity"
    padding: float = 0.0

    def __post_init__(self) -> None:
        if self.scheme not in LANDMARK_SCHEMES:
            raise ValueError(f"unknown landmark scheme {self.scheme!r}; expected one of {LANDMARK_SCHEMES}")
        if len(self.template) != 5:
            raise ValueError(f"a crop template has 5 points, got {len(self.template)}")


# The ArcFace / insightface 112x112 five-point template (arcface5 scheme).
ARCFACE_112 = CropSpec(
    size=112,
    scheme="arcface5",
    template=(
        (38.2946, 51.6963),
        (73.5318, 51.5014),
        (56.0252, 71.7366),
        (41.5493, 92.3655),
        (70.7299, 92.2041),
    ),
)


# dlib's get_face_chip_details maps the five dlib points onto these points of its mean face, in
# units of the unpadded face box (dlib/image_transforms/interpolation.h): right-eye outer and inner
# corner, left-eye outer and inner corner, nose base.
DLIB_MEAN_FACE_5 = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)

# dlib's 68-point mean face (dlib/image_transforms/interpolation.h, get_face_chip_details: mean_face_shape_x/y
# of points 17-67, face-box units): the points the FFHQ frame needs (explainer.generation.ffhq).
DLIB68_MEAN_FACE = {  # point index -> (x, y)
    30: (0.490127, 0.515625),
    36: (0.121737, 0.216423), 37: (0.187122, 0.178758), 38: (0.265825, 0.179852),
    39: (0.334606, 0.231733), 40: (0.260918, 0.245099), 41: (0.182743, 0.244077),
    42: (0.645647, 0.231733), 43: (0.714428, 0.179852), 44: (0.793132, 0.178758),
    45: (0.858516, 0.216423), 46: (0.797510, 0.244077), 47: (0.719335, 0.245099),
    48: (0.254149, 0.780233), 54: (0.726104, 0.780233),
}


def dlib_chip_template(size: int, padding: float) -> tuple[tuple[float, float], ...]:
    """Where get_face_chip puts the mean-face points in a size x size chip (pixel coordinates).

    get_face_chip_details fits a similarity (least squares) from a chip frame, where point i sits at
    q_i = (padding + p_i) / (1 + 2 padding) * size, to the detected landmarks, and keeps it as a
    rectangle of side size*s image pixels (s: image pixels per frame unit) and an angle. dlib's
    drectangle counts its width as right - left + 1, so frame point q lands on chip pixel
    (size-1)/2 + k (q - size/2) with k = s (size-1) / (s size - 1): it depends slightly on the face's
    scale in the photo. We take s = 1 (k = 1): q - 0.5, the pixel-centre convention of a plain
    similarity warp. For any s >= 0.5 (k from 1.0068 down to (size-1)/size) dlib's own points stay
    within 0.33 px of these.
    """
    scale = size / (1 + 2 * padding)
    return tuple(((padding + x) * scale - 0.5, (padding + y) * scale - 0.5) for x, y in DLIB_MEAN_FACE_5)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix of the least-squares similarity (no reflection) mapping points `src` onto `dst`.

    Umeyama (1991) closed form: equal weights, plain least squares (no robust estimator: with five
    points, dropping one would discard real geometry).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching [N, 2] point sets, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c ** 2).sum() / len(src)
    if src_var <= 0:
        raise ValueError("the source points all coincide; no transform is defined")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0  # forbid a mirror image
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src_var
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])
