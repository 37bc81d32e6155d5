"""Augmentations that make dermoscopy-trained features survive phone photos.

All work on RGB uint8 and return a square uint8 crop; the model's own normalisation
(``inference.preprocess.model_input``) is applied afterwards, exactly as when serving.
"""

from __future__ import annotations

import cv2
import numpy as np

from inference.preprocess import INPUT_SIZE, center_square, resize_square


def _rotate(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(0, 360)), 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)


def random_resized_crop(img: np.ndarray, rng: np.random.Generator, area: tuple[float, float]) -> np.ndarray:
    """A square-ish crop of ``area`` share of the image, near the centre where lesions sit."""
    h, w = img.shape[:2]
    side = min(h, w)
    frac = float(rng.uniform(*area))
    aspect = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    ch = int(np.clip(side * np.sqrt(frac / aspect), 16, h))
    cw = int(np.clip(side * np.sqrt(frac * aspect), 16, w))
    # Centre jitter of up to 15 % keeps the lesion inside the crop most of the time.
    cy = h / 2 + rng.uniform(-0.15, 0.15) * h
    cx = w / 2 + rng.uniform(-0.15, 0.15) * w
    top = int(np.clip(cy - ch / 2, 0, h - ch))
    left = int(np.clip(cx - cw / 2, 0, w - cw))
    return cv2.resize(img[top : top + ch, left : left + cw], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


def colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Brightness, contrast, saturation, hue and a per-channel colour cast (white balance)."""
    x = img.astype(np.float32)
    x *= rng.uniform(1 - 0.3 * strength, 1 + 0.3 * strength)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - 0.3 * strength, 1 + 0.3 * strength) + mean  # contrast
    x *= rng.uniform(1 - 0.12 * strength, 1 + 0.12 * strength, size=3)  # colour cast
    hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6) * strength) % 180
    hsv[..., 1] *= rng.uniform(1 - 0.3 * strength, 1 + 0.3 * strength)
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)


def camera_degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, low resolution and JPEG recompression, as a chat app does to a phone photo."""
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 1.6)))
    if rng.random() < 0.25:
        small = int(rng.uniform(80, 200))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), img.shape[1::-1])
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(img)


def augment_lesion(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random training view of a lesion image."""
    img = _rotate(center_square(img), rng) if rng.random() < 0.7 else center_square(img)
    img = random_resized_crop(img, rng, (0.35, 1.0))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.5:
        img = img[::-1]
    return camera_degrade(colour_jitter(img, rng), rng)


def dermoscope_frame(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Black outside a soft-edged circle, as a dermoscope's lens shows skin. On non-skin photos it
    takes away the shortcut "a lit disc on black is skin", which made a 7-source skin head take a
    retina photo for skin (0.99)."""
    h, w = img.shape[:2]
    side = min(h, w)
    mask = np.zeros((h, w), np.float32)
    centre = (int(w / 2 + rng.uniform(-0.06, 0.06) * side), int(h / 2 + rng.uniform(-0.06, 0.06) * side))
    cv2.circle(mask, centre, int(rng.uniform(0.40, 0.56) * side), 1.0, -1, lineType=cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, side * float(rng.uniform(0.005, 0.03))))
    return np.round(img * mask[..., None]).astype(np.uint8)


def augment_negative(img: np.ndarray, rng: np.random.Generator, scope: float = 0.0) -> np.ndarray:
    """A random crop of a non-skin photo, from a wide view down to a close-up texture; a share
    ``scope`` of them seen through a dermoscope-like frame (:func:`dermoscope_frame`)."""
    img = random_resized_crop(img, rng, (0.03, 1.0))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if scope and rng.random() < scope:
        img = dermoscope_frame(img, rng)
    return camera_degrade(colour_jitter(img, rng), rng)


def phone_view(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The centre view as an unseen phone might deliver it (colour cast, blur, JPEG): the skin
    gate's cut is chosen on these (``training.gate``)."""
    return camera_degrade(colour_jitter(center_view(img), rng), rng)


def lowres_view(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A centre view as a 64–128 px thumbnail blown up again: what an 84–180 px archive, a
    screenshot or a distant phone shot looks like. One such view per training image was the
    recipe that won leave-one-source-out (docs/model/MODEL_CARD.md)."""
    v = center_view(img)
    small = int(rng.integers(64, 129))
    down = cv2.resize(v, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(down, v.shape[1::-1], interpolation=cv2.INTER_LINEAR)


def flips(views: np.ndarray) -> list[np.ndarray]:
    """Test-time augmentation views of one image (H, W, C) or a batch: identity first, then the
    horizontal, vertical and both flips."""
    return [views, views[..., ::-1, :], views[..., ::-1, :, :], views[..., ::-1, ::-1, :]]


def center_view(img: np.ndarray) -> np.ndarray:
    """The un-augmented view used for validation and test (what serving sees)."""
    return resize_square(center_square(img))


def synthetic_document(rng: np.random.Generator) -> np.ndarray:
    """A screenshot, chat or document-like image: text lines and UI boxes on a flat background."""
    size = int(rng.integers(300, 700))
    bg = rng.integers(0, 256, size=3) if rng.random() < 0.4 else np.full(3, rng.integers(200, 256))
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg
    fonts = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX]
    for _ in range(int(rng.integers(0, 5))):  # UI panels, buttons, photos-in-screenshot
        p1 = rng.integers(0, size, 2)
        p2 = p1 + rng.integers(20, size // 2, 2)
        cv2.rectangle(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2), tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
    y = int(rng.integers(10, 40))
    scale = float(rng.uniform(0.4, 1.2))
    colour = tuple(int(c) for c in (rng.integers(0, 80, 3) if bg.mean() > 128 else rng.integers(170, 256, 3)))
    letters = "abcdefghijklmnopqrstuvwxyz0123456789      "
    while y < size:
        n = int(rng.integers(5, 40))
        text = "".join(letters[i] for i in rng.integers(0, len(letters), n))
        cv2.putText(img, text, (int(rng.integers(0, 30)), y), fonts[int(rng.integers(len(fonts)))], scale, colour, 1, cv2.LINE_AA)
        y += int(30 * scale + rng.integers(4, 20))
    return img
