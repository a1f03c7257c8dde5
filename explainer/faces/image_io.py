"""Loading user pictures safely: any common format in, uint8 RGB [H, W, 3] out, or a clear ImageError.

Pictures come from a browser upload, so they are untrusted: we bound the file size before reading, the
pixel count before decoding (decompression bombs), and turn every decoder failure into an ImageError.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps

from explainer.core.errors import ImageError

# A 50 MB file or a 50-megapixel picture is far beyond any face photo we need; anything bigger is more
# likely a mistake or an attack than evidence, and would take seconds and gigabytes to process.
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 50_000_000

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image, np.ndarray]

_TRY_AGAIN = "Try exporting the picture again as a JPEG or PNG file."


def load_image(source: ImageSource) -> np.ndarray:
    """Decode `source` (path, bytes, file object, PIL image or array) into a new uint8 RGB [H, W, 3] array.

    Files get their EXIF orientation applied (what a browser shows is what we analyse). Grey, palette,
    alpha and 16-bit pictures become 8-bit RGB; transparency is flattened onto white. Arrays are taken as
    RGB (or grey / RGBA), never BGR. Raises ImageError for anything unusable.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        _check_pixels(source.size)
        return _from_pil(source)
    data = _read_bytes(source)
    return _decode(data)


def sha256_of(source: ImageSource) -> str:
    """Hex sha256 of the raw file bytes, to record which exact file a result came from.

    Arrays and PIL images have no file behind them; for those we hash shape, dtype and the pixel buffer
    (prefixed "pixels:" so the two kinds of digest cannot be mistaken for one another).
    """
    if isinstance(source, (np.ndarray, Image.Image)):
        try:
            pixels = np.ascontiguousarray(np.asarray(source))
        except Exception as error:  # noqa: BLE001 - a lazily opened PIL image may be corrupt
            raise ImageError(f"The picture's pixels could not be read ({error}). " + _TRY_AGAIN) from error
        digest = hashlib.sha256(f"{pixels.shape}|{pixels.dtype.str}|".encode())
        digest.update(pixels.tobytes())
        return "pixels:" + digest.hexdigest()
    if isinstance(source, (str, os.PathLike)):
        digest = hashlib.sha256()
        try:
            with open(source, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or error
            raise ImageError(f"Cannot read the file {os.fspath(source)!r}: {reason}.") from error
        return digest.hexdigest()
    if isinstance(source, (bytes, bytearray, memoryview)):
        return hashlib.sha256(source).hexdigest()
    # A file object: put it back where it was, so the same upload can be loaded afterwards.
    position = source.tell() if getattr(source, "seekable", lambda: False)() else None
    data = _read_bytes(source)
    if position is not None:
        source.seek(position)
    return hashlib.sha256(data).hexdigest()


# -- reading ----------------------------------------------------------------------------------------

def _read_bytes(source: ImageSource) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(Path(source))
    elif hasattr(source, "read"):
        # Read one byte past the limit, so an oversized stream is refused without reading all of it.
        data = source.read(MAX_FILE_BYTES + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError("The upload could not be read as binary data. " + _TRY_AGAIN)
        data = bytes(data)
    else:
        raise ImageError(
            f"Cannot use a {type(source).__name__} as a picture; give a file, its bytes or an image.")
    if not data:
        raise ImageError("The file is empty (0 bytes). Check that the upload finished and try again.")
    _check_file_size(len(data))
    return data


def _read_file(path: Path) -> bytes:
    try:
        if not path.exists():
            raise ImageError(f"The file {str(path)!r} does not exist. Check the name and the folder.")
        if not path.is_file():
            raise ImageError(f"{str(path)!r} is not a file (it may be a folder). Choose a picture file.")
        _check_file_size(path.stat().st_size)
        return path.read_bytes()
    except (OSError, ValueError) as error:  # ValueError: a name with a NUL byte in it
        reason = getattr(error, "strerror", None) or error
        raise ImageError(f"Cannot read the file {str(path)!r}: {reason}.") from error


def _check_file_size(n_bytes: int) -> None:
    if n_bytes > MAX_FILE_BYTES:
        raise ImageError(
            f"The file is too large ({n_bytes / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB). "
            "Reduce the resolution or crop around the face, then upload it again.")


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"The picture has no pixels ({width}x{height}). " + _TRY_AGAIN)
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"The picture is too large ({width}x{height} pixels, {width * height / 1e6:.0f} megapixels; the "
            f"limit is {MAX_PIXELS / 1e6:.0f}). Reduce the resolution or crop around the face first.")


# -- decoding ---------------------------------------------------------------------------------------

def _decode(data: bytes) -> np.ndarray:
    # Decoding untrusted bytes can fail in many ways inside PIL's plugins (OSError, SyntaxError,
    # ValueError, struct.error, IndexError, ...); all of them mean "not a usable picture" to the user.
    with warnings.catch_warnings():
        # Damaged files make PIL warn about every odd tag; the outcome (picture or ImageError) is what
        # matters, so those warnings are silenced, except the bomb warning, which becomes an error.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.UnidentifiedImageError as error:
            raise ImageError(
                "The file is not a picture in a format we can read (JPEG, PNG, BMP, GIF, TIFF, WebP, "
                "PGM, ...). It may be another kind of document, or damaged. " + _TRY_AGAIN) from error
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageError(_bomb_message()) from error
        except Exception as error:  # noqa: BLE001 - see above
            raise ImageError(f"The picture could not be opened ({error}). " + _TRY_AGAIN) from error
        # The header is read; refuse huge declared dimensions before any pixel is decompressed.
        _check_pixels(image.size)
        try:
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageError(_bomb_message()) from error
        except Exception as error:  # noqa: BLE001 - see above
            detail = "it is incomplete (truncated)" if "truncated" in str(error).lower() else f"{error}"
            raise ImageError(
                f"The picture is damaged and could not be decoded: {detail}. Upload the original file "
                "again, or export it again as a JPEG or PNG file.") from error
    return _from_pil(image)


def _bomb_message() -> str:
    return ("The picture declares an enormous size and was refused as a safety measure. "
            "Reduce the resolution or crop around the face, then upload it again.")


def _from_pil(image: Image.Image) -> np.ndarray:
    try:
        return _to_rgb(_exif_upright(image))
    except ImageError:
        raise
    except Exception as error:  # noqa: BLE001 - pixels of an untrusted file can still fail to convert
        raise ImageError(
            f"The picture could not be converted to colour pixels ({error}). " + _TRY_AGAIN) from error


def _exif_upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block should not make a valid picture unusable
        return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _from_array(np.asarray(image))
    if mode == "RGB":
        return np.array(image, dtype=np.uint8)
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        if mode == "La":
            image = image.convert("LA")  # PIL has no direct premultiplied-grey to RGBA conversion
        return _flatten_alpha(np.asarray(image.convert("RGBA")))
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    # White, because that is how a browser shows a transparent picture to the investigator.
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"An image array must be [H, W], [H, W, 3] or [H, W, 4]; got shape {array.shape}.")
    height, width = array.shape[:2]
    _check_pixels((width, height))
    pixels = _to_uint8(array)
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    if pixels.shape[2] == 4:
        return _flatten_alpha(pixels)
    return np.array(pixels, dtype=np.uint8, order="C")  # always a copy: callers may keep editing theirs


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale an array of any common pixel type to uint8, keeping its appearance."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        # 16-bit pictures use the full 0..65535 range. Other integer arrays (e.g. numpy's default int64)
        # usually hold 0..255 values; wider ranges are rare and scaled to their maximum.
        peak = int(array.max(initial=0))
        if array.dtype.kind == "u" and array.dtype.itemsize == 2:
            top = 65535.0
        else:
            top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else float(peak)
        return np.clip(np.rint(array.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        # Floats in [0, 1] are the usual convention; anything larger is taken as 0..255.
        if values.max(initial=0.0) <= 1.0:
            values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    raise ImageError(f"Cannot use an image array of type {array.dtype}; use uint8, uint16 or float pixels.")
