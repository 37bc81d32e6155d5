"""Frozen int8 feature extractors (#20): each interpreter's own quantisation is read, not
assumed, and the features behave like features (deterministic, different for different photos,
close for a photo and a slightly resized copy)."""

import numpy as np
import pytest

from training.frozen import CORAL_V1, CORAL_V2, V2_POOL, LiteFeatures

from .conftest import SHARED, real_images

WEIGHTS = SHARED / "weights"
pytestmark = pytest.mark.skipif(not (WEIGHTS / CORAL_V1).exists(), reason=f"Coral LiteRT files not found in {WEIGHTS} (set SHARED_DIR)")


def squares(n: int) -> list[np.ndarray]:
    import cv2

    from inference.preprocess import center_square, resize_square

    out = []
    for path in real_images("pad_ufes20", n):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        out.append(resize_square(center_square(rgb)))
    return out


@pytest.mark.parametrize(("name", "tensor", "dim"), [(CORAL_V1, None, 1024), (CORAL_V2, V2_POOL, 1280)])
def test_int8_networks_dequantise_with_their_own_scale(name, tensor, dim):
    net = LiteFeatures(WEIGHTS / name, tensor_name=tensor)
    assert net.input_dtype == np.uint8 and net.input_quant[0] > 0, "raw uint8 input, scale read from the file"
    assert net.output_quant[0] > 0
    a, b = squares(2)
    fa, fb = net(a), net(b)
    assert fa.shape == (dim,) and fa.dtype == np.float32
    assert np.array_equal(fa, net(a)), "deterministic"
    assert fa.min() >= 0 and 0 < fa.mean() < 10, "pooled ReLU6 activations, dequantised"
    assert np.abs(fa - fb).mean() > 0.01, "two different photos give different features"
    import cv2

    near = cv2.resize(cv2.resize(a, (200, 200), interpolation=cv2.INTER_AREA), (224, 224))
    cos = float(fa @ net(near) / np.linalg.norm(fa) / np.linalg.norm(net(near)))
    assert cos > 0.9, f"a slightly resized copy has close features (cosine {cos:.3f})"


def test_the_low_cut_keeps_95_percent_of_each_modalitys_malignant_lesions_above_it():
    from training.frozen_loso import low_cut

    rng = np.random.default_rng(0)
    score = np.concatenate([rng.uniform(0.3, 1.0, 100), rng.uniform(0.0, 0.6, 100), rng.uniform(0.05, 1.0, 40)])
    mal = np.array([1] * 100 + [0] * 100 + [1] * 40)
    modality = np.array(["dermoscopy"] * 200 + ["clinical"] * 40)
    cut = low_cut(mal, score, modality)
    for m in ("dermoscopy", "clinical"):
        kept = score[(modality == m) & (mal == 1)] >= cut
        assert kept.mean() >= 0.95, m
    assert cut > 0.05, "the cut is no lower than the stricter modality needs"
