"""The repeat-photo noise the spot comparison relies on (#13): measured on real lesions."""

import numpy as np

from training.repeat_noise import measure, phone_view

from .conftest import DATA, needs_shared, skin_with_spot

pytestmark = needs_shared


def test_phone_views_differ_but_keep_the_lesion():
    rgb = skin_with_spot(size=(480, 640))
    rng = np.random.default_rng(0)
    views = [phone_view(rgb, rng) for _ in range(4)]
    assert len({v.shape for v in views}) > 1, "scale and crop vary"
    for v in views:
        assert v.dtype == np.uint8 and min(v.shape[:2]) >= 150
        centre = v[v.shape[0] // 2 - 5 : v.shape[0] // 2 + 5, v.shape[1] // 2 - 5 : v.shape[1] // 2 + 5]
        assert centre.mean() < rgb.mean(), "the dark spot stays in the middle"


def test_measure_reports_a_positive_noise_per_source(screener):
    result = measure(screener, [str(DATA / "pad_ufes20")], per_source=4, views=3, seed=1)
    assert result["lesions"] == 4 and result["views_per_lesion"] == 3
    assert 0.0 < result["malignancy_rise_p95"] < 1.0
    assert set(result["per_source_rise_p95"]) == {"pad_ufes20"}
    assert 0.0 <= result["level_differs"] <= 1.0
