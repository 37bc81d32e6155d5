"""Cut-point rules of the model card (training.evaluate): the numbers the bot's risk levels rest on."""

import numpy as np
import pytest

pytest.importorskip("scipy", reason="cut points are chosen in training (the [train] extra)")
from training.evaluate import cut_low, misses_allowed, risk_cuts


def test_misses_allowed_follows_the_clopper_pearson_bound():
    # 59 of 59 found: the one-sided 95 % lower bound is 0.05 ** (1/59) = 0.9505, so no miss is allowed,
    # and below 59 positives not even a perfect score shows 0.95.
    assert misses_allowed(58) == misses_allowed(59) == 0
    assert misses_allowed(100) == 1
    assert misses_allowed(210) == 5
    assert misses_allowed(1000) > misses_allowed(300) > misses_allowed(100)


def test_cut_low_leaves_exactly_the_allowed_misses_below():
    score = np.array([0.01, 0.02, 0.03, 0.9, 0.5])
    positive = np.array([True, True, True, False, True])
    assert cut_low(score, positive, 0) == 0.01
    assert cut_low(score, positive, 2) == 0.03
    assert cut_low(score, positive, 10) == 0.5  # never above the last positive


def test_risk_cuts_one_odd_photo_does_not_set_the_low_cut_but_each_modality_keeps_95_percent():
    rng = np.random.default_rng(0)
    n = 400
    modality = np.array(["dermoscopy"] * 300 + ["clinical"] * 100)
    positive = rng.random(n) < 0.5
    score = np.where(positive, rng.uniform(0.2, 1.0, n), rng.uniform(0.0, 0.3, n))
    odd = np.flatnonzero(positive & (modality == "clinical"))[0]
    score[odd] = 0.001  # one malignant phone photo the model scores as benign
    cuts = risk_cuts(score, positive, modality)
    assert cuts["low"] > 0.001
    for mod in ("dermoscopy", "clinical"):
        m = (modality == mod) & positive
        assert (score[m] >= cuts["low"]).mean() >= 0.95
    assert misses_allowed(int(positive.sum())) >= int((score[positive] < cuts["low"]).sum())
    assert cuts["low"] < cuts["high"]
    for mod in ("dermoscopy", "clinical"):
        m = (modality == mod) & ~positive
        assert (score[m] < cuts["high"]).mean() >= 0.90


def test_skin_cut_keeps_the_photo_that_defines_it():
    from training.gate import skin_cut

    scores = {"pad_ufes20": np.array([0.98058] + [0.999] * 14), "ham10000": np.full(100, 0.9995)}
    cut = skin_cut(scores)
    assert cut == 0.9805 and all((s >= cut).all() for s in scores.values())


def test_one_photo_of_a_small_source_does_not_set_the_skin_cut_alone():
    """Keeping 99 % of 60 photos means keeping all 60: a near-blank field scored 0.003 set the
    cut for every user.  From 20 to 100 photos one may fall below the cut; never more than 1 %
    of a larger source, and none of a source under 20 photos."""
    from training.gate import misses_allowed, skin_cut

    assert [misses_allowed(n) for n in (10, 19, 20, 60, 100, 101, 200, 201, 897)] == [0, 0, 1, 1, 1, 1, 1, 2, 8]
    assert skin_cut({"archive": np.array([0.003] + [0.91] * 59)}) == 0.91
    assert skin_cut({"archive": np.array([0.003, 0.02] + [0.91] * 58)}) == 0.02  # a second low photo still counts
    assert skin_cut({"tiny": np.array([0.003] + [0.91] * 18)}) == 0.003
    big = np.linspace(0, 1, 1001)  # 1 % of 1001 photos: the 11th lowest (index 10) sets the cut
    assert skin_cut({"ham10000": big}) == 0.01 and (big < 0.01).sum() == 10


def test_the_in_source_ship_rule_allows_a_drop_of_at_most_the_tolerance():
    from training.ensemble import insource_verdict

    reference = {"ham10000": {"auc_malignant": 0.917}, "isic2017": {"auc_malignant": 0.861}, "bcn20000": {"auc_malignant": None}}
    ok, lines = insource_verdict({"ham10000": {"auc_malignant": 0.907}, "isic2017": {"auc_malignant": 0.870}}, reference, 0.01)
    assert ok and len(lines) == 2  # exactly the tolerance is allowed; a source without a number is not compared
    ok, lines = insource_verdict({"ham10000": {"auc_malignant": 0.9069}, "isic2017": {"auc_malignant": 0.870}}, reference, 0.01)
    assert not ok and "FAILS" in lines[0] and "ok" in lines[1]


def test_an_ensemble_gate_counts_only_non_skin_photos_no_member_trained_on():
    from training.data import negative_split
    from training.gate import held_out

    n = 280
    kept = held_out(n, [1234, 99])
    trained = {seed: set(negative_split(n, np.random.default_rng(seed))[1].tolist()) for seed in (1234, 99)}
    assert kept and not (set(kept) & (trained[1234] | trained[99]))
    assert held_out(n, [1234]) == sorted(set(range(n)) - trained[1234])  # one member: its own validation fifth

    # A member trained before more folders were appended saw only the first 200: the 80 new photos
    # are held out from it, and its own split is the one it made of 200, not of 280.
    from training.gate import member_arg

    old_trained = set(negative_split(200, np.random.default_rng(1234))[1].tolist())
    kept = held_out(n, [member_arg("1234:200"), member_arg("99")])
    assert kept == sorted(set(range(n)) - old_trained - trained[99])
    assert set(range(200, n)) - trained[99] <= set(kept)


def test_a_large_source_does_not_set_the_low_cut_for_a_small_one_of_the_same_modality():
    """Seven sources: BCN20000's many, well-separated melanomas set the dermoscopy cut alone, and a
    small archive's malignant lesions fell below it. Each source must keep 95 % on its own."""
    rng = np.random.default_rng(1)
    big_pos, small_pos = rng.uniform(0.4, 1.0, 1000), rng.uniform(0.05, 1.0, 25)
    score = np.concatenate([big_pos, rng.uniform(0.0, 0.3, 1000), small_pos, rng.uniform(0.0, 0.3, 40)])
    positive = np.concatenate([np.ones(1000, bool), np.zeros(1000, bool), np.ones(25, bool), np.zeros(40, bool)])
    source = np.array(["big"] * 2000 + ["small"] * 65)
    modality = np.full(len(score), "dermoscopy")
    pooled = risk_cuts(score, positive, modality)
    assert (small_pos >= pooled["low"]).mean() < 0.95  # the old rule: the small source is not protected
    cuts = risk_cuts(score, positive, modality, source)
    assert (small_pos >= cuts["low"]).mean() >= 0.95 and (big_pos >= cuts["low"]).mean() >= 0.95


def test_cut_out_negatives_are_laid_on_white_not_on_their_hidden_colour(tmp_path):
    """A Tux Paint stamp stores black under its transparent pixels: read plainly, every stamp would
    come framed in black and the skin head would learn the frame, not the object."""
    import cv2

    from training.data import load_negatives

    bgra = np.zeros((100, 120, 4), np.uint8)
    bgra[30:70, 40:80] = (40, 90, 200, 255)  # an opaque orange-ish square, BGR
    bgra[0:10, 0:10, 3] = 128  # half-transparent black corner
    cv2.imwrite(str(tmp_path / "stamp.png"), bgra)
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((80, 80), 70, np.uint8))
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((80, 80, 3), 65535, np.uint16))
    deep, grey, stamp = load_negatives([tmp_path])  # sorted by name
    assert stamp.shape == (100, 120, 3) and stamp[90, 100].tolist() == [255, 255, 255]  # transparent → white page
    assert stamp[50, 60].tolist() == [200, 90, 40]  # opaque kept, as RGB
    assert stamp[5, 5].tolist() == [127, 127, 127]  # half-transparent black → half-way to white
    assert grey.shape == deep.shape == (80, 80, 3) and grey[0, 0].tolist() == [70] * 3 and deep[0, 0].tolist() == [255] * 3


def test_the_skin_gate_is_chosen_only_on_photos_serving_would_screen(tmp_path):
    """BCN20000's 84 px thumbnails are refused as too small before the skin gate runs; counting
    them pulled an ensemble's skin cut down to 0.67 and let a retina photo through."""
    import cv2

    from inference.quality import MIN_SHORT_SIDE
    from training.data import Sample, screened_by_serving

    def sample(name, w, h, crop=0.0):
        cv2.imwrite(str(tmp_path / name), np.full((h, w, 3), 128, np.uint8))
        return Sample(tmp_path / name, "s", "dermoscopy", 0, name, 0, crop)

    assert MIN_SHORT_SIDE == 224
    assert not screened_by_serving(sample("thumb.jpg", 84, 84))
    assert screened_by_serving(sample("exact.jpg", 224, 224)) and screened_by_serving(sample("wide.jpg", 600, 400))
    # SD-198's footer strip is cut off before serving-like use: 250 px tall minus 15 % is 212
    assert screened_by_serving(sample("footer.jpg", 400, 250)) and not screened_by_serving(sample("footer2.jpg", 400, 250, 0.15))



def test_risk_cuts_are_chosen_only_on_photos_serving_would_screen(tmp_path):
    """Thumbnails serving refuses as too small must not set the cuts users meet: their benign
    photos' high scores put an ensemble's high cut at 0.496 instead of 0.321."""
    import cv2

    from training.data import Sample
    from training.evaluate import MAL_IDX, served_risk_cuts

    rng = np.random.default_rng(3)
    samples, scores = [], []
    for i in range(200):
        big = i < 120  # 120 screened photos, 80 thumbnails
        name = f"{i}.png"
        cv2.imwrite(str(tmp_path / name), np.full((300, 300, 3) if big else (84, 84, 3), 128, np.uint8))
        malignant = i % 4 == 0
        samples.append(Sample(tmp_path / name, "big" if big else "thumbs", "dermoscopy", MAL_IDX[0] if malignant else 3, name, int(malignant)))
        # benign thumbnails score high: they alone would push the high cut up
        scores.append(rng.uniform(0.02, 0.9) if malignant else (rng.uniform(0.0, 0.3) if big else rng.uniform(0.5, 0.9)))
    scores = np.array(scores)
    cuts = served_risk_cuts(scores, samples)
    benign_big = scores[:120][[i % 4 != 0 for i in range(120)]]
    assert cuts["high"] <= 0.3 + 1e-6 and (benign_big < cuts["high"]).mean() >= 0.9
    everything = served_risk_cuts(scores, [Sample(tmp_path / "0.png", s.source, s.modality, s.label, s.group, s.malignant) for s in samples])
    assert everything["high"] > 0.5  # the same scores, all counted as screened: the thumbnails set it

def test_a_dermoscope_frame_blacks_out_the_corners_and_keeps_the_centre():
    """Non-skin photos seen through a lens-like circle: the skin head must not learn 'a lit disc on
    black is skin' (a retina photo scored 0.99). Scope 0 leaves every existing view as it was."""
    from training.augment import augment_negative, dermoscope_frame

    img = np.full((224, 224, 3), 200, np.uint8)
    framed = dermoscope_frame(img, np.random.default_rng(0))
    assert framed[:8, :8].max() == 0 and framed[-8:, -8:].max() == 0  # corners dark
    assert framed[100:124, 100:124].min() == 200  # the middle untouched
    photo = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    plain = augment_negative(photo, np.random.default_rng(5))
    assert np.array_equal(augment_negative(photo, np.random.default_rng(5), scope=0.0), plain)
    framed_views = [augment_negative(photo, np.random.default_rng(i), scope=1.0) for i in range(4)]
    # corners stay far darker than the middle through colour jitter (contrast lifts black a little) and JPEG
    assert all(v[:4, :4].mean() < 0.4 * v[96:128, 96:128].mean() for v in framed_views), [v[:4, :4].mean() for v in framed_views]


def test_the_phone_cut_of_candidate_2_is_not_set_by_one_outlier(tmp_path):
    """Below 59 positives the Clopper–Pearson rule allows no miss, so one odd photo sets the cut
    (candidate 1's failure); candidate 2's 97 % point rule lets it go and keeps the rest."""
    from training.modality import ModalityHead, low_cut

    score = np.r_[0.0002, np.linspace(0.2, 0.9, 43), np.linspace(0.0, 0.1, 44)]
    positive = np.r_[np.ones(44, bool), np.zeros(44, bool)]
    source = np.full(88, "sd198")
    assert low_cut(score, positive, source, "cp") == 0.0002
    assert low_cut(score, positive, source, "point") >= 0.2

    head = ModalityHead(np.zeros(3, np.float32), np.ones(3, np.float32), np.array([1, 0, 0], np.float32), 0.0, 0.9)
    assert [head.route(p) for p in (0.95, 0.05, 0.5)] == ["clinical", "dermoscopy", "unsure"]
    head.save(tmp_path / "h.npz")
    again = ModalityHead.load(tmp_path / "h.npz")
    assert float(again.probability_clinical(np.array([3.0, 0, 0], np.float32))) > 0.9
