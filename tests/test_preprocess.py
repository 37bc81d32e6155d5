import numpy as np
import pytest

from inference.preprocess import INPUT_SIZE, center_square, model_input, shades_of_gray


def test_shades_of_gray_removes_a_colour_cast():
    rng = np.random.default_rng(1)
    scene = rng.integers(40, 200, (100, 100, 3)).astype(np.float32)
    cast = np.clip(scene * np.array([1.3, 1.0, 0.7]), 0, 255).astype(np.uint8)
    corrected = shades_of_gray(cast)
    means = corrected.reshape(-1, 3).mean(axis=0)
    assert np.ptp(means) < 0.1 * np.ptp(cast.reshape(-1, 3).mean(axis=0))


def test_uint8_fast_path_matches_the_definition():
    x = np.random.default_rng(0).integers(0, 256, (64, 80, 3)).astype(np.uint8)
    ill = np.mean(x.astype(np.float64) ** 6, axis=(0, 1)) ** (1 / 6)
    ref = np.clip(x * (np.linalg.norm(ill) / (np.sqrt(3) * ill)), 0, 255)
    assert np.abs(shades_of_gray(x) - ref).max() < 1e-3
    assert np.abs(shades_of_gray(x.astype(np.float32)) - ref).max() < 1e-3


def test_model_input_is_square_scaled_and_centred():
    img = np.zeros((300, 500, 3), np.uint8)
    img[:, 100:400] = 128  # the central square is grey, the sides black
    x = model_input(img)
    assert x.shape == (INPUT_SIZE, INPUT_SIZE, 3) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert center_square(img).shape == (300, 300, 3)
    assert np.allclose(x, x.mean(), atol=1e-3)  # only the grey square survived the crop


def test_model_input_rejects_non_rgb():
    with pytest.raises(ValueError):
        model_input(np.zeros((10, 10), np.uint8))


def test_colour_constancy_is_optional_and_off_means_plain_scaling():
    img = np.random.default_rng(2).integers(0, 256, (224, 224, 3)).astype(np.uint8)
    assert np.allclose(model_input(img, colour_constancy=False), img / 127.5 - 1, atol=1e-6)
    assert not np.allclose(model_input(img, colour_constancy=True), model_input(img, colour_constancy=False))
