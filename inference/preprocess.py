"""The one source of truth for turning an RGB image into the classifier's input.

Training (``training.augment`` / ``training.features``) and serving (``inference.classifier``)
both call :func:`model_input`; nothing else in the project resizes or normalises pixels for the
model.  Keeping it in one place is what makes the exported model behave in production the way
it did on the validation split.

Colour constancy (Shades of Gray, Finlayson & Trezzi 2004) is available because ISIC-challenge
winners used it against "one clinic's camera = the disease".  Whether a model uses it is recorded
in its card (``input.colour_constancy``) and serving follows the card.  Measured here, it did not
help (docs/training.md, "Choices were measured"), so the shipped model is trained without it.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Side of the square the network sees.  MobileNetV2's ImageNet weights were trained at 224.
INPUT_SIZE = 224
#: Minkowski norm of Shades of Gray; p=6 is the value used in the ISIC 2018/2019 winning entries.
SOG_POWER = 6.0


def center_square(rgb: np.ndarray) -> np.ndarray:
    """Central square crop: the bot asks users to put the spot in the centre of the frame."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top : top + side, left : left + side]


def resize_square(rgb: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Resize a square image; INTER_AREA when shrinking (no aliasing), linear when enlarging."""
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    interp = cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def shades_of_gray(rgb: np.ndarray, power: float = SOG_POWER) -> np.ndarray:
    """Colour constancy: rescale each channel so the scene's p-norm "illuminant" is grey.

    Input uint8 or float RGB in [0, 255]; output float32 in [0, 255].
    """
    if rgb.dtype == np.uint8:
        # Per-channel histogram x lookup table of v**p: exact, and ~10x faster than powering pixels.
        flat = rgb.reshape(-1, 3)
        lut = np.arange(256, dtype=np.float64) ** power
        moment = np.array([np.bincount(flat[:, c], minlength=256) @ lut for c in range(3)]) / len(flat)
    else:
        moment = np.mean(np.power(rgb.reshape(-1, 3).astype(np.float64), power), axis=0)
    illuminant = np.power(moment, 1.0 / power).astype(np.float32)
    illuminant = np.maximum(illuminant, 1e-3)
    # Normalise to unit length as in the paper, then scale so a grey world stays unchanged.
    gain = (np.linalg.norm(illuminant) / (np.sqrt(3.0) * illuminant)).astype(np.float32)
    return np.clip(rgb.astype(np.float32) * gain, 0.0, 255.0)


def model_input(rgb: np.ndarray, colour_constancy: bool = True) -> np.ndarray:
    """RGB uint8 (H, W, 3) of any size → float32 (INPUT_SIZE, INPUT_SIZE, 3) in [-1, 1].

    Steps: central square crop → resize → Shades of Gray (if the model was trained with it;
    the model card's ``input.colour_constancy`` says so) → MobileNetV2 scaling.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}")
    square = resize_square(center_square(rgb))
    pixels = shades_of_gray(square) if colour_constancy else square.astype(np.float32)
    return pixels * np.float32(1 / 127.5) - np.float32(1.0)
