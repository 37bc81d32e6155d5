"""``python -m training.cuts RUN_DIR [--install]`` — re-choose a trained run's risk cut points.

For a run whose cut points were chosen by an older rule: scores the run's validation and test
images (``splits.csv``) with the exported model exactly as serving does
(``inference.Classifier``), chooses ``low`` / ``high`` with ``training.evaluate.risk_cuts`` (the
same function training uses), and rewrites the card's thresholds and test metrics, ``report.json``
and the plots.  The skin cut is left alone (``training.gate`` owns it).  ``--install`` copies the
model and card into ``inference/model``.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.cuts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a training output folder (model.tflite, model_card.json, report.json, splits.csv)")
    p.add_argument("--install", action="store_true", help="copy the model and updated card into inference/model")
    args = p.parse_args(argv)
    for name in ("model_card.json", "report.json", "splits.csv"):
        if not (args.run / name).exists():
            p.error(f"{args.run} has no {name}")

    from inference.screener import Screener
    from training import augment, evaluate
    from training.card import install
    from training.data import load_image, read_splits

    card_path, report_path = args.run / "model_card.json", args.run / "report.json"
    card, report = json.loads(card_path.read_text()), json.loads(report_path.read_text())
    clf = Screener.load(card=args.run / "model_card.json").classifier  # every member of an ensemble
    splits = read_splits(args.run / "splits.csv")

    def views(sample, n: int) -> np.ndarray:
        """Calibrated probabilities of the first ``n`` of identity + three flips, (n, classes)."""
        x = clf.prepare(load_image(sample))
        return np.stack([clf.predict_input(np.ascontiguousarray(v)).probabilities for v in augment.flips(x)[:n]])

    # Cut points need only the identity view; test is also reported with 4-flip TTA, and so is
    # validation when the report has no validation AUCs of its own (an ensemble's: training.ensemble).
    val_views = 1 if report.get("val_auc_needs_doctor") else 4
    with ThreadPoolExecutor(2) as pool:  # one interpreter per thread; OpenCV and LiteRT release the GIL
        probs = {name: np.stack(list(pool.map(partial(views, n=n), splits[name]))) for name, n in (("val", val_views), ("test", 4))}

    val = splits["val"]
    val_pos = np.isin([s.label for s in val], evaluate.MAL_IDX)
    val_score = evaluate.malignancy(probs["val"][:, 0])
    sources = np.array([s.source for s in val])
    if val_views > 1:
        by_source = {src: sources == src for src in sorted(set(sources.tolist()))}
        report["val_auc_needs_doctor"] = {src: evaluate.auc(val_score[m], val_pos[m]) for src, m in by_source.items()}
        report["val_tta_auc_needs_doctor"] = {src: evaluate.auc(evaluate.malignancy(probs["val"][m].mean(axis=1)), val_pos[m]) for src, m in by_source.items()}
    old = {k: card["thresholds"][k] for k in ("low", "high")}
    cuts = {**evaluate.served_risk_cuts(val_score, val), "skin": card["thresholds"]["skin"]}

    report["cuts"] = cuts
    report["test"], plot_data = evaluate.report_by_source(probs["test"][:, 0], splits["test"], cuts)
    report["test_tta"], _ = evaluate.report_by_source(probs["test"].mean(axis=1), splits["test"], cuts)
    report["plots"] = evaluate.plots(args.run, plot_data)
    card["thresholds"].update(low=round(cuts["low"], 4), high=round(cuts["high"], 4), chosen_on=evaluate.CUTS_RULE)
    card["metrics"].update(test=report["test"], test_tta=report["test_tta"])
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")

    # The served model must see validation as training did: its AUCs are printed next to the report's.
    print(f"cut points: low {old['low']} → {card['thresholds']['low']}, high {old['high']} → {card['thresholds']['high']}")
    for src in sorted(set(sources.tolist())):
        m = sources == src
        served = evaluate.auc(val_score[m], val_pos[m])
        t = report["test"][src]
        print(
            f"{src:12s} val AUC served {served} (report {report.get('val_auc_needs_doctor', {}).get(src)})  "
            f"test sens@low {t['at_low_cut']['sensitivity']} spec@low {t['at_low_cut']['specificity']} spec@high {t['at_high_cut']['specificity']}"
        )
    if args.install:
        print(f"installed into {install(args.run)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
