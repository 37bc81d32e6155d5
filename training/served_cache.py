"""The served model's outputs on every photo serving would judge, cached once per source.

For each source: the shipped ensemble's calibrated probabilities, its malignancy, the skin
score and the gate member's pooled features (the modality head's input), computed exactly as
serving computes them (``inference.Classifier`` on ``training.data.load_image``), with the
split (seed ``SPLIT_SEED``, the one both members were trained with) beside every row, so the
cut-point and modality studies (``training.modality``) can use only photos no member trained on
where that matters. BCN20000's 84 px copies are left out: serving answers them ``too_small``.

Each source lands in ``OUT/<source>.npz`` as soon as it is done, so a killed run resumes.

    python -m training.served_cache --data ../shared/data --out runs/served
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

#: The shipped ensemble's members were both trained on seed 1234's splits (model card).
SPLIT_SEED = 1234
SERVED_SOURCES = ("ham10000", "isic2017", "pad_ufes20", "sd198_subset", "isic_archive_mixed", "isic2020")


def extract(folder: Path, clf, out: Path) -> None:
    from training.data import load_image, read_source, screened_by_serving, split_source

    src = read_source(folder)
    split_of = {id(s): name for name, items in split_source(src, SPLIT_SEED).items() for s in items}
    samples = [s for s in src.samples if screened_by_serving(s)]
    t0 = time.time()

    def one(sample):
        pred = clf.predict_input(clf.prepare(load_image(sample)))
        return pred.probabilities, pred.skin, pred.features

    with ThreadPoolExecutor(2) as pool:  # one interpreter per thread; OpenCV and LiteRT release the GIL
        rows = list(pool.map(one, samples))
    tmp = out.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        probs=np.stack([r[0] for r in rows]).astype(np.float32),
        skin=np.array([r[1] for r in rows], np.float32),
        features=np.stack([r[2] for r in rows]).astype(np.float16),
        label=np.array([s.label for s in samples], np.int8),
        malignant=np.array([-1 if s.malignant is None else s.malignant for s in samples], np.int8),
        modality=np.array([s.modality for s in samples]),
        group=np.array([s.group for s in samples]),
        image=np.array([s.path.name for s in samples]),
        split=np.array([split_of[id(s)] for s in samples]),
    )
    os.replace(tmp, out)
    print(f"{src.name}: {len(samples)} of {len(src.samples)} photos in {time.time() - t0:.0f} s -> {out}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.served_cache", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SHARED_DIR", "../shared")) / "data")
    ap.add_argument("--out", type=Path, default=Path("runs/served"))
    ap.add_argument("--sources", nargs="*", default=list(SERVED_SOURCES))
    args = ap.parse_args(argv)
    from inference.screener import Screener
    from training.frozen import cache_each

    clf = Screener.load(features=True).classifier
    cache_each(args.sources, args.out, lambda name, target: extract(args.data / name, clf, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
