"""``python -m inference.benchmark [--image PATH]`` — speed and memory of serving, printed.

Measures, on whatever machine runs it:
  * classifier ms/image (batch 1, one thread, preprocessed input),
  * the whole pipeline (decode + checks + classify) for a 1280x960 phone-sized JPEG, p50/p95,
  * photos/s with one worker thread per core,
  * peak RSS of this process, which has loaded the model like the bot does,
and asserts nothing: targets live in the README next to the latest numbers.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from inference.screener import Screener

DEFAULT_IMAGE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "pad_ufes20" / "images"


def phone_jpeg(path: Path | None) -> bytes:
    """A 1280x960 JPEG (q90) made from a real lesion photo, as a phone would send it."""
    if path is None and DEFAULT_IMAGE_DIR.is_dir():
        path = min(DEFAULT_IMAGE_DIR.glob("*.jpg"))
    if path is not None:
        img = Image.open(path).convert("RGB")
    else:  # no data on this machine: a smooth skin-toned image with a dark spot
        yy, xx = np.mgrid[0:480, 0:640]
        arr = np.dstack([np.full((480, 640), c, np.uint8) for c in (205, 160, 140)])
        arr[(yy - 240) ** 2 + (xx - 320) ** 2 < 60**2] = (90, 60, 50)
        img = Image.fromarray(arr)
    buf = io.BytesIO()
    img.resize((1280, 960), Image.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m inference.benchmark", description=__doc__)
    p.add_argument("--image", type=Path, help="a lesion photo to upscale to 1280x960 (default: first PAD-UFES-20 image)")
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    screener = Screener.load()
    load_ms = (time.perf_counter() - t0) * 1000
    data = phone_jpeg(args.image)

    # Classifier alone, batch 1, one thread.
    x = screener.classifier.prepare(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    for _ in range(10):
        screener.classifier.predict_input(x)
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        screener.classifier.predict_input(x)
        times.append((time.perf_counter() - t) * 1000)
    cls_ms = statistics.median(times)

    # Whole pipeline on the phone-sized JPEG.
    result = screener.screen(data)
    pipe = []
    for _ in range(args.runs):
        t = time.perf_counter()
        screener.screen(data)
        pipe.append((time.perf_counter() - t) * 1000)

    # Throughput with one worker per core (the bot's executor).
    workers = os.cpu_count() or 1
    n = args.runs * 2
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: screener.screen(data), range(workers * 2)))  # one interpreter per thread
        t = time.perf_counter()
        list(pool.map(lambda _: screener.screen(data), range(n)))
        rate = n / (time.perf_counter() - t)

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model {screener.version} loaded in {load_ms:.0f} ms; test photo accepted={result.accepted} reasons={result.reasons}")
    print(f"classifier (batch 1, 1 thread):      {cls_ms:6.2f} ms/image   (target ≤ 5)")
    print(f"pipeline 1280x960 JPEG:  p50 {percentile(pipe, 50):6.2f} ms  p95 {percentile(pipe, 95):6.2f} ms   (target p50 ≤ 25)")
    print(f"  stages of one run: {result.ms}")
    print(f"throughput, {workers} worker threads:    {rate:6.1f} photos/s")
    print(f"peak RSS of this serving process:    {rss_mb:6.1f} MB   (target ≤ 150)")
    print(f"TensorFlow imported while serving:   {'tensorflow' in sys.modules}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
