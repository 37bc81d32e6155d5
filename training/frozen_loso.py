"""Leave-one-source-out for heads on cached frozen features (Model v3), and the PAD-UFES-20
answers fusion. Reads ``training.frozen``'s cache; writes one JSON of numbers.

For every feature set (which networks) and every held-out source: a multinomial logistic head
(standardised features, class × source balanced weights, both views as training rows) is
fitted on 80 % of the other sources' groups; its low cut is the highest malignancy that keeps
≥ 0.95 sensitivity in every modality on the remaining 20 %; the held-out source then gives
malignant and melanoma AUC (views averaged), sensitivity at the low cut and the share of benign
lesions called low.

    python -m training.frozen_loso --cache runs/frozen --out docs/model/frozen_loso.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from inference.labels import CLASSES, MALIGNANT

SOURCES = ("ham10000", "isic2017", "pad_ufes20", "sd198_subset", "bcn20000", "isic_archive_mixed", "isic2020")
FEATURE_SETS = {"a05": ("a05",), "v1": ("v1",), "v2": ("v2",), "v1+v2": ("v1", "v2"), "a05+v1+v2": ("a05", "v1", "v2")}
MAL_IDX = [CLASSES.index(c) for c in MALIGNANT]
MEL = CLASSES.index("mel")
LOW_SENSITIVITY = 0.95


def load(cache: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name in SOURCES:
        with np.load(cache / f"{name}.npz") as d:
            out[name] = {k: d[k] for k in d.files}
    return out


def features(src: dict[str, np.ndarray], nets: tuple[str, ...], view: str) -> np.ndarray:
    return np.concatenate([src[f"{n}_{view}"].astype(np.float32) for n in nets], axis=1)


def group_split(groups: np.ndarray, share: float, seed: int) -> np.ndarray:
    """True for rows whose group falls in the calibration share (stable per group)."""
    import zlib

    return np.array([(zlib.crc32(f"{seed}:{g}".encode()) % 1000) / 1000 < share for g in groups])


def weights(labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    from training.data import balanced_weights

    return balanced_weights(labels, sources)


def fit_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300, tol=1e-3))
    head.fit(x, y, logisticregression__sample_weight=w)
    return head


def scores(head, data: dict, nets: tuple[str, ...]) -> np.ndarray:
    """Class probabilities (all 7 columns), averaged over the centre and mirror views."""
    classes = head.classes_
    out = np.zeros((len(data["label"]), len(CLASSES)))
    for view in ("c", "f"):
        out[:, classes] += head.predict_proba(features(data, nets, view)) / 2
    return out


def auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(y, s)), 4) if 0 < y.sum() < len(y) else None


def low_cut(mal: np.ndarray, score: np.ndarray, modality: np.ndarray) -> float:
    """The highest cut that keeps ≥ LOW_SENSITIVITY of the malignant lesions of every modality
    above it ("not low")."""
    cuts = []
    for m in np.unique(modality):
        s = np.sort(score[(modality == m) & (mal == 1)])
        if len(s):
            cuts.append(s[int(np.floor((1 - LOW_SENSITIVITY) * len(s)))])
    return float(min(cuts))


def loso(data: dict, nets: tuple[str, ...], held: str, c: float, seed: int = 7, cut_by: str = "modality") -> dict:
    """One held-out source. ``cut_by``: the low cut keeps 0.95 sensitivity in every modality of
    the calibration groups, or (``source``) in every training source: the stricter cut, meant
    to hold on a source it never saw."""
    train = [s for s in SOURCES if s != held]
    rows = {k: np.concatenate([data[s][k] for s in train]) for k in ("label", "malignant", "modality", "group")}
    src = np.concatenate([[s] * len(data[s]["label"]) for s in train])
    calib = group_split(np.char.add(src.astype(str), rows["group"].astype(str)), 0.2, seed)
    fit = ~calib
    x = np.concatenate([np.concatenate([features(data[s], nets, v) for s in train]) for v in ("c", "f")])
    y = np.concatenate([rows["label"]] * 2)
    w = np.concatenate([weights(rows["label"], src)] * 2)
    mask = np.concatenate([fit, fit])
    t0 = time.time()
    head = fit_head(x[mask], y[mask], w[mask], c)
    calib_data = {k: np.concatenate([data[s][k] for s in train])[calib] for k in data[train[0]] if not k.endswith(("_c", "_f"))}
    for n in nets:
        for v in ("c", "f"):
            calib_data[f"{n}_{v}"] = np.concatenate([data[s][f"{n}_{v}"] for s in train])[calib]
    cp = scores(head, calib_data, nets)
    strata = calib_data["modality"] if cut_by == "modality" else src[calib]
    cut = low_cut(calib_data["malignant"], cp[:, MAL_IDX].sum(1), strata)
    hp = scores(head, data[held], nets)
    mal_score = hp[:, MAL_IDX].sum(1)
    known = data[held]["malignant"] >= 0
    mal = data[held]["malignant"][known]
    called_low = mal_score[known] < cut
    mel = data[held]["label"] == MEL
    return {
        "held_out": held,
        "n": int(known.sum()),
        "auc_malignant": auc(mal, mal_score[known]),
        "auc_melanoma": auc(mel.astype(int), hp[:, MEL]) if mel.sum() >= 5 else None,
        "low_cut": round(cut, 4),
        "sensitivity_at_low": round(float((~called_low[mal == 1]).mean()), 4) if (mal == 1).any() else None,
        "benign_called_low": round(float(called_low[mal == 0].mean()), 4) if (mal == 0).any() else None,
        "seconds": round(time.time() - t0, 1),
    }


#: The C values an inner LOSO chooses from (``--inner``).
INNER_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)


def subsample(data: dict, cap: int, seed: int = 11) -> dict:
    """At most ``cap`` images of a source (whole groups kept together where possible): the
    inner folds only rank C values, and the large sources would otherwise dominate their cost."""
    n = len(data["label"])
    if n <= cap:
        return data
    keep = group_split(data["group"], cap / n, seed)
    return {k: v[keep] for k, v in data.items()}


def inner_choice(data: dict, nets: tuple[str, ...], held: str, grid: tuple[float, ...], cap: int) -> tuple[float, dict]:
    """C chosen without the held-out source: LOSO over the other six sources (each capped at
    ``cap`` images), mean protocol AUC per C; the best C wins (ties: the smaller C)."""
    train = [s for s in SOURCES if s != held]
    small = {s: subsample(data[s], cap) for s in train}
    means = {}
    for c in grid:
        per = []
        for inner in train:
            fit = [s for s in train if s != inner]
            x = np.concatenate([np.concatenate([features(small[s], nets, v) for s in fit]) for v in ("c", "f")])
            lab = np.concatenate([small[s]["label"] for s in fit])
            src = np.concatenate([[s] * len(small[s]["label"]) for s in fit])
            head = fit_head(x, np.concatenate([lab] * 2), np.concatenate([weights(lab, src)] * 2), c)
            hp = scores(head, data[inner], nets)  # the inner held-out source whole
            known = data[inner]["malignant"] >= 0
            mel = (data[inner]["label"] == MEL).astype(int)
            m = auc(mel, hp[:, MEL]) if PROTOCOL.get(inner) == "auc_melanoma" and mel.sum() >= 5 else auc(data[inner]["malignant"][known], hp[known][:, MAL_IDX].sum(1))
            if m is not None:
                per.append(m)
        means[c] = round(float(np.mean(per)), 4)
        print(f"  inner {held} C={c}: {means[c]}", file=sys.stderr, flush=True)
    best = max(grid, key=lambda c: (means[c], -c))
    return best, means


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def pad_answers(data_dir: Path) -> dict[str, list[float]]:
    """PAD-UFES-20 answers per image: 1 yes, 0 no, NaN unknown (itch, grew, hurt, changed, bleed, elevation)."""
    out = {}
    with open(data_dir / "pad_ufes20" / "labels.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out[Path(r["image"]).name] = [{"True": 1.0, "False": 0.0}.get(r[k], np.nan) for k in ("itch", "grew", "hurt", "changed", "bleed", "elevation")]
    return out


def fusion(data: dict, nets: tuple[str, ...], data_dir: Path, c: float, folds: int = 5) -> dict:
    """Malignant AUC on PAD-UFES-20 with and without the answers, patient-grouped CV: the image
    head is fitted on every other source plus the PAD training patients of the fold; the fusion
    (logistic on the image logit, each answer as yes/no plus an 'unknown' flag) on the PAD
    training patients' out-of-fold image scores."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    pad = data["pad_ufes20"]
    answers = pad_answers(data_dir)
    a = np.array([answers[name] for name in pad["image"]])
    a_feat = np.concatenate([np.nan_to_num(a, nan=0.0), np.isnan(a).astype(float)], axis=1)
    y, groups = pad["malignant"].astype(int), pad["group"]
    others = [s for s in SOURCES if s != "pad_ufes20"]
    ox = np.concatenate([np.concatenate([features(data[s], nets, v) for s in others]) for v in ("c", "f")])
    olab = np.concatenate([data[s]["label"] for s in others])
    osrc = np.concatenate([[s] * len(data[s]["label"]) for s in others])
    image = np.zeros(len(y))
    fused = np.zeros(len(y))
    for train_idx, test_idx in GroupKFold(folds).split(y, y, groups):
        px = np.concatenate([features(pad, nets, v)[train_idx] for v in ("c", "f")])
        lab = np.concatenate([olab, pad["label"][train_idx]])
        src = np.concatenate([osrc, ["pad_ufes20"] * len(train_idx)])
        w = weights(lab, src)
        x = np.concatenate([ox[: len(olab)], px[: len(train_idx)], ox[len(olab) :], px[len(train_idx) :]])
        head = fit_head(x, np.concatenate([lab, lab]), np.concatenate([w, w]), c)
        sub = {k: v[test_idx] for k, v in pad.items()}
        image[test_idx] = scores(head, sub, nets)[:, MAL_IDX].sum(1)
        # The fusion needs image scores the head did not see: an inner patient-grouped split.
        inner = np.zeros(len(train_idx))
        for itr, ite in GroupKFold(3).split(train_idx, groups=groups[train_idx]):
            tr, te = train_idx[itr], train_idx[ite]
            ipx = np.concatenate([features(pad, nets, v)[tr] for v in ("c", "f")])
            ilab = np.concatenate([olab, pad["label"][tr]])
            iw = weights(ilab, np.concatenate([osrc, ["pad_ufes20"] * len(tr)]))
            ix = np.concatenate([ox[: len(olab)], ipx[: len(tr)], ox[len(olab) :], ipx[len(tr) :]])
            ih = fit_head(ix, np.concatenate([ilab, ilab]), np.concatenate([iw, iw]), c)
            inner[ite] = scores(ih, {k: v[te] for k, v in pad.items()}, nets)[:, MAL_IDX].sum(1)
        fm = LogisticRegression(C=1.0, max_iter=500).fit(np.column_stack([logit(inner), a_feat[train_idx]]), y[train_idx])
        fused[test_idx] = fm.predict_proba(np.column_stack([logit(image[test_idx]), a_feat[test_idx]]))[:, 1]
        print(f"  fusion fold: image {auc(y[test_idx], image[test_idx])} fused {auc(y[test_idx], fused[test_idx])}", file=sys.stderr, flush=True)
    return {"n": int(len(y)), "patients": int(len(np.unique(groups))), "auc_image": auc(y, image), "auc_fused": auc(y, fused), "folds": folds}


#: The metric the recipe LOSO table uses (docs/model/HISTORY.md): melanoma for dermoscopy sources.
PROTOCOL = {"bcn20000": "auc_melanoma", "ham10000": "auc_melanoma", "isic2017": "auc_melanoma", "isic2020": "auc_melanoma"}
BASELINE_NAME = {"sd198_subset": "sd198"}


def report(results: dict, baseline: dict) -> str:
    """Markdown: every head × held-out source next to E4's recipe ("today") in docs/model/loso.json."""
    heads = sorted({k.rsplit("/loso/", 1)[0] for k in results if "/loso/" in k})
    cols = list(SOURCES)
    lines = [
        "| head | " + " | ".join(cols) + " | mean (protocol) | mean malignant AUC | benign called low (mean) | sensitivity at low (min) |",
        "|---|" + "---|" * (len(cols) + 4),
    ]

    def row(name: str, get) -> str:
        vals = [get(s) for s in cols]
        prot = [v[0] for v in vals if v and v[0] is not None]
        mal = [v[1] for v in vals if v and v[1] is not None]
        low = [v[2] for v in vals if v and v[2] is not None]
        sens = [v[3] for v in vals if v and v[3] is not None]
        cells = [f"{v[0]:.3f}" if v and v[0] is not None else "—" for v in vals]
        return f"| {name} | " + " | ".join(cells) + f" | {np.mean(prot):.3f} | {np.mean(mal):.3f} | " + (f"{np.mean(low):.2f}" if low else "—") + " | " + (f"{min(sens):.2f}" if sens else "—") + " |"

    for recipe, label in (("today+all7_lowres", "E4's recipe (its two members' recipes averaged, fine-tuned)"), ("today", "2026.11.27-3's recipe (`today`)")):
        def base(s: str, recipe: str = recipe):
            r = baseline.get(f"{recipe}/loso/{BASELINE_NAME.get(s, s)}")
            return (r.get(PROTOCOL.get(s, "auc_malignant")), r.get("auc_malignant"), None, None) if r else None

        lines.append(row(label, base))
    for h in heads:
        def get(s: str, h: str = h):
            r = results.get(f"{h}/loso/{s}")
            return (r.get(PROTOCOL.get(s, "auc_malignant")), r["auc_malignant"], r["benign_called_low"], r["sensitivity_at_low"]) if r else None

        lines.append(row(f"frozen {h}", get))
    fusions = [(k, v) for k, v in results.items() if k.endswith("/pad_fusion")]
    if fusions:
        lines += ["", "| head | PAD-UFES-20 malignant AUC, image only | with the six answers | images / patients |", "|---|---|---|---|"]
        lines += [f"| {k.rsplit('/pad_fusion', 1)[0]} | {v['auc_image']:.3f} | {v['auc_fused']:.3f} | {v['n']} / {v['patients']} |" for k, v in fusions]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("runs/frozen"))
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SHARED_DIR", "../shared")) / "data")
    ap.add_argument("--out", type=Path, default=Path("docs/model/frozen_loso.json"))
    ap.add_argument("--sets", nargs="*", default=list(FEATURE_SETS))
    ap.add_argument("--c", type=float, default=0.05)
    ap.add_argument("--fusion-set", default="a05+v1+v2", help="the head under the answers fusion ('' to skip it)")
    ap.add_argument("--cut-by", choices=("modality", "source"), default="modality", help="the low cut holds 0.95 sensitivity per modality or per training source")
    ap.add_argument("--inner", action="store_true", help="choose C per held-out source by an inner LOSO over the other six (INNER_GRID) instead of --c")
    ap.add_argument("--inner-cap", type=int, default=1500, help="images per source in the inner folds")
    ap.add_argument("--held", nargs="*", default=list(SOURCES), help="held-out sources to run (two processes can split them)")
    ap.add_argument("--report", action="store_true", help="print the Markdown table of --out next to docs/model/loso.json and stop")
    ap.add_argument("--baseline", type=Path, default=Path("docs/model/loso.json"))
    args = ap.parse_args(argv)
    if args.report:
        print(report(json.loads(args.out.read_text()), json.loads(args.baseline.read_text())))
        return 0
    data = load(args.cache)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in args.sets:
        for held in args.held if args.inner else SOURCES:
            if args.inner:
                key = f"{name}/Cinner/loso/{held}"
                if key in results:
                    continue
                c, means = inner_choice(data, FEATURE_SETS[name], held, INNER_GRID, args.inner_cap)
                results[key] = {**loso(data, FEATURE_SETS[name], held, c), "c": c, "inner_mean_auc": {str(k): v for k, v in means.items()}}
                print(key, results[key], file=sys.stderr, flush=True)
                out = json.loads(args.out.read_text()) if args.out.exists() else {}  # another process may have written its sources
                out[key] = results[key]
                args.out.write_text(json.dumps(out, indent=1))
                continue
            key = f"{name}/C{args.c}" + ("/cut-source" if args.cut_by == "source" else "") + f"/loso/{held}"
            if key in results:
                continue
            results[key] = loso(data, FEATURE_SETS[name], held, args.c, cut_by=args.cut_by)
            print(key, results[key], file=sys.stderr, flush=True)
            args.out.write_text(json.dumps(results, indent=1))
    key = f"{args.fusion_set}/C{args.c}/pad_fusion"
    if args.fusion_set and key not in results:
        results[key] = fusion(data, FEATURE_SETS[args.fusion_set], args.data, args.c)
        print(key, results[key], file=sys.stderr, flush=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
