"""The user's answers on top of the served image score, on PAD-UFES-20's held-out patients (Model v3).

The served model (``inference.Screener``) scores the PAD-UFES-20 photos of the validation and
test splits (seed ``--split-seed``, the splits every member of the shipped model was trained
without). A small logistic model on the image logit and the six answers (itch, grew, hurt,
changed, bleed, elevation: yes / no, plus an "unknown" flag each) is fitted on one split and
scored on the other, both ways; malignant AUC with and without the answers is reported on the
pooled out-of-split scores, with a patient-level bootstrap interval of the difference, and the
share of benign lesions under the image-only low cut that the fused score would also keep low.

It also scores the rule the bot serves (``bot.advice.with_answers``: a ticked sign means "see a
doctor", "none of these" keeps the photo's level): how many photos had no sign ticked, how many
of those were malignant, and the sensitivity and benign-called-low share of the photo alone and
of photo + answers under that rule, on these held-out patients and on all PAD photos.

    python -m training.answers --data ../shared/data --out docs/model/answers.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from training.data import load_image, read_source, split_source
from training.frozen_loso import auc, logit, pad_answers

ANSWERS = ("itch", "grew", "hurt", "changed", "bleed", "elevation")


def served_rule(parts: list[dict]) -> dict:
    """The bot's rule on these photos: low stays low only with no sign ticked."""
    level = np.concatenate([p["level"] for p in parts])
    signs = np.concatenate([p["signs"] for p in parts])
    y = np.concatenate([p["y"] for p in parts]).astype(bool)
    low_image = level == "low"
    low_answers = low_image & ~signs

    def rates(low: np.ndarray) -> dict:
        return {"sensitivity": round(float((~low[y]).mean()), 3), "benign_called_low": round(float(low[~y].mean()), 3)}

    return {
        "photos": int(len(y)), "malignant": int(y.sum()), "no_sign_ticked": int((~signs).sum()), "no_sign_ticked_malignant": int((~signs & y).sum()),
        "no_sign_malignant_levels": {lv: int(((level == lv) & ~signs & y).sum()) for lv in ("low", "moderate", "high")},
        "image_only": rates(low_image), "image_and_answers": rates(low_answers),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SHARED_DIR", "../shared")) / "data")
    ap.add_argument("--split-seed", type=int, default=1234)
    ap.add_argument("--out", type=Path, default=Path("docs/model/answers.json"))
    ap.add_argument("--bootstrap", type=int, default=2000)
    args = ap.parse_args(argv)

    from sklearn.linear_model import LogisticRegression

    from inference import Screener
    from inference.labels import CLASSES, MALIGNANT
    from inference.risk import risk_level

    screener = Screener.load()
    splits = split_source(read_source(args.data / "pad_ufes20"), args.split_seed)
    answers = pad_answers(args.data)
    mal_idx = [CLASSES.index(c) for c in MALIGNANT]
    rows, served = {}, {}
    for part in ("train", "val", "test"):
        samples = splits[part]
        probs = [screener.classifier.predict(load_image(s)).probabilities for s in samples]
        score = np.array([float(p[mal_idx].sum()) for p in probs])
        a = np.array([answers[s.path.name] for s in samples])
        served[part] = {"level": np.array([risk_level(p, screener.card.risk) for p in probs]), "signs": np.nansum(a, axis=1) > 0, "y": np.array([s.malignant for s in samples])}
        if part == "train":  # the served model was trained on these patients: only the served rule's counts use them
            continue
        rows[part] = {
            "score": score,
            "answers": np.concatenate([np.nan_to_num(a, nan=0.0), np.isnan(a).astype(float)], axis=1),
            "y": np.array([s.malignant for s in samples]),
            "group": np.array([s.group for s in samples]),
        }
    fused = {}
    for fit, test in (("val", "test"), ("test", "val")):
        f, te = rows[fit], rows[test]
        model = LogisticRegression(C=1.0, max_iter=1000).fit(np.column_stack([logit(f["score"]), f["answers"]]), f["y"])
        fused[test] = model.predict_proba(np.column_stack([logit(te["score"]), te["answers"]]))[:, 1]
    y = np.concatenate([rows[p]["y"] for p in ("val", "test")])
    image = np.concatenate([rows[p]["score"] for p in ("val", "test")])
    both = np.concatenate([fused[p] for p in ("val", "test")])
    groups = np.concatenate([rows[p]["group"] for p in ("val", "test")])
    rng = np.random.default_rng(0)
    patients = np.unique(groups)
    index = {g: np.flatnonzero(groups == g) for g in patients}
    diffs = []
    for _ in range(args.bootstrap):
        pick = np.concatenate([index[g] for g in rng.choice(patients, len(patients))])
        a, b = auc(y[pick], image[pick]), auc(y[pick], both[pick])
        if a is not None and b is not None:
            diffs.append(b - a)
    # Triage at the same sensitivity: the image-only cut that keeps 95 % of the malignant lesions
    # above it, and the fused cut that keeps the same number.
    def low_share(score: np.ndarray) -> tuple[float, float]:
        s = np.sort(score[y == 1])
        cut = s[int(np.floor(0.05 * len(s)))]
        return float((score[y == 1] >= cut).mean()), float((score[y == 0] < cut).mean())

    sens_i, low_i = low_share(image)
    sens_f, low_f = low_share(both)
    result = {
        "model": screener.version,
        "n": int(len(y)),
        "malignant": int(y.sum()),
        "patients": int(len(patients)),
        "auc_image": auc(y, image),
        "auc_fused": auc(y, both),
        "auc_gain_ci95": [round(float(np.percentile(diffs, 2.5)), 4), round(float(np.percentile(diffs, 97.5)), 4)],
        "at_95_sensitivity": {"image": {"sensitivity": round(sens_i, 3), "benign_called_low": round(low_i, 3)}, "fused": {"sensitivity": round(sens_f, 3), "benign_called_low": round(low_f, 3)}},
        "served_rule": {name: served_rule([served[p] for p in parts]) for name, parts in (("held_out", ("val", "test")), ("all_pad", ("train", "val", "test")))},
        "answers": list(ANSWERS),
        "protocol": f"PAD-UFES-20 val and test splits (split seed {args.split_seed}), fit on one and scored on the other, both ways; patient bootstrap ({args.bootstrap})",
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
