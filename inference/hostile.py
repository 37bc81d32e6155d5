"""Generated hostile and unlucky inputs: what a chat user can send to stall or crash a decoder.

Used by ``tests/test_hostile_inputs.py`` (every file gets a record within its time and memory
bound) and by ``python -m inference.benchmark --hostile`` (the same numbers, printed). Nothing
here is random without a seed, so a failure can be replayed.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterator

import numpy as np
from PIL import Image

from inference.decode import FORMATS  # importing it registers the HEIF opener

FUZZ_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF")


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, body: bytes = b"") -> bytes:
    """A PNG whose header declares ``width``×``height`` (8-bit RGB); ``body`` is the IDAT payload."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int, orientation: int = 1) -> bytes:
    """A small valid JPEG whose SOF header is patched to declare ``width``×``height``."""
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    data = bytearray(_save(Image.new("RGB", (16, 16), (180, 120, 100)), "JPEG", exif=exif))
    m = re.search(rb"\xff[\xc0\xc2]", data)
    assert m is not None
    struct.pack_into(">HH", data, m.start() + 5, height, width)
    return bytes(data)


def corpus() -> dict[str, bytes]:
    """Strips, declared-huge headers, 16-bit, palette and big flat images (the issue's list)."""
    flat = np.full((7070, 7070, 3), (190, 140, 120), np.uint8)
    out = {
        "png 1000x1 (83 bytes)": _save(Image.new("RGB", (1000, 1)), "PNG"),
        "png 100000x1": _save(Image.new("L", (100000, 1)), "PNG"),
        "png 4x100000 strip": _save(Image.new("RGB", (4, 100000), (200, 150, 130)), "PNG"),
        "jpeg declaring 65000x1": jpeg_declaring(65000, 1),
        "jpeg 60000x4 with EXIF rotation": jpeg_declaring(60000, 4, orientation=6),
        "jpeg declaring 60000x60000": jpeg_declaring(60000, 60000),
        "png declaring 30000x30000, no data": png_declaring(30000, 30000),
        "png declaring 5000x5000, truncated data": png_declaring(5000, 5000, zlib.compress(b"\x00" * 100000)),
        "png 7070x7070 flat": _save(Image.fromarray(flat), "PNG"),
        "png 4800x4800 flat 16-bit grey": _save(Image.fromarray(np.full((4800, 4800), 40000, np.uint16)), "PNG"),
        "png 4800x4800 palette": _save(Image.fromarray(flat[:4800, :4800]).convert("P"), "PNG"),
        "png 4800x4800 RGBA": _save(Image.fromarray(np.dstack([flat[:4800, :4800], np.full((4800, 4800), 200, np.uint8)]), "RGBA"), "PNG"),
        "webp 4800x4800 flat": _save(Image.fromarray(flat[:4800, :4800]), "WEBP", quality=50),
        "jpeg 8000x6000 flat (48 MP)": _save(Image.fromarray(np.full((6000, 8000, 3), 150, np.uint8)), "JPEG", quality=70),
        "jpeg 7070x7070 noise": _save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (7070, 7070, 3), dtype=np.uint8)), "JPEG", quality=50),
    }
    if "HEIF" in FORMATS:
        out["heic 4000x3000 flat"] = _save(Image.fromarray(flat[:3000, :4000]), "HEIF", quality=50)
    return out


def seeds() -> dict[str, bytes]:
    """Small valid files of every format the bot accepts: what the fuzzer mutates."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:96, 0:128]
    img = np.dstack([(xx * 2) % 256, (yy * 2) % 256, (xx + yy) % 256]).astype(np.uint8)
    img = np.clip(img.astype(np.int16) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    pil = Image.fromarray(img)
    out = {}
    for fmt in FUZZ_FORMATS:
        if fmt in ("HEIF", "AVIF") and fmt not in FORMATS:
            continue
        try:
            out[fmt] = _save(pil, fmt, quality=80) if fmt != "PNG" else _save(pil, fmt)
        except (KeyError, OSError):  # no encoder for this format on this platform
            continue
    return out


def mutations(seed: int, per_format: int) -> Iterator[tuple[str, bytes]]:
    """``per_format`` seeded mutations of each seed file: bit flips, byte runs, truncation,
    duplicated and deleted spans, and big integers written over length and size fields."""
    rng = np.random.default_rng(seed)
    for fmt, original in seeds().items():
        for i in range(per_format):
            data = bytearray(original)
            kind = int(rng.integers(0, 5))
            n = len(data)
            if kind == 0:  # bit flips, mostly in the header
                for _ in range(int(rng.integers(1, 9))):
                    pos = int(rng.integers(0, min(n, 512) if rng.random() < 0.7 else n))
                    data[pos] ^= 1 << int(rng.integers(0, 8))
            elif kind == 1:  # a run of one byte value
                pos, length = int(rng.integers(0, n)), int(rng.integers(1, 64))
                data[pos : pos + length] = bytes([int(rng.integers(0, 256))]) * length
            elif kind == 2:  # truncation
                data = data[: int(rng.integers(1, n))]
            elif kind == 3:  # a span duplicated or deleted
                a = int(rng.integers(0, n))
                b = min(n, a + int(rng.integers(1, 256)))
                data = data[:b] + data[a:b] + data[b:] if rng.random() < 0.5 else data[:a] + data[b:]
            else:  # a large 16/32-bit value over a header field
                pos = int(rng.integers(0, min(n - 4, 256)))
                value = int(rng.choice([0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
                struct.pack_into(">I" if rng.random() < 0.5 else "<I", data, pos, value & 0xFFFFFFFF)
            yield f"{fmt} mutation {i} (kind {kind})", bytes(data)
