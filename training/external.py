"""``python -m training.external --data DIR... [--model M.tflite]`` — a served model on whole sources.

Scores the model exactly as the bot runs it (``inference.Classifier`` on the TFLite file, the
served preprocessing, no quality gate) on every image of each source, and prints per source
melanoma-vs-rest AUC (dermoscopic images) and malignant-vs-rest AUC. Use it on sources the
model never saw: for the shipped 2026.11.27-3 that is bcn20000, isic2020 and
isic_archive_mixed, which arrived after it was trained.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from inference.labels import CLASSES


def score_source(classifier, folder: str) -> dict:
    from training.data import DERMOSCOPY, load_image, read_source
    from training.evaluate import MAL_IDX, auc

    src = read_source(folder)

    def probs(sample):
        return classifier.predict(load_image(sample)).probabilities

    with ThreadPoolExecutor(2) as pool:
        p = np.array(list(pool.map(probs, src.samples)))
    label = np.array([s.label for s in src.samples])
    flag = np.array([-1 if s.malignant is None else s.malignant for s in src.samples])
    derm = np.array([s.modality == DERMOSCOPY for s in src.samples])
    mel = CLASSES.index("mel")
    has = flag >= 0
    out = {"n": len(label), "auc_malignant": auc(p[:, MAL_IDX].sum(1)[has], flag[has] == 1)}
    if derm.any():
        out["auc_melanoma"] = auc(p[derm, mel], label[derm] == mel)
        out["n_melanoma"] = int((label[derm] == mel).sum())
    return {src.name: out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.external", description=__doc__)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--model", help="a .tflite (default: the shipped one); its model_card.json must sit next to it")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    from inference import Screener

    screener = Screener.load(args.model)
    results = {"model": screener.version}
    for folder in args.data:
        res = score_source(screener.classifier, folder)
        results.update(res)
        print(json.dumps(res), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
