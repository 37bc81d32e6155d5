"""A small real training run: a few dozen shared images, one short epoch, export, reload."""

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import DATA, SHARED, needs_shared

WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


@needs_shared
@pytest.mark.skipif(not WEIGHTS.exists(), reason=f"backbone weights not found at {WEIGHTS}")
def test_train_export_and_serve(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tensorflow", reason="training needs the [train] extra")
    from inference import Screener
    from training.train import Config, train

    out = tmp_path / "run"
    neg = tmp_path / "non-skin"
    neg.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):  # the skin head's non-skin photos: noise of three colours, one cut out (PNG alpha)
        img = (rng.uniform(0, 1, (96, 128, 1)) * [60 * i, 200, 255 - 60 * i]).astype(np.uint8)
        if i == 2:
            img = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
        cv2.imwrite(str(neg / f"{i}.png"), img)
    cfg = Config(
        negatives=[str(neg)],
        data=[str(DATA / "ham10000"), str(DATA / "pad_ufes20")],
        weights=str(WEIGHTS),
        alpha=0.35,
        out=str(out),
        epochs_head=1,
        epochs_finetune=1,
        views_scale=0.25,
        limit_per_source=8,
        synthetic_documents=40,
        version="test-run",
        lowres_views=1,
    )
    report = train(cfg)

    assert report["tflite_max_abs_diff"] <= 1e-3  # LiteRT agrees with Keras
    for name in ("model.tflite", "model_card.json", "splits.csv", "report.json", "roc.png", "confusion.png", "calibration.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "splits.csv") as fh:
        rows = list(csv.DictReader(fh))
    groups = {}
    for r in rows:
        groups.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in groups.values()), "a lesion/patient crossed splits"
    card = json.loads((out / "model_card.json").read_text())
    assert card["version"] == "test-run" and 0 <= card["thresholds"]["low"] <= card["thresholds"]["high"] <= 1
    assert card["training"]["cut"] == cfg.cut and cfg.cut in card["architecture"]
    assert card["training"]["lowres_views"] == 1
    assert card["training"]["negatives"] == 3  # an ensemble's gate replays which of them it trained on
    assert card["data"][-1] == "Non-skin negatives: photos from non-skin/, generated documents"
    assert [d.split(" ")[0] for d in card["data"][:2]] == ["HAM10000", "PAD-UFES-20"]  # cites what it was trained on

    # Re-choosing the cut points from the exported model, as serving scores photos, gives the
    # cut points training chose from Keras outputs (LiteRT agrees to 1e-3).
    from training.cuts import main as cuts_main

    capsys.readouterr()
    assert cuts_main([str(out)]) == 0
    assert "val AUC served" in capsys.readouterr().out
    recut = json.loads((out / "model_card.json").read_text())
    for key in ("low", "high"):
        assert abs(recut["thresholds"][key] - card["thresholds"][key]) <= 1e-3, key
    assert recut["thresholds"]["chosen_on"] == card["thresholds"]["chosen_on"]
    assert set(recut["metrics"]["test"]) == {"ham10000", "pad_ufes20"}

    # --install copies card and model where the package reads them (here: a stand-in folder).
    import training.card

    package = tmp_path / "package"
    package.mkdir()
    monkeypatch.setattr(training.card, "PACKAGE_MODEL_DIR", package)
    assert training.card.install(out, model=False) == package and not (package / "model.tflite").exists()
    training.card.install(out)
    assert (package / "model.tflite").read_bytes() == (out / "model.tflite").read_bytes()
    assert json.loads((package / "model_card.json").read_text()) == recut

    # The run can be recorded in the comparison table and rendered into MODEL_CARD.md.
    from training.card import main as card_main

    runs = tmp_path / "runs.json"
    runs.write_text('[{"version": "test-run", "change": "stale row", "seed": 1}]')
    assert card_main([str(out), "--runs", str(runs), "--record", "smoke run"]) == 0
    [row] = json.loads(runs.read_text())
    assert row["change"] == "smoke run" and row["seed"] == cfg.seed and set(row["test"]) == {"ham10000", "pad_ufes20"}
    capsys.readouterr()
    assert card_main([str(out), "--runs", str(runs)]) == 0
    assert f"| test-run (shipped) | smoke run | {cfg.seed} |" in capsys.readouterr().out
    # … with #20's candidates: image-only LOSO rows and the rows with the user's answers
    docs = Path(__file__).resolve().parent.parent / "docs" / "model"
    assert card_main([str(out), "--loso", str(docs / "loso.json"), "--frozen", str(docs / "frozen_loso.json"), "--answers", str(docs / "answers.json")]) == 0
    rendered = capsys.readouterr().out
    assert "## Candidates (\"Model v3\", not shipped)" in rendered and "| frozen a05+v1+v2/Cinner |" in rendered and "| held-out patients: 127 | 52 | 9 (0) |" in rendered
    assert set(report["test"]) == {"ham10000", "pad_ufes20"}

    screener = Screener.load(out / "model.tflite")
    img = np.full((400, 400, 3), 170, np.uint8)
    from .conftest import ROOT, jpeg_bytes

    r = screener.screen(jpeg_bytes(img), force=True)
    assert r.model == "test-run" and abs(sum(r.probabilities.values()) - 1) < 1e-3

    # An ensemble of this run and the shipped model: one folder the tools accept, its own cut
    # points and gate, served as the mean of its members (the skin gate from the members named by
    # --gate-from, else all); installing it leaves no stale file.
    from inference.classifier import Classifier
    from training.ensemble import main as ensemble_main

    ens = tmp_path / "ens"
    shipped = ROOT / "inference" / "model"
    with pytest.raises(SystemExit):  # a gate member that is not a member is a usage error
        ensemble_main([str(out), str(shipped), "--out", str(ens), "--version", "test-ens", "--gate-from", "no-such-model"])
    assert ensemble_main([str(out), str(shipped), "--out", str(ens), "--version", "test-ens", "--gate-from", "test-run"]) == 0
    ens_card = json.loads((ens / "model_card.json").read_text())
    assert ens_card["members"][0] == {"file": "member-test-run.tflite", "version": "test-run", "architecture": card["architecture"], "gate": True}
    assert [m["gate"] for m in ens_card["members"][1:]] == [False] * (len(ens_card["members"]) - 1)
    assert ens_card["outputs"]["skin"].startswith("skin sigmoid of test-run ")
    assert len(ens_card["members"]) >= 2 and all((ens / m["file"]).exists() for m in ens_card["members"])
    assert set(ens_card["metrics"]["test"]) == {"ham10000", "pad_ufes20"} and "skin_gate_val" in ens_card["metrics"]
    assert set(json.loads((ens / "report.json").read_text())["val_auc_needs_doctor"]) == {"ham10000", "pad_ufes20"}
    served = Screener.load(card=ens / "model_card.json")
    assert served.classifier.members == len(ens_card["members"]) and served.version == "test-ens"
    from PIL import Image

    photo = np.asarray(Image.open(min((DATA / "pad_ufes20" / "images").iterdir())).convert("RGB"))
    each = [Classifier(ens / m["file"], colour_constancy=False).predict(photo) for m in ens_card["members"]]
    both = served.classifier.predict(photo)
    assert np.allclose(both.probabilities, np.mean([e.probabilities for e in each], axis=0), atol=1e-6)
    assert abs(both.skin - each[0].skin) < 1e-6  # the gate member's skin head alone
    assert not np.allclose(each[0].probabilities, each[1].probabilities, atol=1e-3)  # the mean is not one member's
    assert abs(each[0].skin - each[1].skin) > 1e-4  # so the gate is not the mean either
    plain = {**ens_card, "members": [{k: v for k, v in m.items() if k != "gate"} for m in ens_card["members"]]}
    (tmp_path / "plain").mkdir()
    for m in ens_card["members"]:
        (tmp_path / "plain" / m["file"]).write_bytes((ens / m["file"]).read_bytes())
    (tmp_path / "plain" / "model_card.json").write_text(json.dumps(plain))
    assert abs(Screener.load(card=tmp_path / "plain" / "model_card.json").classifier.predict(photo).skin - np.mean([e.skin for e in each])) < 1e-6
    training.card.install(ens)
    assert sorted(f.name for f in package.glob("*.tflite")) == sorted(m["file"] for m in ens_card["members"])
    assert Screener.load(card=package / "model_card.json").screen(jpeg_bytes(photo), force=True).model == "test-ens"

    # A rerun into the same folder (after an interruption, say) reuses the feature maps and the
    # finished epochs instead of starting over.
    capsys.readouterr()
    train(cfg)
    err = capsys.readouterr().err
    assert "reusing the feature maps" in err and "resuming after fine-tune epoch 1" in err


@needs_shared
def test_views_for_an_unknown_source_are_refused(tmp_path):
    """A typo in ``--views`` must not silently train with the default number of views."""
    pytest.importorskip("tensorflow", reason="training needs the [train] extra")
    from training.train import Config, train

    cfg = Config(data=[str(DATA / "pad_ufes20")], weights=None, out=str(tmp_path), views={"isic": 10})
    with pytest.raises(ValueError, match="isic"):
        train(cfg)
    assert not (tmp_path / "splits.csv").exists()


@needs_shared
def test_cli_reports_an_unknown_views_source_as_a_usage_error(tmp_path, capsys):
    """The command line answers a ``--views`` typo with usage text and exit code 2, not a traceback."""
    from training.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(DATA / "pad_ufes20"), "--views", "isic=10", "--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "['isic']" in err and "pad_ufes20" in err and "Traceback" not in err
    assert not (tmp_path / "splits.csv").exists()


WEIGHTS_05 = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5"


@needs_shared
@pytest.mark.skipif(not WEIGHTS_05.exists(), reason=f"backbone weights not found at {WEIGHTS_05}")
def test_loso_protocol_scores_every_held_out_source_and_resumes(tmp_path, capsys):
    """A tiny leave-one-source-out run over three sources: each held out once, the in-source
    fit scored on every test split, and a rerun trains nothing new."""
    pytest.importorskip("tensorflow", reason="training needs the [train] extra")
    from training.loso import main

    out = tmp_path / "loso.json"
    args = ["--data", str(DATA / "ham10000"), str(DATA / "pad_ufes20"), str(DATA / "bcn20000"), "--weights", str(WEIGHTS_05),
            "--cache", str(tmp_path / "cache"), "--limit", "40", "--epochs", "1", "--recipes", "today", "all7", "--out", str(out)]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert {k for k in res if "/loso/" in k} == {f"{r}/loso/{s}" for r in ("today", "all7") for s in ("ham10000", "pad_ufes20", "bcn20000")}
    # "today" never trains on the new source, so with bcn20000 held out it trains on the other two;
    # with ham10000 held out it trains on pad_ufes20 alone.
    assert res["today/loso/ham10000"]["train_sources"] == ["pad_ufes20"]
    assert res["all7/loso/ham10000"]["train_sources"] == ["bcn20000", "pad_ufes20"]
    assert set(res["all7/insource"]["test"]) == {"ham10000", "pad_ufes20", "bcn20000"}
    assert res["all7/loso/bcn20000"]["auc_melanoma"] is None or 0 <= res["all7/loso/bcn20000"]["auc_melanoma"] <= 1
    before = out.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0  # resumed: every fold is already there
    assert out.stat().st_mtime_ns == before
    assert "LOSO mean" in capsys.readouterr().out
    assert main(["--data", "x", "--cache", "x", "--out", str(out), "--markdown"]) == 0
    assert "| today |" in capsys.readouterr().out

    # An ensemble is scored from the members' kept outputs, averaged: no member trains again...
    from training.evaluate import auc
    from training.loso import MEL, Cached

    preds = tmp_path / "cache" / "preds"
    kept = {p: p.stat().st_mtime_ns for p in preds.rglob("*.npy")}
    assert len(kept) == 2 * (3 + 3)  # two recipes × (three held-out sources + three test splits)
    assert main(args[:-5] + ["--recipes", "today+all7", "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in preds.rglob("*.npy")} == kept
    res = json.loads(out.read_text())
    bcn = Cached.load(tmp_path / "cache" / "bcn20000.npz")
    mean = (np.load(preds / "today" / "loso-bcn20000.npy") + np.load(preds / "all7" / "loso-bcn20000.npy")) / 2
    assert res["today+all7/loso/bcn20000"]["auc_melanoma"] == auc(mean[:, MEL], bcn.label == MEL)
    assert set(res["today+all7/insource"]["test"]) == {"ham10000", "pad_ufes20", "bcn20000"}
    # ...unless a member's outputs are missing: that fold alone is run again.
    (preds / "all7" / "loso-pad_ufes20.npy").unlink()
    assert main(args[:-5] + ["--recipes", "today+all7", "--out", str(out)]) == 0
    again = {p: p.stat().st_mtime_ns for p in preds.rglob("*.npy")}
    assert [p.name for p in again if again[p] != kept.get(p)] == ["loso-pad_ufes20.npy"]


@needs_shared
def test_new_sources_are_read_with_their_own_grouping():
    from training.data import read_source

    bcn = read_source(DATA / "bcn20000")
    assert bcn.name == "bcn20000" and len({s.group for s in bcn.samples}) < len(bcn.samples)  # several images per lesion
    mixed = read_source(DATA / "isic_archive_mixed")
    assert {s.modality for s in mixed.samples} == {"dermoscopy", "clinical"}
    isic2020 = read_source(DATA / "isic2020")
    assert isic2020.name == "isic2020" and len({s.group for s in isic2020.samples}) == 130  # by patient


def test_fit_step_resumes_after_an_interruption(tmp_path, capsys):
    """Kill the training after its third epoch; the rerun continues with the fourth, from the
    saved weights, instead of starting over."""
    pytest.importorskip("tensorflow", reason="training needs the [train] extra")
    import keras

    from training.fit import Schedule, fit_top
    from training.model import build

    class Interrupt(keras.callbacks.Callback):
        def __init__(self, after: int):
            super().__init__()
            self.after, self.seen = after, 0

        def on_epoch_end(self, epoch, logs=None):
            self.seen += 1
            if self.seen == self.after:
                raise KeyboardInterrupt  # what a kill looks like to the run: it stops here

    keras.utils.set_random_seed(0)
    top = build(None, alpha=0.35, cut="block_15_add").top
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, *top.input.shape[1:])).astype(np.float32)
    y = {"diagnosis": rng.integers(0, 7, 64), "skin": np.ones(64, np.float32)}
    w = {"diagnosis": np.ones(64, np.float32), "skin": np.ones(64, np.float32)}
    schedule = Schedule(epochs_head=1, epochs_finetune=3, batch=32)
    ckpt = tmp_path / "checkpoint"
    interrupt = Interrupt(after=3)  # heads 1 + fine-tune 2 done, fine-tune 3 not started
    with pytest.raises(KeyboardInterrupt):
        fit_top(top, x, y, w, schedule, checkpoint=ckpt, verbose=0, callbacks=(interrupt,))
    progress = json.loads((ckpt / "progress.json").read_text())
    assert progress["stage"] == "fine-tune" and progress["epochs_done"] == 2
    saved = [v.copy() for v in top.get_weights()]

    fresh = build(None, alpha=0.35, cut="block_15_add").top
    capsys.readouterr()
    fit_top(fresh, x, y, w, schedule, checkpoint=ckpt, verbose=0)
    err = capsys.readouterr().err
    assert "resuming after fine-tune epoch 2" in err and "stage fine-tune: 1 of 3 epochs" in err and "stage heads" not in err
    assert json.loads((ckpt / "progress.json").read_text())["epochs_done"] == 3
    assert any(not np.allclose(a, b) for a, b in zip(saved, fresh.get_weights(), strict=True))  # it trained on from there
