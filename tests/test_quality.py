import cv2
import numpy as np
import pytest

from inference.quality import MIN_SHORT_SIDE, check

from .conftest import DATA, load_rgb, needs_shared, real_images, skin_with_spot


@needs_shared
@pytest.mark.parametrize("source", ["ham10000", "isic2017", "pad_ufes20"])
def test_real_lesion_photos_pass(source):
    reports = [check(load_rgb(p)) for p in real_images(source, 12)]
    accepted = sum(r.ok for r in reports)
    assert accepted >= 11, [r.reasons for r in reports]


def test_a_good_phone_photo_passes_and_reports_values():
    r = check(skin_with_spot())
    assert r.ok, r.reasons
    for key in ("short_side", "brightness", "glare", "sharpness", "contrast", "lesion_area", "lesion_offset"):
        assert key in r.values
    assert r.values["lesion_offset"] < 0.1 and r.values["lesion_area"] > 0.02


def test_too_small():
    small = cv2.resize(skin_with_spot(), (200, 150), interpolation=cv2.INTER_AREA)
    assert "too_small" in check(small).reasons


def test_224_on_the_short_side_is_never_too_small():
    img = cv2.resize(skin_with_spot(), (298, MIN_SHORT_SIDE), interpolation=cv2.INTER_AREA)
    assert "too_small" not in check(img).reasons
    assert "too_small" in check(img, original_size=(298, MIN_SHORT_SIDE - 1)).reasons


def test_blurry():
    img = cv2.GaussianBlur(skin_with_spot(), (0, 0), 9)
    r = check(img)
    assert r.reasons == ["blurry"], r.values


def test_too_dark():
    r = check((skin_with_spot() * 0.12).astype(np.uint8))
    assert "too_dark" in r.reasons


def test_overexposed():
    r = check(np.clip(skin_with_spot().astype(int) * 2 + 80, 0, 255).astype(np.uint8))
    assert "overexposed" in r.reasons


def test_no_lesion_on_plain_skin():
    r = check(skin_with_spot(spot_radius=0))
    assert r.reasons == ["no_lesion"], r.values


def test_lesion_too_small():
    r = check(skin_with_spot(spot_radius=25))
    assert r.reasons == ["lesion_too_small"], r.values


def test_off_centre():
    r = check(skin_with_spot(spot_radius=110, centre=(830, 1130)))
    assert r.reasons == ["off_centre"], r.values


@needs_shared
def test_blurred_real_photo_is_rejected():
    img = cv2.resize(load_rgb(real_images("pad_ufes20", 1)[0]), (1280, 960))
    assert check(img).ok
    assert "blurry" in check(cv2.GaussianBlur(img, (0, 0), 8)).reasons


@needs_shared
def test_a_black_and_white_photo_is_asked_again_in_colour():
    img = cv2.resize(load_rgb(real_images("pad_ufes20", 1)[0]), (1280, 960))
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert "no_colour" not in check(img).reasons
    r = check(grey)
    assert "no_colour" in r.reasons and r.values["saturation"] < 2, r.values


@needs_shared
def test_the_least_colourful_lesion_photos_keep_their_colour():
    """The dullest ISIC 2017 dermoscopy (saturation ≈ 7) is not mistaken for a black-and-white photo."""
    for name in ("ISIC_0009936", "ISIC_0010444"):
        [path] = [p for p in (DATA / "isic2017").rglob(f"{name}.*")]
        assert "no_colour" not in check(load_rgb(path)).reasons


def test_every_reason_given_is_a_declared_code():
    from inference.quality import REASON_CODES

    images = [skin_with_spot(), skin_with_spot(spot_radius=0), skin_with_spot(spot_radius=25), (skin_with_spot() * 0.1).astype(np.uint8)]
    for img in images:
        assert set(check(img).reasons) <= set(REASON_CODES)
