import io

import numpy as np
import pytest
from PIL import Image

from inference.decode import HEIF, WORK_SHORT_SIDE, DecodeError, decode, encode_jpeg

from .conftest import jpeg_bytes


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(w=320, h=240) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.uint8)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = x
    img[..., 1] = 100
    img[: h // 2, :, 2] = 255  # top half blue: lets tests see rotation
    return img


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_common_formats(fmt):
    out = decode(save(Image.fromarray(gradient()), fmt))
    assert out.rgb.shape == (240, 320, 3) and out.rgb.dtype == np.uint8
    assert (out.width, out.height) == (320, 240)
    assert out.format == fmt


@pytest.mark.skipif(not HEIF, reason="pillow-heif has no wheel for this platform")
def test_heic():
    out = decode(save(Image.fromarray(gradient()), "HEIF"))
    assert out.rgb.shape == (240, 320, 3)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = save(Image.fromarray(gradient()), "JPEG", exif=exif)
    out = decode(data)
    assert out.rgb.shape == (320, 240, 3)
    assert (out.width, out.height) == (240, 320)
    # the blue top half is now the right half
    assert out.rgb[:, -10:, 2].mean() > 200 and out.rgb[:, :10, 2].mean() < 60


def test_grayscale_cmyk_and_16_bit():
    g = decode(save(Image.fromarray(gradient()[..., 0]), "PNG"))
    assert g.rgb.shape == (240, 320, 3) and np.array_equal(g.rgb[..., 0], g.rgb[..., 2])
    cmyk = decode(save(Image.fromarray(gradient()).convert("CMYK"), "JPEG"))
    assert cmyk.rgb.shape == (240, 320, 3)
    wide = (np.linspace(0, 65535, 320, dtype=np.uint16)[None].repeat(240, 0)).astype(np.uint16)
    deep = decode(save(Image.fromarray(wide), "PNG"))  # a 16-bit greyscale PNG
    assert deep.rgb[:, -1].mean() > 240 and deep.rgb[:, 0].mean() < 10


def test_alpha_is_flattened_on_white():
    rgba = np.zeros((50, 60, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :30, 3] = 255  # left half opaque red, right half transparent
    out = decode(save(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(out.rgb[10, 5]) == (255, 0, 0)
    assert tuple(out.rgb[10, 50]) == (255, 255, 255)


def test_large_jpeg_is_decoded_reduced_but_reports_original_size():
    out = decode(jpeg_bytes(np.full((1920, 2560, 3), 120, np.uint8)))
    assert (out.width, out.height) == (2560, 1920)
    assert min(out.rgb.shape[:2]) >= WORK_SHORT_SIDE and out.rgb.shape[0] < 1920


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty"),
        (b"PK\x03\x04 this is a zip file, not a photo" * 10, "unsupported_format"),
        (b"\x00" * 5000, "unsupported_format"),
    ],
)
def test_bad_bytes(data, code):
    with pytest.raises(DecodeError) as err:
        decode(data)
    assert err.value.code == code


@pytest.mark.parametrize("head", [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"RIFF\x00\x00\x00\x00WEBPVP8 "])
def test_image_signature_with_garbage_is_corrupt(head):
    with pytest.raises(DecodeError) as err:
        decode(head + b"\x00" * 200)
    assert err.value.code == "corrupt"


def test_truncated_jpeg_is_corrupt():
    data = jpeg_bytes(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8))
    with pytest.raises(DecodeError) as err:
        decode(data[: len(data) // 3])
    assert err.value.code == "corrupt"


def test_gif_is_not_a_supported_photo():
    with pytest.raises(DecodeError) as err:
        decode(save(Image.fromarray(gradient()), "GIF"))
    assert err.value.code == "unsupported_format"


def test_too_many_bytes():
    with pytest.raises(DecodeError) as err:
        decode(b"\xff\xd8" + b"\x00" * 100, max_bytes=50)
    assert err.value.code == "too_large"


def test_decompression_bomb_is_refused_before_decoding():
    bomb = save(Image.new("1", (10_000, 6_000)), "PNG")  # 60 Mpx in a few KB
    assert len(bomb) < 100_000
    with pytest.raises(DecodeError) as err:
        decode(bomb)
    assert err.value.code == "too_many_pixels"


def test_encode_jpeg_strips_metadata():
    exif = Image.Exif()
    exif[0x8825] = {2: (43.0, 15.0, 0.0)}  # a GPS block
    exif[0x010F] = "PhoneMaker"
    original = save(Image.fromarray(gradient()), "JPEG", exif=exif)
    assert Image.open(io.BytesIO(original)).getexif()
    clean = encode_jpeg(decode(original).rgb)
    img = Image.open(io.BytesIO(clean))
    assert not img.getexif() and "exif" not in img.info
