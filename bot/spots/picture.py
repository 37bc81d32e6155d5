"""The side-by-side picture of a followed spot: the previous photo and the new one, labelled."""

from __future__ import annotations

import io
from pathlib import Path

#: DejaVu Sans (Bitstream Vera licence, bot/data/fonts/LICENSE-DejaVu.txt): Latin, Cyrillic and
#: the Kazakh letters (ә, ғ, қ, ң, ө, ұ, ү, һ, і) for the picture's labels.
LABEL_FONT = Path(__file__).resolve().parents[1] / "data" / "fonts" / "DejaVuSans.ttf"


def side_by_side(before: bytes, now: bytes, before_label: str, now_label: str, height: int = 480) -> bytes:
    """One JPEG: the previous photo | the new one, each labelled with its date and level (also
    in the caption, in the user's language)."""
    from PIL import Image, ImageDraw, ImageFont, ImageOps

    images = []
    for data in (before, now):
        img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        img.draft("RGB", (height * 2, height))  # a large JPEG is decoded reduced
        width = max(1, min(height * 2, round(img.width * height / img.height)))
        images.append(img.resize((width, height), Image.Resampling.LANCZOS))
    gap, band = 12, 36
    canvas = Image.new("RGB", (sum(i.width for i in images) + gap, height + band), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.truetype(str(LABEL_FONT), 20)  # Pillow's default font has no Cyrillic
    x = 0
    for img, label in zip(images, (before_label, now_label), strict=True):
        canvas.paste(img, (x, band))
        draw.text((x + 8, 8), label, fill="black", font=font)
        x += img.width + gap
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=88)
    return out.getvalue()
