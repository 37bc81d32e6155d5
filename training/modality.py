"""Modality at serving time and cut points per modality, judged by leave-one-source-out.

Reads ``training.served_cache`` (the shipped ensemble's outputs and its gate member's pooled
features on every photo serving judges) and writes one JSON of numbers; ``--install`` writes the
modality head and the per-modality cuts into the shipped card.

The rule, fixed before any number was seen (README, "Cut points per kind of photo"):

- **Modality head**: standardised pooled features → logistic regression (C = ``HEAD_C``),
  rows weighted so every (source, modality) pair counts the same. A photo's modality is the
  head's answer when its probability is ≥ ``CONFIDENT``; otherwise it is *unsure*, and the photo
  gets the more cautious cut of the two (the lower ``low`` and the lower ``high``).
- **Photos that choose and judge cuts**: only those no member trained on (validation and test
  splits of seed 1234). Positives for ``low`` "need a doctor" (melanoma, BCC, actinic keratosis
  / SCC); benign means nevus, keratosis, other benign lesion.
- **low per modality**: the more cautious of (a) the largest cut whose one-sided 95 %
  Clopper–Pearson lower bound of sensitivity over that modality's positives is ≥ 0.95 and
  (b) 0.95 sensitivity on each of its sources with ≥ ``MIN_SOURCE_POSITIVES`` positives.
- **high**: dermoscopy keeps today's rule (specificity ≥ 0.90 on its benign lesions); phone and
  clinical photos: specificity ≥ ``CLINICAL_HIGH_SPECIFICITY`` on benign lesions, reported with
  the sensitivity of malignant lesions at high (must stay ≥ 0.80).
- **Judged by leave-one-source-out**: for every held-out source, the head and the cuts are
  chosen without it, its photos are routed by the head, and the report gives its sensitivity at
  low and the share of benign lesions called low and high, beside today's single cuts. It ships
  only if the pooled held-out sensitivity at low is ≥ 0.95 per modality, ≥ 0.90 on every held-out
  source with ≥ 30 positives, the share of benign phone photos called low at least doubles, the
  dermoscopy share does not fall, and the share of benign phone photos called high falls.

Candidate 2, written after candidate 1 failed and before its own run: candidate 1's phone cut
collapsed whenever a fold left fewer than 59 phone positives (the Clopper–Pearson bound then
allows no miss, and one outlier photo, 0.0002, set the cut), and its dermoscopy cut fell below
today's. So: the phone/clinical ``low`` is the largest cut keeping ``CLINICAL_LOW_SENSITIVITY``
(0.97, two points of margin over the promise) of that modality's positives, pooled, and 0.95 on
each of its sources with ≥ 30 positives; dermoscopy, and every photo the head is unsure of, keep
today's card cuts; ``high`` as candidate 1. The head's C is the one with the best mean
leave-one-source-out modality accuracy among 1e-4, 1e-3, 1e-2, 1e-1 (1e-4: 0.875, reported in
the JSON). The same checks decide. ``--oracle`` also scores each candidate with the photos' true
modality instead of the head's, to show what a reliable modality signal would be worth (not a
ship rule: serving has no such signal).

    python -m training.modality --cache runs/served --out docs/model/modality.json [--install]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.labels import CLASSES, MALIGNANT
from inference.risk import RiskThresholds, risk_level
from training.evaluate import _cut_low_95, cut_high, cut_low, misses_allowed

MODALITIES = ("dermoscopy", "clinical")
UNSURE = "unsure"


@dataclass(frozen=True)
class ModalityHead:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    confident: float  # a probability at least this high decides; below it the photo is "unsure"

    def probability_clinical(self, features: np.ndarray) -> np.ndarray | float:
        z = ((features - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def route(self, p_clinical: float) -> str:
        if p_clinical >= self.confident:
            return "clinical"
        if p_clinical <= 1 - self.confident:
            return "dermoscopy"
        return UNSURE

    def save(self, path: str | Path) -> None:
        np.savez(
            path,
            mean=self.mean.astype(np.float32),
            scale=self.scale.astype(np.float32),
            coef=self.coef.astype(np.float32),
            intercept=np.float32(self.intercept),
            confident=np.float32(self.confident),
        )

    @classmethod
    def load(cls, path: str | Path) -> ModalityHead:
        with np.load(path) as d:
            head = cls(d["mean"], d["scale"], d["coef"], float(d["intercept"]), float(d["confident"]))
        if not (head.mean.shape == head.scale.shape == head.coef.shape and head.mean.ndim == 1):
            raise ValueError(f"{path}: modality head arrays do not agree in shape")
        if not 0.5 < head.confident < 1:
            raise ValueError(f"{path}: confidence {head.confident} must lie in (0.5, 1)")
        return head


HEAD_C = 0.01
CLINICAL_LOW_SENSITIVITY = 0.97


@dataclass(frozen=True)
class Candidate:
    head_c: float
    clinical_low: str  # "cp": candidate 1's bound; "point": CLINICAL_LOW_SENSITIVITY pooled
    dermoscopy: str  # "chosen": its own cuts; "today": the card's


CANDIDATES = {1: Candidate(0.01, "cp", "chosen"), 2: Candidate(1e-4, "point", "today")}
CONFIDENT = 0.9
MIN_SOURCE_POSITIVES = 30
CLINICAL_HIGH_SPECIFICITY = 0.80
DERMOSCOPY_HIGH_SPECIFICITY = 0.90
MAL_IDX = [CLASSES.index(c) for c in MALIGNANT]
BENIGN_IDX = [CLASSES.index(c) for c in ("nv", "bkl", "other")]
SOURCES = ("ham10000", "isic2017", "pad_ufes20", "sd198_subset", "isic_archive_mixed", "isic2020")


def load(cache: Path) -> dict[str, np.ndarray]:
    """Every cached source as one table (a ``source`` column added)."""
    parts = []
    for name in SOURCES:
        with np.load(cache / f"{name}.npz") as d:
            part = {k: d[k] for k in d.files}
        part["source"] = np.full(len(part["label"]), name)
        parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def fit_head(x: np.ndarray, modality: np.ndarray, source: np.ndarray, c: float | None = None) -> ModalityHead:
    from sklearn.linear_model import LogisticRegression

    x = x.astype(np.float32)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    y = (modality == "clinical").astype(int)
    keys = np.char.add(source.astype(str), modality.astype(str))
    _, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    w = (len(keys) / (len(counts) * counts))[inv]
    lr = LogisticRegression(C=HEAD_C if c is None else c, max_iter=2000)
    lr.fit((x - mean) / scale, y, sample_weight=w)
    return ModalityHead(mean, scale, lr.coef_[0].astype(np.float32), float(lr.intercept_[0]), CONFIDENT)


def low_cut(score: np.ndarray, positive: np.ndarray, source: np.ndarray, pooled: str = "cp") -> float:
    if pooled == "cp":
        lows = [cut_low(score, positive, misses_allowed(int(positive.sum())))]
    else:
        lows = [cut_low(score, positive, int(np.floor((1 - CLINICAL_LOW_SENSITIVITY) * positive.sum())))]
    for src in sorted(set(source.tolist())):
        m = source == src
        if positive[m].sum() >= MIN_SOURCE_POSITIVES:
            lows.append(_cut_low_95(score[m], positive[m]))
    return min(lows)


def choose_cuts(t: dict[str, np.ndarray], rows: np.ndarray, cand: Candidate = CANDIDATES[1], today: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    """Per modality ``low`` / ``high`` from ``rows`` (held-out-from-training photos only)."""
    score = t["probs"][:, MAL_IDX].sum(axis=1)
    positive = np.isin(t["label"], MAL_IDX)
    benign = np.isin(t["label"], BENIGN_IDX)
    cuts = {}
    for mod in MODALITIES:
        m = rows & (t["modality"] == mod)
        spec = CLINICAL_HIGH_SPECIFICITY if mod == "clinical" else DERMOSCOPY_HIGH_SPECIFICITY
        lesion = m & (positive | benign)
        if mod == "dermoscopy" and cand.dermoscopy == "today":
            cuts[mod] = {"low": today["low"], "high": today["high"]}
            continue
        low = low_cut(score[m], positive[m], t["source"][m], "cp" if mod == "dermoscopy" else cand.clinical_low)
        high = cut_high(score[lesion], positive[lesion], spec)
        cuts[mod] = {"low": round(low, 4), "high": round(max(high, low + 1e-3), 4)}
    return cuts


def levels(t: dict[str, np.ndarray], rows: np.ndarray, routed: np.ndarray, cuts: dict[str, dict[str, float]]) -> np.ndarray:
    """Risk level per row, each row cut by its routed modality (``unsure``: the cautious pair)."""
    out = np.empty(len(routed), dtype=object)
    for i, (p, mod) in enumerate(zip(t["probs"][rows], routed, strict=True)):
        c = cautious(cuts) if mod == "unsure" else cuts[mod]
        out[i] = risk_level(p, RiskThresholds(c["low"], c["high"]))
    return out


def cautious(cuts: dict[str, dict[str, float]]) -> dict[str, float]:
    return {"low": min(c["low"] for c in cuts.values()), "high": min(c["high"] for c in cuts.values())}


def triage(t: dict[str, np.ndarray], rows: np.ndarray, lv: np.ndarray) -> dict:
    label = t["label"][rows]
    pos, ben = np.isin(label, MAL_IDX), np.isin(label, BENIGN_IDX)
    mal = t["malignant"][rows] == 1

    def share(mask: np.ndarray, level: str, negate: bool = False) -> float | None:
        if not mask.any():
            return None
        hit = lv[mask] == level
        return round(float((~hit if negate else hit).mean()), 3)

    return {
        "n": int(rows.sum()),
        "positives": int(pos.sum()),
        "benign": int(ben.sum()),
        "sensitivity_at_low": share(pos, "low", negate=True),
        "positives_called_low": int((lv[pos] == "low").sum()),
        "benign_called_low": share(ben, "low"),
        "benign_called_high": share(ben, "high"),
        "malignant_called_high": share(mal, "high"),
    }


def loso(t: dict[str, np.ndarray], today: dict[str, float], cand: Candidate = CANDIDATES[1], oracle: bool = False) -> dict:
    held_out = np.isin(t["split"], ("val", "test"))
    out: dict = {"per_source": {}, "modality_accuracy": {}}
    routed_all = np.empty(len(t["label"]), dtype=object)
    for src in SOURCES:
        inside = t["source"] == src
        head = fit_head(t["features"][~inside], t["modality"][~inside], t["source"][~inside], cand.head_c)
        cuts = choose_cuts(t, held_out & ~inside, cand, today)
        rows = inside & held_out
        p = head.probability_clinical(t["features"][inside].astype(np.float32))
        truth = t["modality"][inside]
        routed = truth.astype(object) if oracle else np.array([head.route(v) for v in p], dtype=object)
        out["modality_accuracy"][src] = {
            "n": int(inside.sum()),
            "accuracy": round(float(np.mean(np.where(p >= 0.5, "clinical", "dermoscopy") == truth)), 3),
            "confident_and_right": round(float(np.mean(routed == truth)), 3),
            "unsure": round(float(np.mean(routed == "unsure")), 3),
            "confident_and_wrong": round(float(np.mean((routed != truth) & (routed != "unsure"))), 3),
        }
        routed_all[inside] = routed
        sub_routed = routed_all[rows]
        fixed = np.full(rows.sum(), "fixed", dtype=object)
        out["per_source"][src] = {
            "cuts": cuts,
            "today": triage(t, rows, levels(t, rows, fixed, {"fixed": today})),
            "new": triage(t, rows, levels(t, rows, sub_routed, cuts)),
        }
        # the archive mix has both modalities: one line per modality too
        for mod in MODALITIES:
            mrows = rows & (t["modality"] == mod)
            if src == "isic_archive_mixed" and mrows.any():
                out["per_source"][f"{src}:{mod}"] = {
                    "today": triage(t, mrows, levels(t, mrows, np.full(mrows.sum(), "fixed", dtype=object), {"fixed": today})),
                    "new": triage(t, mrows, levels(t, mrows, routed_all[mrows], cuts)),
                }
    out["pooled"] = {}
    for mod in MODALITIES:
        rows = held_out & (t["modality"] == mod)
        fixed = np.full(rows.sum(), "fixed", dtype=object)
        # each row with the cuts chosen without its own source
        new_lv = np.empty(rows.sum(), dtype=object)
        idx = np.flatnonzero(rows)
        for src in SOURCES:
            sel = t["source"][idx] == src
            if sel.any():
                cuts = out["per_source"][src]["cuts"]
                sub = np.zeros(len(rows), bool)
                sub[idx[sel]] = True
                new_lv[sel] = levels(t, sub, routed_all[sub], cuts)
        out["pooled"][mod] = {"today": triage(t, rows, levels(t, rows, fixed, {"fixed": today})), "new": triage(t, rows, new_lv)}
    return out


def verdict(r: dict) -> dict:
    checks = {}
    for mod in MODALITIES:
        checks[f"pooled sensitivity at low ≥ 0.95 ({mod})"] = r["pooled"][mod]["new"]["sensitivity_at_low"] >= 0.95
    for src, v in r["per_source"].items():
        if ":" not in src and v["new"]["positives"] >= 30:
            checks[f"{src}: sensitivity at low ≥ 0.90"] = v["new"]["sensitivity_at_low"] >= 0.90
    c, d = r["pooled"]["clinical"], r["pooled"]["dermoscopy"]
    checks["phone/clinical benign called low at least doubles"] = c["new"]["benign_called_low"] >= 2 * c["today"]["benign_called_low"]
    checks["dermoscopy benign called low does not fall"] = d["new"]["benign_called_low"] >= d["today"]["benign_called_low"]
    checks["phone/clinical benign called high falls"] = c["new"]["benign_called_high"] < c["today"]["benign_called_high"]
    return {"checks": checks, "ships": all(checks.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.modality", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("runs/served"))
    ap.add_argument("--out", type=Path, default=Path("docs/model/modality.json"))
    ap.add_argument("--card", type=Path, default=Path("inference/model/model_card.json"))
    ap.add_argument("--install", action="store_true", help="write the head and the cuts into --card (only if the rule passes)")
    ap.add_argument("--candidate", type=int, choices=sorted(CANDIDATES), default=max(CANDIDATES))
    ap.add_argument("--oracle", action="store_true", help="route by the true modality (what a reliable signal would be worth; never a ship rule)")
    args = ap.parse_args(argv)
    cand = CANDIDATES[args.candidate]
    t = load(args.cache)
    card = json.loads(args.card.read_text(encoding="utf-8"))
    today = {"low": float(card["thresholds"]["low"]), "high": float(card["thresholds"]["high"])}
    report = {"rule": __doc__.split("The rule, fixed")[1].split("python -m")[0].strip(), "today": today, "candidate": args.candidate, "oracle": args.oracle}
    report["loso"] = loso(t, today, cand, args.oracle)
    report["verdict"] = verdict(report["loso"])
    held_out = np.isin(t["split"], ("val", "test"))
    final_cuts = choose_cuts(t, held_out, cand, today)
    report["final_cuts"] = final_cuts
    key = f"candidate {args.candidate}" + (" (oracle modality)" if args.oracle else "")
    saved = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    if "loso" in saved:  # the file from before candidates were keyed: candidate 1
        saved = {"candidate 1": saved}
    saved[key] = report
    args.out.write_text(json.dumps(saved, indent=1, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
    for src, v in report["loso"]["modality_accuracy"].items():
        print(f"modality {src:22s} acc {v['accuracy']}  confident-right {v['confident_and_right']}  unsure {v['unsure']}  confident-wrong {v['confident_and_wrong']}")
    for src, v in {**report["loso"]["per_source"], **{f"POOLED {k}": v for k, v in report["loso"]["pooled"].items()}}.items():
        a, b = v["today"], v["new"]
        print(
            f"{src:32s} pos {a['positives']:4d} ben {a['benign']:4d} | sens@low {a['sensitivity_at_low']} -> {b['sensitivity_at_low']} "
            f"| benign low {a['benign_called_low']} -> {b['benign_called_low']} | benign high {a['benign_called_high']} -> {b['benign_called_high']} "
            f"| malignant high {a['malignant_called_high']} -> {b['malignant_called_high']}  {v.get('cuts', '')}"
        )
    for k, ok in report["verdict"]["checks"].items():
        print(("PASS " if ok else "FAIL ") + k)
    print("final cuts (all sources):", final_cuts)
    if args.install:
        if not report["verdict"]["ships"]:
            print("not installed: the fixed rule failed", file=sys.stderr)
            return 1
        head = fit_head(t["features"], t["modality"], t["source"], cand.head_c)
        head.save(args.card.with_name("modality_head.npz"))
        card["thresholds"]["by_modality"] = final_cuts
        card["modality"] = {"head": "modality_head.npz", "confident": CONFIDENT, "member": card["members"][0]["version"] if card.get("members") else card["version"], "rule": report["rule"]}
        args.card.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"installed into {args.card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
