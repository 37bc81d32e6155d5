"""The shipped model through the public API: accepts lesions, rejects the rest, is thread-safe."""

import csv
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from inference import CLASSES, Screener
from training.augment import synthetic_document

from .conftest import DATA, ROOT, jpeg_bytes, needs_shared, real_images


@needs_shared
def test_real_lesions_are_accepted_and_classified(screener):
    results = [screener.screen(p.read_bytes()) for p in real_images("pad_ufes20", 10) + real_images("ham10000", 10)]
    accepted = [r for r in results if r.accepted]
    assert len(accepted) >= 17, [r.reasons for r in results]
    for r in accepted:
        assert r.risk in ("low", "moderate", "high")
        assert set(r.probabilities) == set(CLASSES)
        assert r.model == screener.version and r.ms["total"] > 0


@needs_shared
def test_melanomas_score_higher_than_nevi(screener):
    with open(DATA / "ham10000" / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    mel = [DATA / "ham10000" / r["image"] for r in rows if r["dx"] == "mel"][-15:]
    nv = [DATA / "ham10000" / r["image"] for r in rows if r["dx"] == "nv"][-15:]

    def score(paths):
        return [screener.screen(p.read_bytes(), force=True).malignancy for p in paths]

    m, n = np.array(score(mel)), np.array(score(nv))
    # pairwise AUC on 15 + 15 photos; chance is 0.5
    assert (m[:, None] > n[None, :]).mean() > 0.7


def test_everyday_photos_are_not_accepted(screener, non_skin_photos):
    rejected = {name: not screener.screen(jpeg_bytes(img)).accepted for name, img in non_skin_photos.items()}
    assert sum(rejected.values()) >= len(rejected) - 1, rejected


def test_screenshots_and_documents_are_not_accepted(screener):
    rng = np.random.default_rng(99)
    results = [screener.screen(jpeg_bytes(synthetic_document(rng))) for _ in range(6)]
    assert all(not r.accepted for r in results), [r.reasons for r in results]


def test_bad_bytes_never_raise(screener):
    r = screener.screen(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    assert r.accepted is False and r.reasons == ["corrupt"] and r.risk is None


@needs_shared
def test_concurrent_screening_matches_sequential(screener):
    data = [p.read_bytes() for p in real_images("ham10000", 6)]
    sequential = [screener.screen(d).probabilities for d in data]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda d: screener.screen(d).probabilities, data * 3))
    assert parallel == sequential * 3


def test_serving_never_imports_tensorflow(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from inference import Screener\n"
        "s = Screener.load()\n"
        "s.screen(open(sys.argv[1], 'rb').read())\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'\n"
        "print('ok')\n"
    )
    sample = tmp_path / "probe.jpg"
    sample.write_bytes(jpeg_bytes(np.full((300, 300, 3), 150, np.uint8)))
    out = subprocess.run([sys.executable, "-c", code, str(sample)], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_model_card_thresholds_are_ordered(screener):
    t = screener.card.risk
    assert 0.0 < t.low < t.high < 1.0
    assert 0.0 < screener.card.skin_cut < 1.0
    assert screener.card.raw["metrics"]["test"], "the card carries test metrics"


def test_a_card_for_other_classes_is_refused(tmp_path):
    import json

    card = json.loads((ROOT / "inference" / "model" / "model_card.json").read_text())
    card["classes"] = ["a", "b"]
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError):
        Screener.load(card=tmp_path / "model_card.json")


def test_serving_follows_the_cards_colour_constancy(screener):
    assert screener.classifier.colour_constancy is screener.card.colour_constancy
    assert screener.card.colour_constancy == screener.card.raw["input"]["colour_constancy"]


def test_an_ensemble_card_may_only_name_files_beside_it(tmp_path):
    """A card's ``members`` are loaded from its own folder: a path out of it is refused, so a
    copied card cannot make the bot read some other file as a model."""
    import json

    card = json.loads((ROOT / "inference" / "model" / "model_card.json").read_text())
    card["members"] = [{"file": "../secret.tflite", "version": "x"}]
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="beside the card"):
        Screener.load(card=tmp_path / "model_card.json")


def test_the_benchmark_loads_a_model_by_tflite_folder_or_card():
    """``inference.benchmark --model`` takes whatever names a model: an ensemble has no single .tflite."""
    from inference.benchmark import load

    shipped = Screener.load()
    folder = ROOT / "inference" / "model"
    for loaded in (load(None), load(folder), load(folder / "model_card.json")):
        assert loaded.version == shipped.version and loaded.classifier.members == shipped.classifier.members


def test_pooled_features_come_with_unchanged_probabilities(screener):
    """The modality study reads the gate member's pooled tensor; keeping its interpreter's
    intermediate tensors must not change what the model answers, and the vector must belong to
    the photo (not a stale buffer from the previous one)."""
    with_features = Screener.load(features=True).classifier
    rng = np.random.default_rng(3)
    a, b = (rng.integers(0, 255, (300, 300, 3), dtype=np.uint8) for _ in range(2))
    pa, pb, pa2 = with_features.predict(a), with_features.predict(b), with_features.predict(a)
    assert pa.features is not None and pa.features.shape == (1280,)
    assert np.array_equal(pa.features, pa2.features) and not np.allclose(pa.features, pb.features)
    plain = screener.classifier.predict(a)
    assert plain.features is None
    np.testing.assert_allclose(plain.probabilities, pa.probabilities, atol=1e-6)
