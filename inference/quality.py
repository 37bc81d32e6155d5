"""Is this photo usable?  OpenCV checks, each with its measured value and a stable reason code.

Reason codes (the bot translates each into retake advice):
``too_small``, ``blurry``, ``too_dark``, ``overexposed``, ``no_colour``, ``no_lesion``,
``lesion_too_small``, ``off_centre`` and — decided together with the model's skin head in
``inference.screener`` — ``not_skin``.

Thresholds were set on real images (``python -m training.quality_report``; 150 random photos per
source): accepted HAM10000 100 %, ISIC 2017 94.7 %, PAD-UFES-20 99.3 %, SD-198 85.3 % (clinical
photos with several spots or a rash are the ``off_centre`` ones); degraded copies rejected:
blur 95 %, darkness 100 %, overexposure 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

#: Every reason this gate gives, plus ``not_skin`` from the model's skin head (screener).
REASON_CODES = ("too_small", "blurry", "too_dark", "overexposed", "no_colour", "no_lesion", "lesion_too_small", "off_centre", "not_skin")

#: Short side at which all checks are measured, so values do not depend on the camera.
CHECK_SIDE = 256
#: An image this large on the short side is never rejected for size alone.
MIN_SHORT_SIDE = 224


@dataclass(frozen=True)
class Thresholds:
    min_short_side: int = MIN_SHORT_SIDE
    min_sharpness: float = 5.0  # variance of the Laplacian of the centre, at CHECK_SIDE
    min_brightness: float = 40.0  # mean luminance (0-255) of the centre
    max_brightness: float = 240.0
    max_glare: float = 0.35  # share of blown-out pixels (bright and colourless)
    # Mean HSV saturation (0-255) at CHECK_SIDE.  Black-and-white photos measure 0.0 (also after
    # JPEG); the least colourful of the 9,529 lesion photos in ../shared measures 7.4.  Colour is
    # what the model reads, and its skin head took grey microscopy and moon photos for skin.
    min_saturation: float = 2.0
    min_contrast: float = 6.0  # Lab distance between the spot and the skin around it
    min_lesion_area: float = 0.004  # share of the frame covered by the spot
    max_offset: float = 0.5  # distance of the spot's centre from the frame's, in short sides


@dataclass
class QualityReport:
    reasons: list[str] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.reasons


def _check_view(rgb: np.ndarray) -> np.ndarray:
    """The image at CHECK_SIDE on the short side, never more than 4 × CHECK_SIDE on the long one."""
    h, w = rgb.shape[:2]
    scale = min(CHECK_SIDE / min(h, w), 4 * CHECK_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _centre(img: np.ndarray, share: float) -> np.ndarray:
    h, w = img.shape[:2]
    dh, dw = int(h * (1 - share) / 2), int(w * (1 - share) / 2)
    return img[dh : h - dh, dw : w - dw]


def measure_lesion(view: np.ndarray, min_area: float) -> dict[str, float]:
    """Find the spot that differs most from the surrounding skin, near the centre.

    Colour distance in Lab from the skin estimate (median of a ring inside the border, ignoring
    a dermoscope's black vignette) → Otsu threshold → the connected region closest to the
    centre.  Works for dark (pigmented) and pink/red (non-pigmented) lesions alike.
    """
    lab = cv2.cvtColor(cv2.GaussianBlur(view, (5, 5), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
    h, w = lab.shape[:2]
    ring = np.ones((h, w), bool)
    bh, bw = int(h * 0.12), int(w * 0.12)
    ring[bh : h - bh, bw : w - bw] = False
    ring_px = lab[ring]
    ring_px = ring_px[ring_px[:, 0] > 30] if (ring_px[:, 0] > 30).sum() > 50 else ring_px
    skin = np.median(ring_px, axis=0)
    diff = lab - skin.astype(np.float32)
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))  # per-pixel Lab distance, without temporaries
    d8 = np.clip(dist * 2, 0, 255).astype(np.uint8)
    _, mask = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, comp, stats, cents = cv2.connectedComponentsWithStats(mask)
    if n <= 1:
        return {"contrast": 0.0, "lesion_area": 0.0, "lesion_offset": 1.0}
    cy, cx = h / 2, w / 2
    side = min(h, w)
    areas = stats[1:, cv2.CC_STAT_AREA] / (h * w)
    offsets = np.hypot(cents[1:, 0] - cx, cents[1:, 1] - cy) / side
    # The spot the user meant: the significant region nearest the centre (several spots are
    # common in clinical photos); if none is significant, the largest one.
    significant = np.flatnonzero(areas >= min_area)
    if len(significant):
        best = 1 + int(significant[np.argmin(offsets[significant])])
    else:
        best = 1 + int(np.argmax(areas))
    region = comp == best
    area = float(region.mean())
    inside = float(np.median(dist[region]))
    outside = float(np.median(dist[~region])) if (~region).any() else 0.0
    off = float(np.hypot(cents[best][0] - cx, cents[best][1] - cy) / side)
    if region[int(cy), int(cx)]:
        off = 0.0  # the spot covers the centre
    return {"contrast": round(inside - outside, 2), "lesion_area": round(area, 4), "lesion_offset": round(off, 3)}


def check(rgb: np.ndarray, original_size: tuple[int, int] | None = None, t: Thresholds = Thresholds()) -> QualityReport:
    """Run every check on an RGB uint8 image; ``original_size`` is (width, height) before any
    reduced-size decoding."""
    width, height = original_size or (rgb.shape[1], rgb.shape[0])
    report = QualityReport(values={"short_side": float(min(width, height))})
    if min(width, height) < t.min_short_side:
        report.reasons.append("too_small")
        return report  # decided: nothing else is measured on a picture too small to judge
    view = _check_view(rgb)
    gray = cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)
    centre = _centre(gray, 0.6)
    hsv = cv2.cvtColor(view, cv2.COLOR_RGB2HSV)
    v = report.values
    v["brightness"] = round(float(centre.mean()), 2)
    v["glare"] = round(float(((hsv[..., 2] >= 245) & (hsv[..., 1] <= 40)).mean()), 4)
    v["sharpness"] = round(float(cv2.Laplacian(centre, cv2.CV_64F).var()), 2)
    v["saturation"] = round(float(hsv[..., 1].mean()), 2)
    if v["brightness"] < t.min_brightness:
        report.reasons.append("too_dark")
    elif v["brightness"] > t.max_brightness or v["glare"] > t.max_glare:
        report.reasons.append("overexposed")
    if v["sharpness"] < t.min_sharpness and "too_dark" not in report.reasons:
        report.reasons.append("blurry")
    if v["saturation"] < t.min_saturation and "too_dark" not in report.reasons:
        report.reasons.append("no_colour")
    v.update(measure_lesion(view, t.min_lesion_area))
    if not report.reasons:  # the spot can only be judged on a usable photo
        if v["contrast"] < t.min_contrast:
            report.reasons.append("no_lesion")
        elif v["lesion_area"] < t.min_lesion_area:
            report.reasons.append("lesion_too_small")
        elif v["lesion_offset"] > t.max_offset:
            report.reasons.append("off_centre")
    return report
