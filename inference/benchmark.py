"""``python -m inference.benchmark [--image PATH]`` — speed and memory of serving, printed.

Measures, on whatever machine runs it:
  * classifier ms/image (batch 1, one thread, preprocessed input),
  * the whole pipeline (decode + checks + classify) for a 1280x960 phone-sized JPEG, p50/p95,
  * photos/s with one worker thread per core,
  * peak RSS of this process, which has loaded the model like the bot does,
  * with ``--hostile``: CPU time and peak memory of every file of the generated hostile corpus
    (``inference.hostile``; targets 1 s and 300 MB per input), and the cost of containment:
    the same pipeline through ``inference.pool`` (a worker process with a memory limit),
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
    p.add_argument("--hostile", action="store_true", help="also: the hostile corpus and the cost of worker-process containment")
    p.add_argument("--model", type=Path, help="a .tflite with its model_card.json beside it, or a model folder / card (an ensemble); default: the shipped model")
    p.add_argument("--compare", type=Path, help="another model, as --model (e.g. the previous one: `git show REV:inference/model/...`), measured in the same run")
    args = p.parse_args(argv)
    data = phone_jpeg(args.image)
    screener = None
    for path in [args.model, args.compare] if args.compare else [args.model]:
        t0 = time.perf_counter()
        loaded = load(path)
        load_ms = (time.perf_counter() - t0) * 1000
        screener = screener or loaded
        report(loaded, data, args.runs, load_ms)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    label = "both models" if args.compare else "the model"
    print(f"peak RSS of this serving process with {label} loaded: {rss_mb:6.1f} MB   (target ≤ 200 for one, #11)")
    print(f"TensorFlow imported while serving:   {'tensorflow' in sys.modules}")
    if args.hostile:
        hostile_report(screener, data, args.runs)
    return 0


def load(path: Path | None) -> Screener:
    """The shipped model; a .tflite with its card beside it; or a folder/card (every member of an ensemble)."""
    if path is None:
        return Screener.load()
    if path.is_dir():
        return Screener.load(card=path / "model_card.json")
    return Screener.load(card=path) if path.suffix == ".json" else Screener.load(path)


def report(screener: Screener, data: bytes, runs: int, load_ms: float) -> None:
    """Classifier alone, the whole pipeline, and throughput with one thread per core."""
    x = screener.classifier.prepare(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    for _ in range(10):
        screener.classifier.predict_input(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        screener.classifier.predict_input(x)
        times.append((time.perf_counter() - t) * 1000)
    cls_ms = statistics.median(times)

    result = screener.screen(data)
    pipe = []
    for _ in range(runs):
        t = time.perf_counter()
        screener.screen(data)
        pipe.append((time.perf_counter() - t) * 1000)

    workers = os.cpu_count() or 1
    n = runs * 2
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: screener.screen(data), range(workers * 2)))  # one interpreter per thread
        t = time.perf_counter()
        list(pool.map(lambda _: screener.screen(data), range(n)))
        rate = n / (time.perf_counter() - t)

    print(f"model {screener.version} ({screener.classifier.members} TFLite file(s)) loaded in {load_ms:.0f} ms; test photo accepted={result.accepted} reasons={result.reasons}")
    print(f"  classifier (batch 1, 1 thread):      {cls_ms:6.2f} ms/image   (target ≤ 15)")
    print(f"  pipeline 1280x960 JPEG:  p50 {percentile(pipe, 50):6.2f} ms  p95 {percentile(pipe, 95):6.2f} ms   (target p50 ≤ 30)")
    print(f"  stages of one run: {result.ms}")
    print(f"  throughput, {workers} worker threads:    {rate:6.1f} photos/s")


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def hostile_report(screener: Screener, photo: bytes, runs: int) -> None:
    """Per hostile input: CPU ms and peak MB above the resident set before it (malloc_trim'd, peak
    reset through /proc/self/clear_refs); then pool vs in-process latency on the phone photo."""
    import ctypes

    from inference.hostile import corpus
    from inference.pool import ScreeningPool

    libc = ctypes.CDLL("libc.so.6")
    print("\nhostile corpus (targets: ≤ 1000 ms CPU, ≤ 300 MB peak per input):")
    worst_cpu = worst_mb = 0.0
    for name, blob in corpus().items():
        libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        rss0, cpu0 = _status_mb("VmRSS"), time.process_time()
        result = screener.screen(blob)
        cpu = (time.process_time() - cpu0) * 1000
        peak = _status_mb("VmHWM") - rss0
        worst_cpu, worst_mb = max(worst_cpu, cpu), max(worst_mb, peak)
        print(f"  {name:40s} {len(blob):>9d} B  {cpu:6.0f} ms CPU  peak +{peak:5.0f} MB  {','.join(result.reasons) or 'accepted'}")
    print(f"  worst: {worst_cpu:.0f} ms CPU, +{worst_mb:.0f} MB")

    pool = ScreeningPool(screener, workers=1)
    pool.warm_up()
    inproc, pooled = [], []
    for _ in range(runs // 2):
        t = time.perf_counter()
        screener.screen(photo)
        inproc.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        pool.screen_blocking(photo, keep_jpeg=False)
        pooled.append((time.perf_counter() - t) * 1000)
    pid = next(iter(pool._executor._processes))
    worker_rss = next(int(x.split()[1]) / 1024 for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    pool.close()
    print(f"containment: pipeline p50 in-process {percentile(inproc, 50):6.2f} ms, in a worker process {percentile(pooled, 50):6.2f} ms"
          f" (+{percentile(pooled, 50) - percentile(inproc, 50):.2f} ms: bytes over a pipe); worker RSS {worker_rss:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
