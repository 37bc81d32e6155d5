"""From probabilities to ``low`` / ``moderate`` / ``high``, with the model card's cut points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.labels import CLASSES, MALIGNANT

RISK_LEVELS = ("low", "moderate", "high")


@dataclass(frozen=True)
class RiskThresholds:
    low: float  # malignancy below this (and no malignant top class) → low
    high: float  # malignancy at or above this → high

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"need 0 ≤ low ≤ high ≤ 1, got low={self.low} high={self.high}")


def malignancy(probabilities: np.ndarray) -> float:
    return float(sum(probabilities[CLASSES.index(c)] for c in MALIGNANT))


def risk_level(probabilities: np.ndarray, t: RiskThresholds) -> str:
    """``akiec``-like (pre)cancer and every other malignant top class is never ``low``."""
    score = malignancy(probabilities)
    if score >= t.high:
        return "high"
    top = CLASSES[int(np.argmax(probabilities))]
    if score < t.low and top not in MALIGNANT:
        return "low"
    return "moderate"
