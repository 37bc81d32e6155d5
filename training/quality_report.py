"""``python -m training.quality_report --data DIR...`` — how the quality gate treats real photos.

Prints, per source, the share of real lesion photos the gate accepts, the reasons it gives for
the rest, and the share of degraded copies (blur, darkness, overexposure) it rejects.  The
thresholds in ``inference.quality.Thresholds`` were set from these numbers.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import cv2
import numpy as np

from inference.quality import check
from training.data import load_image, read_source

DEGRADE = {
    "blur (σ=6 at 1280 px)": lambda im: cv2.GaussianBlur(cv2.resize(im, (1280, 960)), (0, 0), 6),
    "dark (×0.12)": lambda im: (im * 0.12).astype(np.uint8),
    "overexposed (×2.6+60)": lambda im: np.clip(im.astype(int) * 2.6 + 60, 0, 255).astype(np.uint8),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.quality_report", description=__doc__)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--per-source", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    degraded: dict[str, list[bool]] = {k: [] for k in DEGRADE}
    for folder in args.data:
        src = read_source(folder)
        idx = rng.permutation(len(src.samples))[: args.per_source]
        reasons: Counter[str] = Counter()
        ok = 0
        for i in idx:
            img = load_image(src.samples[i], short_side=10_000)
            r = check(img)
            ok += r.ok
            reasons.update(r.reasons)
            if len(degraded["dark (×0.12)"]) < 40 * len(args.data):
                for name, fn in DEGRADE.items():
                    degraded[name].append(not check(fn(img)).ok)
        print(f"{src.name:12s} accepted {ok / len(idx):6.1%} of {len(idx)}  rejected for: {dict(reasons)}")
    for name, rejected in degraded.items():
        print(f"degraded: {name:24s} rejected {np.mean(rejected):6.1%} of {len(rejected)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
