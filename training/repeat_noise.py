"""``python -m training.repeat_noise --data DIR... [--model M.tflite] [--record]`` — how much the
served model's malignancy moves between two photos of the same, unchanged lesion.

The bot compares a spot's new photo with its previous one: a rise in malignancy counts as
a change only if it is larger than this noise. For each validation lesion (the group-aware split
every training uses, seed 1234) it makes ``--views`` phone-style photos — crop, scale, light and
white balance, blur, JPEG — scores them as the bot does (the TFLite classifier), and takes every
ordered pair (earlier, later) of views. ``malignancy_rise_p95`` is the 95th percentile of
(later − earlier): an unchanged spot rises by more than that in 5 % of repeat photos.
``--record`` writes the figures into the model card as ``repeat_noise`` (the bot reads it there).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

#: Seed of the splits every training uses (``python -m training train --seed``).
SPLIT_SEED = 1234


def phone_view(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same lesion as another phone photo of it would show it."""
    h, w = rgb.shape[:2]
    frac = np.sqrt(rng.uniform(0.7, 1.0))  # 70–100 % of the area, lesion kept near the centre
    ch, cw = int(h * frac), int(w * frac)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    img = rgb[y : y + ch, x : x + cw].astype(np.float32)
    short = rng.uniform(224, 600)
    scale = short / min(ch, cw)
    img = cv2.resize(img, (max(8, int(cw * scale)), max(8, int(ch * scale))), interpolation=cv2.INTER_AREA)
    img = img * rng.uniform(0.85, 1.15) * rng.uniform(0.93, 1.07, size=3)  # exposure, white balance
    img = (img - img.mean()) * rng.uniform(0.9, 1.1) + img.mean()  # contrast
    sigma = rng.uniform(0.0, 1.2)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = np.clip(img, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
    return cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def measure(screener, folders: list[str], per_source: int, views: int, seed: int) -> dict:
    from inference.risk import malignancy, risk_level
    from training.data import load_image, read_source, split_source

    rng = np.random.default_rng(seed)
    rises, flips, per_source_p95 = [], [], {}
    for folder in folders:
        src = read_source(folder)
        val = split_source(src, SPLIT_SEED)["val"]
        picked = [val[i] for i in rng.permutation(len(val))[:per_source]]
        source_rises = []
        for sample in picked:
            rgb = load_image(sample)
            probs = [screener.classifier.predict(phone_view(rgb, rng)).probabilities for _ in range(views)]
            mal = np.array([malignancy(p) for p in probs])
            levels = [risk_level(p, screener.card.risk) for p in probs]
            diff = mal[None, :] - mal[:, None]  # later − earlier, every ordered pair
            off = ~np.eye(views, dtype=bool)
            source_rises.extend(diff[off].tolist())
            flips.extend(levels[i] != levels[j] for i in range(views) for j in range(views) if i != j)
        per_source_p95[src.name] = round(float(np.percentile(source_rises, 95)), 4)
        rises.extend(source_rises)
        print(json.dumps({src.name: {"lesions": len(picked), "malignancy_rise_p95": per_source_p95[src.name]}}), flush=True)
    rises = np.array(rises)
    return {
        "malignancy_rise_p95": round(float(np.percentile(rises, 95)), 4),
        "malignancy_abs_median": round(float(np.median(np.abs(rises))), 4),
        "level_differs": round(float(np.mean(flips)), 4),
        "per_source_rise_p95": per_source_p95,
        "lesions": int(len(rises) / (views * (views - 1))),
        "views_per_lesion": views,
        "model": screener.version,
        "protocol": "validation lesions (seed 1234 splits); views: crop 70-100% area, short side 224-600 px, exposure ±15%, white balance ±7%, contrast ±10%, blur σ≤1.2, JPEG q60-95; every ordered pair of views",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.repeat_noise", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="source folders (each with labels.csv and images/)")
    p.add_argument("--model", help="a .tflite (default: the shipped one); its model_card.json must sit next to it")
    p.add_argument("--per-source", type=int, default=80, help="validation lesions per source")
    p.add_argument("--views", type=int, default=6)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--record", action="store_true", help="write the result into the model's model_card.json as repeat_noise")
    args = p.parse_args(argv)
    from inference import Screener

    screener = Screener.load(args.model)
    result = measure(screener, args.data, args.per_source, args.views, args.seed)
    print(json.dumps(result, indent=1))
    if args.record:
        card = Path(args.model).with_name("model_card.json") if args.model else Path(__file__).resolve().parents[1] / "inference" / "model" / "model_card.json"
        data = json.loads(card.read_text())
        data["repeat_noise"] = result
        card.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"recorded in {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
