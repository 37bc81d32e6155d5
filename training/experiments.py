"""``python -m training.experiments --data DIR... --weights FILE`` — ablations, per source.

Cheap linear probes on the frozen ImageNet backbone (global-average-pooled features, one centre
view per image, logistic regression), so each preprocessing and sampling choice is measured on
the validation split of every source in minutes instead of a full training run:

  * Shades of Gray colour constancy on / off (the same ``inference.preprocess`` path);
  * class- and source-balanced sample weights on / off;
  * trained on dermoscopy only vs on all sources (does phone-photo AUC need phone photos?);
  * trained on HAM10000 only, colour constancy on / off: the cross-clinic test that colour
    constancy is meant to pass (ISIC 2017 is other clinics' dermoscopy).

Prints a table of validation AUCs (malignant group vs rest) and writes it as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.experiments", description=__doc__)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras
    from sklearn.linear_model import LogisticRegression

    from inference.preprocess import model_input
    from training.augment import center_view
    from training.data import DERMOSCOPY, balanced_weights, load_all, read_source, split_source
    from training.evaluate import MAL_IDX, auc
    from training.features import FeatureExtractor

    train, val = [], []
    for folder in args.data:
        parts = split_source(read_source(folder), args.seed)
        train += parts["train"]
        val += parts["val"]
    base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=args.alpha, include_top=False, weights=args.weights, pooling="avg")
    extractor = FeatureExtractor(base)

    images = {"train": load_all(train), "val": load_all(val)}

    def feats(split: str, colour_constancy: bool) -> np.ndarray:
        prep = partial(model_input, colour_constancy=colour_constancy)
        views = (center_view(img) for img in images[split])
        return extractor.extract(views, len(images[split]), f"{split} sog={colour_constancy}", prep=prep)

    y_tr = np.array([s.label for s in train])
    y_va = np.array([s.label for s in val])
    src_tr = np.array([s.source for s in train])
    src_va = np.array([s.source for s in val])
    subsets = {
        "all": np.ones(len(train), bool),
        "dermoscopy_only": np.array([s.modality == DERMOSCOPY for s in train]),
        "ham10000_only": np.array([s.source == "ham10000" for s in train]),
    }

    results = {}
    for sog in (True, False):
        x_tr, x_va = feats("train", sog), feats("val", sog)
        x_tr, x_va = x_tr.astype(np.float32), x_va.astype(np.float32)
        for balanced in (True, False):
            for subset, m in subsets.items():
                if subset != "all" and not balanced or subset == "dermoscopy_only" and not sog:
                    continue
                w = balanced_weights(y_tr[m], src_tr[m]) if balanced else np.ones(m.sum())
                clf = LogisticRegression(C=0.5, max_iter=600)
                clf.fit(x_tr[m], y_tr[m], sample_weight=w)
                probs = np.zeros((len(y_va), 7))
                probs[:, clf.classes_] = clf.predict_proba(x_va)
                score = probs[:, MAL_IDX].sum(axis=1)
                name = f"sog={'on' if sog else 'off'} balanced={'on' if balanced else 'off'} train={subset}"
                results[name] = {src: auc(score[src_va == src], np.isin(y_va[src_va == src], MAL_IDX)) for src in sorted(set(src_va))}
                print(f"{name:50s} " + "  ".join(f"{k} {v:.3f}" for k, v in results[name].items()), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
