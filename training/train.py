"""Train, calibrate, evaluate and export the screening model.

    python -m training train --data ../shared/data/ham10000 ../shared/data/isic2017 \
        ../shared/data/pad_ufes20 ../shared/data/sd198_subset \
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5 \
        --negatives /path/to/non-skin-photos --out runs/v1

Writes into ``--out``: ``splits.csv``, ``model.tflite``, ``model_card.json``, ``report.json``,
``report.md`` and PNG plots.  ``--install`` also copies the model and card into ``inference/model``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import keras
import numpy as np

from inference.labels import CLASSES, MALIGNANT
from inference.preprocess import INPUT_SIZE, SOG_POWER, model_input
from training import augment, evaluate, gate
from training.card import install
from training.data import (
    Sample,
    balanced_weights,
    load_all,
    load_image,
    load_negatives,
    negative_split,
    read_source,
    screened_by_serving,
    split_source,
    write_splits,
)
from training.features import FeatureExtractor, to_tflite, views_of
from training.fit import Schedule, fit_top
from training.model import CUT_LAYER, build

#: Augmented training views per image, per source: small phone/clinical sources get more, so
#: each modality weighs in and the model cannot treat "dermoscope" as a feature of the disease.
DEFAULT_VIEWS = {"ham10000": 3, "isic2017": 6, "pad_ufes20": 24, "sd198": 12, "default": 8}


#: What the card cites for each source a model was trained on (licences follow the data).
CITATIONS = {
    "ham10000": "HAM10000 (Tschandl, Rosendahl, Kittler, Sci. Data 2018; ISIC archive), CC BY-NC-SA 4.0",
    "isic2017": "ISIC 2017 challenge (Codella et al., 2018), per-image CC-0 / CC-BY / CC-BY-NC",
    "pad_ufes20": "PAD-UFES-20 (Pacheco et al., Data in Brief 2020), CC BY 4.0",
    "sd198": "SD-198 subset (Sun et al., ECCV 2016; DermQuest), research use",
    "bcn20000": "BCN20000 (Combalia et al., 2019; ISIC 2019 challenge), 84×84 px copy, CC BY-NC-SA 4.0",
    "isic2020": "ISIC 2020 challenge (Rotemberg et al., Sci. Data 2021), CC BY-NC 4.0",
    "isic_archive_mixed": "ISIC archive images from many clinics, per-image CC-0 / CC-BY / CC-BY-NC",
}


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Config:
    data: list[str]
    weights: str | None
    out: str
    negatives: list[str] = field(default_factory=list)
    seed: int = 1234  # augmentation, initialisation and (unless split_seed is set) the splits
    split_seed: int | None = None  # another training seed on the same splits: compare recipes over seeds
    alpha: float = 0.5
    epochs_head: int = 1
    epochs_finetune: int = 7
    cut: str = CUT_LAYER  # cached feature maps end here; every layer after it is fine-tuned
    batch: int = 64
    views_scale: float = 1.0
    views: dict[str, int] = field(default_factory=dict)  # per-source overrides of DEFAULT_VIEWS
    limit_per_source: int | None = None
    synthetic_documents: int = 1500
    negative_views: int = 40
    install: bool = False
    version: str = ""
    colour_constancy: bool = False  # Shades of Gray in model_input (recorded in the card); off: measured better
    lowres_views: int = 0  # extra 64–128 px thumbnail views per training image (augment.lowres_view)
    negative_scope: float = 0.0  # share of non-skin views seen through a dermoscope frame (augment.dermoscope_frame)

    @property
    def views_per_source(self) -> dict[str, int]:
        """DEFAULT_VIEWS with this run's overrides: what training uses and the card records."""
        return {**DEFAULT_VIEWS, **self.views}


class BestByValidation(keras.callbacks.Callback):
    """Keeps the weights with the best mean per-source validation AUC (malignant group)."""

    def __init__(self, feats: np.ndarray, labels: np.ndarray, sources: np.ndarray):
        super().__init__()
        self.feats, self.labels, self.sources = feats, labels, sources
        self.best, self.best_weights, self.history = -1.0, None, []

    def on_epoch_end(self, epoch, logs=None):
        probs = self.model.predict(self.feats, batch_size=256, verbose=0)["diagnosis"]
        score = evaluate.malignancy(probs)
        aucs = {}
        for src in sorted(set(self.sources)):
            m = self.sources == src
            a = evaluate.auc(score[m], np.isin(self.labels[m], evaluate.MAL_IDX))
            if a is not None:
                aucs[str(src)] = a
        mean = float(np.mean(list(aucs.values()))) if aucs else 0.0
        self.history.append({"epoch": len(self.history) + 1, "val_auc_needs_doctor": aucs, "mean": round(mean, 4), **{k: round(float(v), 4) for k, v in (logs or {}).items()}})
        log(f"  val AUC (mal+akiec vs rest) per source {aucs} mean {mean:.4f}")
        if mean > self.best:
            self.best, self.best_weights = mean, self.model.get_weights()


def _features_key(cfg: Config) -> str:
    """What the cached feature maps depend on: a rerun with the same key reuses them."""
    keys = ("data", "weights", "negatives", "seed", "split_seed", "alpha", "cut", "views_scale", "limit_per_source", "synthetic_documents", "negative_views", "colour_constancy", "lowres_views")
    extra = {"negative_scope": cfg.negative_scope} if cfg.negative_scope else {}  # older runs' keys unchanged
    return json.dumps({k: getattr(cfg, k) for k in keys} | {"views": cfg.views_per_source} | extra, sort_keys=True)


def _cached_features(cfg: Config, splits: dict[str, list[Sample]], nets, out: Path) -> dict[str, np.ndarray]:
    """Feature maps of every view (the slow part of a CPU training), saved once per run folder."""
    path = out / "features.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) == _features_key(cfg):
                log(f"reusing the feature maps in {path}")
                return {k: z[k] for k in z.files if k != "key"}
        log(f"{path} was made with other settings: extracting again")
    feats = _extract_features(cfg, splits, nets)
    tmp = out / "features.tmp.npz"
    np.savez(tmp, key=np.array(_features_key(cfg)), **feats)
    os.replace(tmp, path)
    return feats


NEGATIVE_SOURCES = {  # a path part → what the photos are (docs/training.md, "Non-skin negatives", has the commands)
    "tuxpaint": "Tux Paint stamps (animals, food, plants, household things, clothes, planets) on a white page",
    "opencv-doc": "OpenCV's sample photos",
    "etr": "Extreme Tux Racer terrain textures",
}


def describe_negatives(folders: list[str]) -> str:
    """The card's line on what the skin head was taught is *not* a lesion photo."""
    kinds = []
    for f in folders:
        known = [text for key, text in NEGATIVE_SOURCES.items() if key in Path(f).parts]
        if not known and any((Path(f) / "usr/share" / d).is_dir() for d in ("backgrounds", "wallpapers")):
            known = ["wallpapers from Debian packages (GNOME, MATE, UKUI, Lomiri, Sway, Plasma)"]
        kinds += [k for k in known or [f"photos from {Path(f).name}/"] if k not in kinds]
    return "Non-skin negatives: " + ", ".join(kinds + ["generated documents"])

def _extract_features(cfg: Config, splits: dict[str, list[Sample]], nets) -> dict[str, np.ndarray]:
    """Augmented views for training, plain + flipped views for val/test, non-skin views."""
    # Pixels in memory (≈ 2 GB for the full data).
    images = {name: load_all(items) for name, items in splits.items()}
    log("images loaded: " + ", ".join(f"{k} {len(v)}" for k, v in images.items()))
    extractor = FeatureExtractor(nets.lower)

    train_s = splits["train"]
    per_source = cfg.views_per_source
    counts = [max(1, round(per_source.get(s.source, per_source["default"]) * cfg.views_scale)) for s in train_s]
    negatives = load_negatives(cfg.negatives) if cfg.negatives else []
    rng = np.random.default_rng(cfg.seed)
    val_idx, train_idx = negative_split(len(negatives), rng)
    neg_val = [negatives[i] for i in val_idx]
    neg_train = [negatives[i] for i in train_idx]
    n_docs = max(0, round(cfg.synthetic_documents * cfg.views_scale))
    docs = [augment.synthetic_document(rng) for _ in range(n_docs + n_docs // 5)]
    neg_train += docs[:n_docs]
    neg_val += docs[n_docs:]
    neg_counts = [max(1, round(cfg.negative_views * cfg.views_scale)) if i < len(neg_train) - n_docs else 1 for i in range(len(neg_train))]

    log(f"extracting {sum(counts)} lesion views and {sum(neg_counts)} non-skin views")
    prep = partial(model_input, colour_constancy=cfg.colour_constancy)
    x_les = extractor.extract(views_of(images["train"], counts, augment.augment_lesion, cfg.seed), sum(counts), "train", prep)
    x_neg = extractor.extract(views_of(neg_train, neg_counts, partial(augment.augment_negative, scope=cfg.negative_scope), cfg.seed + 1), sum(neg_counts), "negatives", prep)
    y_les = np.repeat([s.label for s in train_s], counts)
    src_les = np.repeat([s.source for s in train_s], counts)
    if cfg.lowres_views:  # thumbnails blown up again: the recipe that won leave-one-source-out
        n = cfg.lowres_views * len(train_s)
        x_low = extractor.extract(views_of(images["train"], [cfg.lowres_views] * len(train_s), augment.lowres_view, cfg.seed + 3), n, "train low-res", prep)
        x_les = np.concatenate([x_les, x_low])
        y_les = np.concatenate([y_les, np.repeat([s.label for s in train_s], cfg.lowres_views)])
        src_les = np.concatenate([src_les, np.repeat([s.source for s in train_s], cfg.lowres_views)])

    def plain(imgs: list[np.ndarray]) -> np.ndarray:
        return np.stack([augment.center_view(i) for i in imgs]) if imgs else np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)

    evals = {}
    for name in ("val", "test"):
        v = plain(images[name])
        evals[name] = [extractor.extract(iter(t), len(t), f"{name} tta{i}", prep) for i, t in enumerate(augment.flips(v))]
    x_neg_val = extractor.extract(iter(plain(neg_val)), len(neg_val), "non-skin val", prep)
    # Phone-style copies of the validation photos: the skin cut must hold on unseen cameras.
    degrade_rng = np.random.default_rng(cfg.seed + 2)
    degraded = [augment.phone_view(i, degrade_rng) for i in images["val"]]
    x_val_degraded = extractor.extract(iter(degraded), len(degraded), "val degraded", prep)
    del images
    out = {"x_les": x_les, "x_neg": x_neg, "y_les": y_les, "src_les": src_les, "x_neg_val": x_neg_val, "x_val_degraded": x_val_degraded}
    out["n_negatives"] = np.array(len(negatives))  # an ensemble's gate needs to know which were split
    for name, views in evals.items():
        out.update({f"{name}_tta{i}": v for i, v in enumerate(views)})
    return out


def train(cfg: Config) -> dict:
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)

    # 1. Sources and leak-free splits, written next to the model.
    splits: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for folder in cfg.data:
        src = read_source(folder)
        parts = split_source(src, cfg.seed if cfg.split_seed is None else cfg.split_seed)
        for name, items in parts.items():
            if cfg.limit_per_source:  # smoke runs: a seeded sample across classes
                keep = max(2, cfg.limit_per_source * {"train": 3, "val": 1, "test": 1}[name])
                items = [items[i] for i in sorted(np.random.default_rng(cfg.seed).permutation(len(items))[:keep])]
            splits[name].extend(items)
        log(f"{src.name}: {len(src.samples)} images → " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
    unknown = set(cfg.views) - {s.source for s in splits["train"]}
    if unknown:  # a typo would silently train with the default views
        raise ValueError(f"views given for sources not in --data: {sorted(unknown)}")
    write_splits(out / "splits.csv", splits)

    # 2–3. Cached feature maps (reused from ``out/features.npz`` when a run is resumed).
    nets = build(cfg.weights, alpha=cfg.alpha, cut=cfg.cut)
    f = _cached_features(cfg, splits, nets, out)
    x_les, x_neg, y_les, src_les = f["x_les"], f["x_neg"], f["y_les"], f["src_les"]
    evals = {name: [f[f"{name}_tta{i}"] for i in range(4)] for name in ("val", "test")}
    x_neg_val, x_val_degraded = f["x_neg_val"], f["x_val_degraded"]
    log(f"features ready after {time.time() - t0:.0f}s")

    # 4. Weights: balance classes and sources (square-root dampened), and skin vs non-skin.
    w_diag = balanced_weights(y_les, src_les)
    x = np.concatenate([x_les, x_neg])
    del x_les
    n_les, n_neg = len(y_les), len(x_neg)
    y = {
        "diagnosis": np.concatenate([y_les, np.zeros(n_neg, int)]),
        "skin": np.concatenate([np.ones(n_les), np.zeros(n_neg)]).astype(np.float32),
    }
    sw = {
        "diagnosis": np.concatenate([w_diag, np.zeros(n_neg)]).astype(np.float32),
        "skin": np.concatenate([np.ones(n_les), np.full(n_neg, 0.5 * n_les / max(1, n_neg))]).astype(np.float32),
    }
    val_labels = np.array([s.label for s in splits["val"]])
    val_sources = np.array([s.source for s in splits["val"]])
    best = BestByValidation(evals["val"][0], val_labels, val_sources)

    # 5. Heads first (top frozen), then fine-tune the top blocks with a cosine schedule;
    #    checkpointed every epoch, so an interrupted run continues where it stopped.
    top = nets.top
    fit_top(top, x, y, sw, Schedule(cfg.epochs_head, cfg.epochs_finetune, cfg.batch), best=best, checkpoint=out / "checkpoint")
    if best.best_weights is not None:
        top.set_weights(best.best_weights)

    # 6. Calibrate on validation, then fold the temperature into the logits layer.
    def predict(feats: np.ndarray) -> dict[str, np.ndarray]:
        return top.predict(feats, batch_size=256, verbose=0) if len(feats) else {"diagnosis": np.zeros((0, len(CLASSES))), "skin": np.zeros((0, 1))}

    val_raw = predict(evals["val"][0])["diagnosis"]
    temperature = evaluate.fit_temperature(val_raw, val_labels)
    dense = top.get_layer("diagnosis_logits")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / temperature, bias / temperature])
    log(f"temperature {temperature:.3f}")

    def probs_of(split: str, tta: bool) -> np.ndarray:
        views = evals[split] if tta else evals[split][:1]
        return np.mean([predict(v)["diagnosis"] for v in views], axis=0)

    # 7. Cut points on validation photos serving screens: per modality, the conservative one wins.
    val_pos = np.isin(val_labels, evaluate.MAL_IDX)
    screened = np.array([screened_by_serving(s) for s in splits["val"]], bool)  # serving refuses the rest as too small
    cuts = evaluate.served_risk_cuts(evaluate.malignancy(probs_of("val", False)), splits["val"], screened)

    val_skin = predict(x_val_degraded)["skin"][:, 0]
    neg_skin = predict(x_neg_val)["skin"][:, 0]
    skin_by_source = {str(src): val_skin[(val_sources == src) & screened] for src in sorted(set(val_sources[screened]))}
    too_small = {str(src): int(((val_sources == src) & ~screened).sum()) for src in sorted(set(val_sources[~screened]))}
    cuts["skin"] = gate.skin_cut(skin_by_source) if skin_by_source else 0.5
    skin_metrics = gate.gate_metrics(cuts["skin"], skin_by_source, neg_skin, too_small)
    log(f"cut points {cuts}; skin head on validation {skin_metrics}")

    # 8. Test report per source, with and without test-time augmentation.
    report: dict = {"cuts": cuts, "temperature": round(temperature, 4), "skin_gate_val": skin_metrics, "history": best.history}
    report["negatives"] = int(f["n_negatives"]) if "n_negatives" in f else None  # None: features cached before the count was kept
    for tta in (False, True):
        key = "test_tta" if tta else "test"
        report[key], plot_data = evaluate.report_by_source(probs_of("test", tta), splits["test"], cuts)
        if not tta:
            report["plots"] = evaluate.plots(out, plot_data)
        # Validation AUC too, so a choice is made on validation and only confirmed on test.
        vprobs = probs_of("val", tta)
        report[key.replace("test", "val") + "_auc_needs_doctor"] = {
            src: evaluate.auc(evaluate.malignancy(vprobs)[val_sources == src], val_pos[val_sources == src]) for src in sorted(set(val_sources))
        }

    # 9. Export and check that LiteRT agrees with Keras on validation images.
    tflite = to_tflite(nets.full)
    (out / "model.tflite").write_bytes(tflite)
    report["tflite_max_abs_diff"] = _parity(nets.full, tflite, splits["val"][:64], partial(model_input, colour_constancy=cfg.colour_constancy))
    log(f"TFLite vs Keras max |Δ| on validation images: {report['tflite_max_abs_diff']:.2e}")

    version = cfg.version or f"{datetime.now(UTC):%Y.%m.%d}-mnv2a{cfg.alpha}"
    card = model_card(cfg, version, cuts, temperature, report, splits)
    (out / "model_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    report["train_seconds"] = round(time.time() - t0)
    card["training"]["seconds"] = report["train_seconds"]
    (out / "model_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    if cfg.install:
        log(f"installed into {install(out)}")
    log(f"done in {time.time() - t0:.0f}s")
    return report


def _parity(full: keras.Model, tflite: bytes, samples: list[Sample], prep=model_input) -> float:
    from ai_edge_litert.interpreter import Interpreter

    if not samples:
        return 0.0
    batch = np.stack([prep(augment.center_view(load_image(s))) for s in samples]).astype(np.float32)
    ref = full.predict(batch, verbose=0)
    it = Interpreter(model_content=tflite, num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    worst = 0.0
    for i, img in enumerate(batch):
        it.set_tensor(inp, img[None])
        it.invoke()
        for det in it.get_output_details():
            got = it.get_tensor(det["index"])[0]
            key = "diagnosis" if got.shape[-1] == len(CLASSES) else "skin"
            worst = max(worst, float(np.abs(got - ref[key][i]).max()))
    return worst


def model_card(cfg: Config, version: str, cuts: dict, temperature: float, report: dict, splits: dict) -> dict:
    counts = {name: {} for name in splits}
    for name, items in splits.items():
        for s in items:
            counts[name][s.source] = counts[name].get(s.source, 0) + 1
    return {
        "name": "kz-skin-screening",
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": f"MobileNetV2 alpha={cfg.alpha}, ImageNet init, top fine-tuned after {cfg.cut}",
        "classes": list(CLASSES),
        "malignant_classes": list(MALIGNANT),
        "input": {
            "size": INPUT_SIZE,
            "colour": "RGB",
            "colour_constancy": cfg.colour_constancy,
            "preprocessing": "inference.preprocess.model_input: centre square crop, resize, "
            + (f"Shades of Gray (p={SOG_POWER:g}), " if cfg.colour_constancy else "no colour constancy, ")
            + "x/127.5-1",
        },
        "outputs": {"diagnosis": "softmax over classes (temperature-calibrated)", "skin": "sigmoid: is this a close-up skin photo"},
        "temperature": round(temperature, 4),
        "thresholds": {
            "low": round(cuts["low"], 4),
            "high": round(cuts["high"], 4),
            "skin": cuts["skin"],
            "rule": "risk=high if malignancy ≥ high; low if malignancy < low and the top class is not malignant/akiec; else moderate",
            "chosen_on": evaluate.CUTS_RULE,
        },
        "metrics": {"test": report["test"], "test_tta": report["test_tta"], "skin_gate_val": report["skin_gate_val"]},
        "tflite_max_abs_diff": report["tflite_max_abs_diff"],
        "training": {"negatives": report.get("negatives"), "colour_constancy": cfg.colour_constancy, "lowres_views": cfg.lowres_views, "negative_scope": cfg.negative_scope, "seed": cfg.seed, "split_seed": cfg.split_seed, "splits": counts, "cut": cfg.cut, "epochs_head": cfg.epochs_head, "epochs_finetune": cfg.epochs_finetune, "views_scale": cfg.views_scale, "views": cfg.views_per_source},
        "data": [CITATIONS.get(src, f"{src}: a maintainers' export of reviewed cases (bot.admin export)") for src in sorted(counts["train"])]
        + [describe_negatives(cfg.negatives)],
        "licence": "Model weights inherit CC BY-NC-SA 4.0 from HAM10000: non-commercial use only.",
        "intended_use": "Preliminary screening aid for adults in Kazakhstan via a Telegram bot; every answer says it is not a diagnosis and sends uncertain or risky cases to a doctor.",
        "limitations": [
            "Not a diagnosis; not validated prospectively or on Kazakhstan's population.",
            "Training photos are mostly fair skin (Fitzpatrick I–III); darker skin is under-represented.",
            "Smartphone photos are few (PAD-UFES-20, SD-198), so phone-photo metrics have wide uncertainty.",
            "Nails, mucosa, scalp under hair and lesions larger than the frame are out of scope.",
        ],
    }
