"""From a user's photo to each model's canonical face crop: load, detect, landmarks, align.

    image = load_image(upload)               # uint8 RGB, or ImageError
    face = find_face(image)                  # the largest face, or NoFaceError / FaceTooSmallError
    crop = align(image, face.landmarks, model.crop)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explainer.core.errors import FaceTooSmallError, NoFaceError
from explainer.core.geometry import CropSpec, similarity_transform
from explainer.faces.align import align, to_tensor
from explainer.faces.detect import FaceBox, detect_faces
from explainer.faces.image_io import ImageSource, load_image, sha256_of
from explainer.faces.landmarks import Landmarks, predict_landmarks

__all__ = [
    "MIN_FACE_PX", "DetectedFace", "FaceBox", "ImageSource", "Landmarks", "align", "aligned_crop",
    "detect_faces", "find_face", "load_image", "predict_landmarks", "sha256_of", "similarity_transform",
    "to_tensor",
]

# Smallest usable face: 48 pixels of box width (dlib HOG geometry), about 20 pixels between the eyes.
# Below ~20 pixels between the eyes recognition accuracy falls off sharply, and the 112-pixel crops
# (35 pixels between the eyes) would be more than 1.75x invented by interpolation. ORL's faces, the
# smallest we use, are 63..101 pixels wide, so they pass with a margin.
MIN_FACE_PX = 48


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """The face chosen in a photo, with how it was found.

    note: "" for a photo with exactly one face; otherwise a sentence for the investigator saying how many
    faces there were and which one was used.
    """

    box: FaceBox
    landmarks: Landmarks
    detector: str
    faces_found: int
    note: str


def find_face(image: ImageSource, *, min_face_px: float = MIN_FACE_PX) -> DetectedFace:
    """The largest face in `image` (anything `load_image` accepts), with its landmarks. Deterministic.

    Raises NoFaceError when there is no face and FaceTooSmallError when the largest face is narrower
    than `min_face_px` pixels.
    """
    pixels = _pixels(image)
    faces = detect_faces(pixels, min_detect_px=min(min_face_px, 40.0))
    if not faces:
        raise NoFaceError(
            "No face was found in this picture. The face should be roughly frontal, at least "
            f"{min_face_px:.0f} pixels wide, and not heavily covered or blurred; try a clearer photo, or "
            "crop the picture around the face and rotate it upright.")
    chosen = faces[0]
    if chosen.width < min_face_px:
        raise FaceTooSmallError(
            f"The face in this picture is only {chosen.width:.0f} pixels wide; at least {min_face_px:.0f} "
            "are needed for a reliable comparison. Use the original, higher-resolution photo if there is "
            "one (enlarging a small picture does not add detail).",
            face_px=chosen.width, min_face_px=min_face_px)
    landmarks = predict_landmarks(pixels, chosen)
    return DetectedFace(box=chosen, landmarks=landmarks, detector=chosen.detector, faces_found=len(faces),
                        note=_note(faces, pixels.shape[1]))


def aligned_crop(image: ImageSource, crop: CropSpec, *, min_face_px: float = MIN_FACE_PX) -> np.ndarray:
    """find_face + align: the largest face of `image` as `crop` asks, uint8 RGB [S, S, 3]."""
    pixels = _pixels(image)
    face = find_face(pixels, min_face_px=min_face_px)
    return align(pixels, face.landmarks, crop)


def _pixels(image: ImageSource) -> np.ndarray:
    """uint8 RGB pixels of `image`: a ready array is used as it is (no copy), anything else is loaded."""
    if (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0):
        return np.ascontiguousarray(image)
    return load_image(image)


def _note(faces: list[FaceBox], image_width: int) -> str:
    if len(faces) == 1:
        return ""
    return f"{len(faces)} faces found; used the largest ({_where(faces[0], image_width)})"


def _where(face: FaceBox, image_width: int) -> str:
    """Horizontal position of a face in words, by thirds of the picture."""
    x = face.centre[0] / image_width
    if x < 1 / 3:
        return "left of centre"
    if x > 2 / 3:
        return "right of centre"
    return "in the centre"
