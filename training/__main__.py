"""Command line: ``python -m training train --data DIR... --weights FILE --out DIR``."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train, calibrate, evaluate and export a model")
    t.add_argument("--data", nargs="+", required=True, help="source folders (each with labels.csv and images/)")
    t.add_argument("--weights", default=os.environ.get("BACKBONE_WEIGHTS"), help="ImageNet MobileNetV2 no-top .h5 (env BACKBONE_WEIGHTS)")
    t.add_argument("--negatives", nargs="*", default=[], help="folders of non-skin photos for the 'is this skin' head")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--alpha", type=float, default=0.5, help="MobileNetV2 width (must match --weights)")
    t.add_argument("--seed", type=int, default=1234, help="augmentation and initialisation; also the splits unless --split-seed is given")
    t.add_argument("--split-seed", type=int, default=None, help="the splits' seed, to train another seed on the same splits (compare recipes over seeds)")
    t.add_argument("--epochs-head", type=int, default=1)
    t.add_argument("--epochs-finetune", type=int, default=7)
    t.add_argument("--cut", default=None, help="last frozen layer; its output is cached and everything after it is fine-tuned (default: training.model.CUT_LAYER)")
    t.add_argument("--views-scale", type=float, default=1.0, help="multiply augmented views per image (smaller = faster)")
    t.add_argument("--views", nargs="*", default=[], metavar="SOURCE=N", help="augmented views per image for a source, e.g. isic2017=10 (defaults: training.train.DEFAULT_VIEWS)")
    t.add_argument("--synthetic-documents", type=int, default=1500)
    t.add_argument("--limit-per-source", type=int, default=None, help="only a few images per source (smoke runs)")
    t.add_argument("--version", default="", help="model version string for the card")
    t.add_argument("--install", action="store_true", help="copy the model and card into inference/model")
    t.add_argument("--colour-constancy", action="store_true", help="apply Shades of Gray (measured worse here; recorded in the card)")
    t.add_argument("--negative-scope", type=float, default=0.0, help="share of non-skin views seen through a dermoscope-like circular frame")
    t.add_argument("--lowres-views", type=int, default=0, help="extra 64–128 px thumbnail views per training image (won LOSO: docs/model/MODEL_CARD.md)")
    args = parser.parse_args(argv)

    views = {}
    for item in args.views:
        name, _, n = item.partition("=")
        if not name or not n.isdigit() or int(n) < 1:
            parser.error(f"--views expects SOURCE=N with N ≥ 1, got {item!r}")
        views[name] = int(n)
    if args.weights and not os.path.exists(args.weights):
        parser.error(f"--weights {args.weights} does not exist")
    for d in args.data:
        if not os.path.exists(os.path.join(d, "labels.csv")):
            parser.error(f"{d} has no labels.csv")
    if views:  # a typo would silently train with the default views; say so before TensorFlow loads
        from training.data import read_source

        names = {read_source(d).name for d in args.data}
        if set(views) - names:
            parser.error(f"--views names {sorted(set(views) - names)}, but the sources in --data are {sorted(names)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.model import CUT_LAYER
    from training.train import Config, train

    cfg = Config(
        data=args.data,
        weights=args.weights,
        out=args.out,
        negatives=args.negatives,
        seed=args.seed,
        split_seed=args.split_seed,
        alpha=args.alpha,
        epochs_head=args.epochs_head,
        epochs_finetune=args.epochs_finetune,
        cut=args.cut or CUT_LAYER,
        views_scale=args.views_scale,
        views=views,
        synthetic_documents=args.synthetic_documents,
        limit_per_source=args.limit_per_source,
        install=args.install,
        version=args.version,
        colour_constancy=args.colour_constancy,
        lowres_views=args.lowres_views,
        negative_scope=args.negative_scope,
    )
    report = train(cfg)
    for src, m in report["test"].items():
        print(f"{src:12s} AUC malignant {m['auc_malignant']}  AUC needs-doctor {m['auc_needs_doctor']}  sens@low {m['at_low_cut']['sensitivity']}  spec@high {m['at_high_cut']['specificity']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
