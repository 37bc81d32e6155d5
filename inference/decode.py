"""Bytes from the internet → RGB uint8 array, or a :class:`DecodeError` with a stable code.

Everything a chat user can send ends up here: phone JPEGs with an EXIF rotation, PNG
screenshots with alpha, 16-bit or CMYK files, HEIC from iPhones, truncated uploads, zip files
renamed to .jpg and decompression bombs.  Nothing but :class:`DecodeError` leaves this module.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF (iPhone photos sent as files); optional wheel.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - depends on the platform's wheels
    HEIF = False

#: Telegram bots may download files up to 20 MB; a little headroom for other callers.
MAX_BYTES = 25 * 1024 * 1024
#: 50 megapixels: larger than any phone camera's output, far below a decompression bomb.
MAX_PIXELS = 50_000_000
#: The checks and the model never need more than this on the short side; JPEGs are decoded
#: at a reduced DCT scale down to it, which makes a phone photo 3-4x faster to decode.
WORK_SHORT_SIDE = 448

#: Every code a :class:`DecodeError` can carry (the bot has advice for each).
ERROR_CODES = ("empty", "too_large", "too_many_pixels", "unsupported_format", "corrupt")

FORMATS = {"JPEG", "PNG", "WEBP", "MPO"} | ({"HEIF", "HEIC", "AVIF"} if HEIF else set())


class DecodeError(Exception):
    """``code`` is stable and meant to be translated: empty, too_large, too_many_pixels,
    unsupported_format, corrupt."""

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
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() or 1.0
        img = Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB") if img.mode != "RGB" else img


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
            if w * h > max_pixels or w <= 0 or h <= 0:
                raise DecodeError("too_many_pixels", f"{w}x{h}")
            orientation = img.getexif().get(0x0112, 1)
            if fmt in ("JPEG", "MPO") and min(w, h) > 2 * WORK_SHORT_SIDE:
                # Reduced-size DCT decode: never below WORK_SHORT_SIDE on the short side.
                scale = min(w, h) / WORK_SHORT_SIDE
                img.draft("RGB", (int(w / scale) + 1, int(h / scale) + 1))
            img.load()
            img = ImageOps.exif_transpose(img) if orientation != 1 else img
            rgb = np.asarray(_to_rgb(img))
    except DecodeError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            code = "corrupt" if _looks_like_image(data) else "unsupported_format"
        else:
            code = "too_many_pixels"
        raise DecodeError(code, str(exc)) from None
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, MemoryError, IndexError, KeyError) as exc:
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
