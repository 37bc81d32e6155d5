"""Leave-one-source-out (LOSO): how a training recipe does on a clinic or camera it never saw.

    python -m training.loso --data ../shared/data/* --weights MNV2_0.5.h5 \\
        --cache runs/loso-cache --recipes today all7 all7_mel --out docs/model/loso.json

For each recipe and each source in turn, the top of the network is fine-tuned on every *other*
source and the held-out source is scored as a whole. Dermoscopy sources are scored on melanoma
vs rest (P(mel)) and malignant vs rest (``malignancy``); phone/clinical sources on malignant vs
rest. The same recipe fitted on every source's train+val split is also scored on each source's
own test split ("in-source"), as the full training reports it.

Why a proxy, and which: a full training takes 25–40 minutes on two cores, so seven of them per
recipe do not fit a working session. The protocol therefore caches, once per source, feature maps
of the frozen ImageNet network up to ``LOSO_CUT`` (``block_15_add``, 7×7×80) for
``views`` augmented views, one centre view and one low-resolution view per image, and fine-tunes
the last inverted-residual block, ``Conv_1`` and the diagnosis head on those (``training.model``,
the same network as the shipped model, cut later). One fold takes one to three minutes. It ranks
recipes (data mix, weighting, low-resolution views); it does not reproduce the shipped model's
absolute numbers. Backbone and cut-depth choices need full trainings, not this proxy.

Ensembles: a recipe name ``a+b`` averages the softmax outputs of recipes ``a`` and ``b`` fold by fold
(what a served ensemble of the two full models does). Every fold's outputs are kept in
``CACHE/preds``; a member fold whose outputs are not there is run again.

Resumable: each source's cache is one ``.npz`` written atomically, and every finished fold is
appended to ``--out`` at once; a rerun skips what is there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.labels import CLASSES

#: Where the cached maps end; everything after it (block_16, Conv_1, heads) is fine-tuned per fold.
LOSO_CUT = "block_15_add"
#: Fixed before any LOSO run: a candidate recipe ships only if its mean LOSO AUC beats the
#: baseline's by at least this much (and in-source test drops by at most ``INSOURCE_TOLERANCE``).
SHIP_MARGIN = 0.01
INSOURCE_TOLERANCE = 0.01
#: The sources today's model was trained on.
TODAY_SOURCES = ("ham10000", "isic2017", "pad_ufes20", "sd198")
MEL = CLASSES.index("mel")


@dataclass(frozen=True)
class Recipe:
    """What a LOSO fold varies: which sources train, how they weigh, which cached views feed it."""

    name: str
    sources: tuple[str, ...] | None  # None: every source in the cache
    mel_weight: float = 1.0  # extra class weight for melanoma (HAM10000 makes it a minority)
    lowres: bool = False  # add the low-resolution view of every image (one archive is 180 px)
    source_power: float = 0.5  # weight ∝ source count^-power (0.5: today's square-root damping)
    note: str = ""


RECIPES = {
    r.name: r
    for r in (
        Recipe("today", TODAY_SOURCES, note="today's sources and weighting (sqrt class × sqrt source)"),
        Recipe("all7", None, note="all seven sources, today's weighting"),
        Recipe("all7_mel", None, mel_weight=2.0, note="all seven, melanoma weighted ×2"),
        Recipe("all7_lowres", None, lowres=True, note="all seven, plus a low-resolution view of every image"),
        Recipe("all7_mel_lowres", None, mel_weight=2.0, lowres=True, note="all seven, melanoma ×2, low-resolution views"),
        Recipe("all7_srcbal", None, source_power=1.0, note="all seven, every source weighs the same"),
    )
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- cache


def cache_source(folder: str, extractor, out: Path, views: int, seed: int, limit: int | None = None) -> Path:
    """Feature maps of one source: ``aug`` (n×views), ``centre`` (n), ``lowres`` (n), metadata."""
    from training.augment import augment_lesion, center_view, lowres_view
    from training.data import load_all, read_source, split_source
    from training.features import views_of

    src = read_source(folder)
    if limit:  # smoke runs: a seeded sample of each source
        rng = np.random.default_rng(seed)
        src.samples = [src.samples[i] for i in sorted(rng.permutation(len(src.samples))[:limit])]
    path = out / f"{src.name}.npz"
    if path.exists():
        return path
    parts = split_source(src, seed)
    samples = [s for name in ("train", "val", "test") for s in parts[name]]
    split = np.array([name for name in ("train", "val", "test") for _ in parts[name]])
    t0 = time.time()
    images = load_all(samples)
    n = len(images)
    aug = extractor.extract(views_of(images, [views] * n, augment_lesion, seed), n * views, f"{src.name} aug")
    centre = extractor.extract((center_view(i) for i in images), n, f"{src.name} centre")
    lowres = extractor.extract(views_of(images, [1] * n, lowres_view, seed + 1), n, f"{src.name} lowres")
    tmp = out / f".{src.name}.tmp.npz"
    np.savez(
        tmp,
        aug=aug,
        centre=centre,
        lowres=lowres,
        label=np.array([s.label for s in samples]),
        malignant=np.array([-1 if s.malignant is None else s.malignant for s in samples]),
        modality=np.array([s.modality for s in samples]),
        split=split,
        views=np.array(views),
    )
    os.replace(tmp, path)
    log(f"cached {src.name}: {n} images in {time.time() - t0:.0f}s")
    return path


@dataclass
class Cached:
    name: str
    aug: np.ndarray
    centre: np.ndarray
    lowres: np.ndarray
    label: np.ndarray
    malignant: np.ndarray
    modality: np.ndarray
    split: np.ndarray
    views: int

    @classmethod
    def load(cls, path: Path) -> Cached:
        z = np.load(path)
        return cls(path.stem, z["aug"], z["centre"], z["lowres"], z["label"], z["malignant"], z["modality"], z["split"], int(z["views"]))

    @property
    def primary(self) -> str:
        """The number that counts for this source: melanoma AUC for dermoscopy, malignant otherwise."""
        return "auc_melanoma" if (self.modality == "dermoscopy").all() else "auc_malignant"


# ----------------------------------------------------------------------------- one fit


def training_set(parts: list[tuple[Cached, np.ndarray]], recipe: Recipe) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views, labels and weights from (source, image mask) pairs."""
    xs, ys, srcs = [], [], []
    for c, mask in parts:
        idx = np.flatnonzero(mask)
        aug_idx = (idx[:, None] * c.views + np.arange(c.views)).ravel()
        xs.append(c.aug[aug_idx])
        ys.append(np.repeat(c.label[idx], c.views))
        srcs.append(np.full(len(aug_idx), c.name))
        if recipe.lowres:
            xs.append(c.lowres[idx])
            ys.append(c.label[idx])
            srcs.append(np.full(len(idx), c.name))
    x, y, src = np.concatenate(xs), np.concatenate(ys), np.concatenate(srcs)
    return x, y, weights(y, src, recipe)


def weights(y: np.ndarray, src: np.ndarray, recipe: Recipe) -> np.ndarray:
    """Class count^-0.5 × source count^-power × melanoma factor, mean 1."""

    def inv(keys: np.ndarray, power: float) -> np.ndarray:
        _, inverse, cnt = np.unique(keys, return_inverse=True, return_counts=True)
        return cnt[inverse].astype(np.float64) ** -power

    w = inv(y, 0.5) * inv(src, recipe.source_power) * np.where(y == MEL, recipe.mel_weight, 1.0)
    return (w / w.mean()).astype(np.float32)


def fit_and_predict(weights_path: str | None, x: np.ndarray, y: np.ndarray, w: np.ndarray, scored: list[np.ndarray], seed: int, epochs: int, alpha: float) -> list[np.ndarray]:
    """Fine-tune block_16 + Conv_1 + heads on cached maps (the full training's own fit step,
    without the skin head); softmax outputs for each of ``scored``."""
    import keras

    from training.fit import Schedule, fit_top
    from training.model import build

    keras.utils.set_random_seed(seed)
    top = build(weights_path, alpha=alpha, cut=LOSO_CUT).top
    targets = {"diagnosis": y, "skin": np.ones(len(y), np.float32)}
    weights_ = {"diagnosis": w, "skin": np.zeros_like(w)}
    fit_top(top, x, targets, weights_, Schedule(epochs_head=1, epochs_finetune=epochs, batch=128, loss_weights=(1.0, 0.0)), verbose=0)
    return [top.predict(s, batch_size=512, verbose=0)["diagnosis"] for s in scored]


def score(probs: np.ndarray, c: Cached, mask: np.ndarray) -> dict:
    """Per-source AUCs; melanoma only where the images are dermoscopic."""
    from training.evaluate import auc, malignancy

    label, flag, modality = c.label[mask], c.malignant[mask], c.modality[mask]
    has = flag >= 0
    out = {"n": int(mask.sum()), "auc_malignant": auc(malignancy(probs)[has], flag[has] == 1)}
    derm = modality == "dermoscopy"
    if derm.any():
        out["auc_melanoma"] = auc(probs[derm, MEL], label[derm] == MEL)
        out["n_melanoma"] = int((label[derm] == MEL).sum())
    return out


# ----------------------------------------------------------------------------- the protocol


class Predictions:
    """Each fold's softmax outputs on disk (``CACHE/preds/RECIPE/KEY.npy``), so that ensembles of
    recipes can be scored without training again."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, recipe: str, key: str) -> Path:
        return self.folder / recipe / f"{key}.npy"

    def has(self, recipe: str, key: str) -> bool:
        return self.path(recipe, key).exists()

    def save(self, recipe: str, key: str, probs: np.ndarray) -> None:
        path = self.path(recipe, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.tmp.npy")
        np.save(tmp, probs.astype(np.float32))
        os.replace(tmp, path)

    def load(self, recipe: str, key: str) -> np.ndarray:
        return np.load(self.path(recipe, key))


def run_recipe(recipe: Recipe, cached: dict[str, Cached], weights_path: str | None, done: dict, record, seed: int, epochs: int, alpha: float, preds: Predictions, need_preds: bool = False) -> None:
    """Every LOSO fold and the in-source fit of one recipe; a fold already in ``done`` is skipped
    unless ``need_preds`` (an ensemble uses this recipe) and its outputs were not kept."""
    names = sorted(cached) if recipe.sources is None else [n for n in recipe.sources if n in cached]

    def skip(key: str, pred_keys: list[str]) -> bool:
        return key in done and not (need_preds and not all(preds.has(recipe.name, k) for k in pred_keys))

    for held in sorted(cached):
        key = f"{recipe.name}/loso/{held}"
        if skip(key, [f"loso-{held}"]):
            continue
        t0 = time.time()
        train = [(cached[n], np.ones(len(cached[n].label), bool)) for n in names if n != held]
        x, y, w = training_set(train, recipe)
        (probs,) = fit_and_predict(weights_path, x, y, w, [cached[held].centre], seed, epochs, alpha)
        preds.save(recipe.name, f"loso-{held}", probs)
        res = score(probs, cached[held], np.ones(len(probs), bool))
        record(key, {"recipe": recipe.name, "held_out": held, "train_sources": [n for n in names if n != held], "n_views": len(x), "seconds": round(time.time() - t0), **res})
    key = f"{recipe.name}/insource"
    tests = [cached[n] for n in sorted(cached)]
    if skip(key, [f"test-{c.name}" for c in tests]):
        return
    t0 = time.time()
    train = [(cached[n], cached[n].split != "test") for n in names]
    x, y, w = training_set(train, recipe)
    probs = fit_and_predict(weights_path, x, y, w, [c.centre[c.split == "test"] for c in tests], seed, epochs, alpha)
    for c, p in zip(tests, probs, strict=True):
        preds.save(recipe.name, f"test-{c.name}", p)
    per = {c.name: score(p, c, c.split == "test") for c, p in zip(tests, probs, strict=True)}
    record(key, {"recipe": recipe.name, "train_sources": names, "seconds": round(time.time() - t0), "test": per})


def score_ensemble(name: str, cached: dict[str, Cached], preds: Predictions, record) -> None:
    """An ensemble's folds: the members' kept outputs averaged, scored like any recipe."""
    members = name.split("+")
    for held in sorted(cached):
        probs = np.mean([preds.load(m, f"loso-{held}") for m in members], axis=0)
        record(f"{name}/loso/{held}", {"recipe": name, "held_out": held, "members": members, **score(probs, cached[held], np.ones(len(probs), bool))})
    per = {}
    for c in (cached[n] for n in sorted(cached)):
        probs = np.mean([preds.load(m, f"test-{c.name}") for m in members], axis=0)
        per[c.name] = score(probs, c, c.split == "test")
    record(f"{name}/insource", {"recipe": name, "members": members, "test": per})


def summary(results: dict) -> dict[str, dict]:
    """Per recipe: primary LOSO AUC per source, their mean, and the in-source test AUCs."""
    table: dict[str, dict] = {}
    for key, r in results.items():
        recipe, kind = key.split("/")[:2]
        row = table.setdefault(recipe, {"loso": {}, "insource": {}})
        if kind == "loso":
            primary = "auc_melanoma" if r.get("auc_melanoma") is not None and r["held_out"] != "isic_archive_mixed" else "auc_malignant"
            row["loso"][r["held_out"]] = r.get(primary)
        else:
            for src, m in r["test"].items():
                row["insource"][src] = m.get("auc_melanoma") if m.get("auc_melanoma") is not None and src != "isic_archive_mixed" else m.get("auc_malignant")
    for row in table.values():
        vals = [v for v in row["loso"].values() if v is not None]
        row["loso_mean"] = round(float(np.mean(vals)), 4) if vals else None
    return table


def markdown(results: dict, baseline: str = "today") -> str:
    """The card's LOSO table: primary AUC per held-out source, the mean, in-source test, and the
    ship-rule verdict of every recipe against ``baseline``."""
    table = summary({k: v for k, v in results.items() if not k.startswith("_")})
    sources = sorted({s for row in table.values() for s in row["loso"]})
    head = "| recipe | " + " | ".join(sources) + " | mean LOSO | Δ vs " + baseline + " |"
    lines = [head, "|" + "---|" * (len(sources) + 3)]
    base = table.get(baseline, {}).get("loso_mean")
    for name, row in table.items():
        cells = [f"{row['loso'].get(s):.3f}" if row["loso"].get(s) is not None else "—" for s in sources]
        mean = row["loso_mean"]
        if len(row["loso"]) < len(sources):  # a recipe whose folds are not all done yet
            lines.append(f"| {name} (partial) | " + " | ".join(cells) + " | — | — |")
            continue
        delta = "—" if base is None or mean is None or name == baseline else f"{mean - base:+.3f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean:.3f} | {delta} |")
    lines += ["", "In-source test (trained on every source's train+val split, same proxy):", ""]
    lines.append("| recipe | " + " | ".join(sources) + " |")
    lines.append("|" + "---|" * (len(sources) + 1))
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row['insource'].get(s):.3f}" if row["insource"].get(s) is not None else "—" for s in sources) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.loso", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="source folders (each with labels.csv)")
    p.add_argument("--weights", default=os.environ.get("BACKBONE_WEIGHTS"), help="ImageNet MobileNetV2 no-top .h5")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--cache", required=True, help="folder for the per-source feature caches (reused)")
    p.add_argument("--recipes", nargs="+", default=["today", "all7"], help=f"any of {sorted(RECIPES)}, or an ensemble such as today+all7_lowres")
    p.add_argument("--views", type=int, default=2, help="augmented views per image in the cache")
    p.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs per fold (after one heads-only epoch)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--limit", type=int, default=None, help="images per source (smoke runs)")
    p.add_argument("--out", required=True, help="JSON results; appended fold by fold, reruns skip finished folds")
    p.add_argument("--markdown", action="store_true", help="only print the card's table from --out (no training)")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.out).read_text())))
        return 0
    bad = [r for r in args.recipes if any(m not in RECIPES for m in r.split("+"))]
    if bad:
        p.error(f"unknown recipe(s) {bad}; known: {sorted(RECIPES)}")
    if args.weights and not os.path.exists(args.weights):
        p.error(f"--weights {args.weights} does not exist")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    results: dict = json.loads(out.read_text()) if out.exists() else {}
    meta = {"cut": LOSO_CUT, "views": args.views, "epochs": args.epochs, "seed": args.seed, "ship_margin": SHIP_MARGIN, "limit": args.limit}
    if results.get("_protocol", meta) != meta:
        p.error(f"{out} was made with {results['_protocol']}, not {meta}: use another --out")
    results["_protocol"] = meta

    def record(key: str, value: dict) -> None:
        if key in results:  # a member fold run again for its outputs: say what it gave before
            log(f"{key} again; before: " + json.dumps({k: v for k, v in results[key].items() if k.startswith("auc")}))
        results[key] = value
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(tmp, out)
        log(f"{key}: " + json.dumps({k: v for k, v in value.items() if k.startswith("auc") or k == "test"})[:400])

    import keras

    from training.features import FeatureExtractor
    from training.model import build

    lower = build(args.weights, alpha=args.alpha, cut=LOSO_CUT).lower
    extractor = FeatureExtractor(lower)
    cached: dict[str, Cached] = {}
    for folder in args.data:
        c = Cached.load(cache_source(folder, extractor, cache, args.views, args.seed, args.limit))
        cached[c.name] = c
    del extractor, lower
    keras.backend.clear_session()
    preds = Predictions(cache / "preds")
    in_ensembles = {m for r in args.recipes if "+" in r for m in r.split("+")}
    singles = [r for r in args.recipes if "+" not in r] + sorted(in_ensembles - set(args.recipes))
    for name in singles:
        run_recipe(RECIPES[name], cached, args.weights, results, record, args.seed, args.epochs, args.alpha, preds, need_preds=name in in_ensembles)
    for name in args.recipes:
        if "+" in name:
            score_ensemble(name, cached, preds, record)
    table = summary({k: v for k, v in results.items() if not k.startswith("_")})
    for recipe, row in table.items():
        print(f"{recipe:18s} LOSO mean {row['loso_mean']}  " + "  ".join(f"{k} {v}" for k, v in sorted(row["loso"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
