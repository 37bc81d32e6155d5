"""Bytes from the internet → RGB uint8 array, or a :class:`DecodeError` with a stable code.

Everything a chat user can send ends up here: phone JPEGs with an EXIF rotation, PNG
screenshots with alpha, 16-bit or CMYK files, HEIC from iPhones, truncated uploads, zip files
renamed to .jpg, decompression bombs, 1×100000 strips and mutated AVIF files.  Nothing but
:class:`DecodeError` leaves this module, and the cost of any input is bounded:

* cheap rejections come from the header, before any pixel is decoded: byte size, pixel count
  (per format: JPEG decodes at a reduced DCT scale, the others in full) and aspect ratio;
* no working copy is larger than the analysis needs: a large image is reduced right after
  loading, before any colour conversion;
* ``tests/test_hostile_inputs.py`` checks time and memory on a generated hostile corpus and a
  seeded fuzz of JPEG, PNG, WebP, HEIC and AVIF files; ``python -m inference.benchmark`` prints them.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

try:  # HEIC/HEIF (iPhone photos sent as files); optional wheel.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - depends on the platform's wheels
    HEIF = False

#: Telegram bots may download files up to 20 MB; a little headroom for other callers.
MAX_BYTES = 25 * 1024 * 1024
#: 50 megapixels: larger than any phone camera's output, far below a decompression bomb. JPEGs
#: up to this decode at a reduced DCT scale (cheap); the other formats decode in full, so they
#: get a smaller budget: 24 MP covers a 24 MP phone's HEIC and keeps a decode ≤ 300 MB.
MAX_PIXELS = 50_000_000
MAX_PIXELS_FULL_DECODE = 24_000_000
#: libwebp decodes to RGBA and Pillow copies it: 23 MP peaked at 352 MB, 12 MP at 184 MB.
MAX_PIXELS_BY_FORMAT = {"WEBP": 12_000_000}
#: Longer side / shorter side. A phone photo is ≤ 2.2, a panorama ≤ 8; a lesion photo is neither.
MAX_ASPECT = 8.0
#: The checks and the model never need more than this on the short side; JPEGs are decoded
#: at a reduced DCT scale down to it, which makes a phone photo 3-4x faster to decode.
WORK_SHORT_SIDE = 448

#: Every code a :class:`DecodeError` can carry (the bot has advice for each).
ERROR_CODES = ("empty", "too_large", "too_many_pixels", "bad_shape", "unsupported_format", "corrupt")

FORMATS = {"JPEG", "PNG", "WEBP", "MPO"} | ({"HEIF", "HEIC", "AVIF"} if HEIF else set())


class DecodeError(Exception):
    """``code`` is stable and meant to be translated: empty, too_large, too_many_pixels,
    bad_shape, unsupported_format, corrupt."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # (H, W, 3) uint8, upright, possibly reduced to WORK_SHORT_SIDE
    format: str
    width: int  # original size, after EXIF rotation
    height: int


def _looks_like_image(data: bytes) -> bool:
    """Magic bytes of the formats we accept: such a file that will not open is damaged."""
    return (
        data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"))
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
        or data[4:8] == b"ftyp"
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency is flattened onto white (a chat's background)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img)  # scaled in float32: one 4-byte working copy, not an 8-byte one
        hi = float(arr.max()) or 1.0
        scaled = arr.astype(np.float32)
        scaled *= 255.0 / hi
        img = Image.fromarray(np.clip(scaled, 0, 255, out=scaled).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB") if img.mode != "RGB" else img


#: EXIF orientation → the transpose that makes the image upright (applied to the reduced copy).
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _reduce(img: Image.Image) -> Image.Image:
    """A box-filtered copy no smaller than WORK_SHORT_SIDE on the short side (same mode)."""
    factor = min(img.size) // WORK_SHORT_SIDE
    if factor < 2:
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # Pillow cannot reduce these: subsample a view
        return Image.fromarray(np.ascontiguousarray(np.asarray(img)[::factor, ::factor]))
    if img.mode == "P":
        img = img.convert("RGBA")
    try:
        return img.reduce(factor)
    except ValueError:  # a mode Pillow cannot reduce: convert first (still one full copy at most)
        return _to_rgb(img).reduce(factor)


def decode(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    if not data:
        raise DecodeError("empty")
    if len(data) > max_bytes:
        raise DecodeError("too_large", f"{len(data)} bytes > {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "?"
            if fmt not in FORMATS:
                raise DecodeError("unsupported_format", fmt)
            w, h = img.size
            jpeg = fmt in ("JPEG", "MPO")
            budget = max_pixels if jpeg else min(max_pixels, MAX_PIXELS_BY_FORMAT.get(fmt, MAX_PIXELS_FULL_DECODE))
            if w <= 0 or h <= 0 or w * h > budget:
                raise DecodeError("too_many_pixels", f"{w}x{h}")
            if max(w, h) > MAX_ASPECT * min(w, h):
                raise DecodeError("bad_shape", f"{w}x{h}")
            orientation = img.getexif().get(0x0112, 1)
            if jpeg and min(w, h) > 2 * WORK_SHORT_SIDE:
                # Reduced-size DCT decode: never below WORK_SHORT_SIDE on the short side.
                scale = min(w, h) / WORK_SHORT_SIDE
                img.draft("RGB", (int(w / scale) + 1, int(h / scale) + 1))
            img.load()
            img = _reduce(img)
            if orientation in _ORIENT:
                img = img.transpose(_ORIENT[orientation])
            rgb = np.asarray(_to_rgb(img))
    except DecodeError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            code = "corrupt" if _looks_like_image(data) else "unsupported_format"
        else:
            code = "too_many_pixels"
        raise DecodeError(code, str(exc)) from None
    except MemoryError as exc:
        raise DecodeError("too_many_pixels", f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any decoder's error on hostile bytes (OSError, SyntaxError,
        # RuntimeError from libheif/libavif "Failed to decode frame", struct.error, ZeroDivisionError…) is a damaged file
        raise DecodeError("corrupt", f"{type(exc).__name__}: {exc}") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise DecodeError("corrupt", f"decoded shape {rgb.shape}")
    width, height = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    return DecodedImage(np.ascontiguousarray(rgb), fmt, width, height)


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """Re-encode pixels only: no EXIF, GPS or other metadata survives (used for storage)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()
