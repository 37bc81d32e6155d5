import numpy as np
import pytest

from inference.labels import CLASSES
from inference.risk import RiskThresholds, malignancy, risk_level

T = RiskThresholds(low=0.2, high=0.6)


def probs(**kw):
    p = np.zeros(len(CLASSES))
    for k, v in kw.items():
        p[CLASSES.index(k)] = v
    return p


def test_malignancy_sums_malignant_classes():
    assert malignancy(probs(mel=0.1, bcc=0.2, akiec=0.05, nv=0.65)) == pytest.approx(0.35)


@pytest.mark.parametrize(
    "p, level",
    [
        (probs(nv=0.95, mel=0.05), "low"),
        (probs(nv=0.7, mel=0.3), "moderate"),
        (probs(nv=0.3, mel=0.7), "high"),
        (probs(nv=0.4, bcc=0.6), "high"),
        (probs(nv=0.4, bkl=0.45, mel=0.15), "low"),
    ],
)
def test_levels(p, level):
    assert risk_level(p, T) == level


def test_akiec_like_top_class_is_never_low():
    p = probs(akiec=0.16, nv=0.14, bkl=0.14, other=0.14, inflammatory=0.14)
    p = p / p.sum()  # actinic/squamous is the most likely class, malignancy ≈ 0.22
    t = RiskThresholds(low=0.3, high=0.9)
    assert malignancy(p) < t.low
    assert risk_level(p, t) == "moderate"


def test_thresholds_are_validated():
    with pytest.raises(ValueError):
        RiskThresholds(low=0.7, high=0.3)
