"""What serving Model v3's frozen-feature candidate would cost, beside the shipped model, in one run.

The candidate runs three networks per view (the α0.5 Keras backbone as float TFLite, the Coral
MobileNetV2 and MobileNetV1 int8 files) and a logistic head (a 3,584 × 7 matrix product); the
centre and mirror views double the network cost. Measured here, batch 1, one thread, the same
preprocessed 224 px input for both, each in a fresh process that imports no TensorFlow (the
α0.5 flatbuffer is written to a temporary file first, which needs TensorFlow once):

* classifier ms per photo (median of ``--runs``), candidate with one view and with both views;
* peak RSS (VmHWM) of a process that has loaded the models and classified photos; the
  candidate reads the Coral MobileNetV2's pooled tensor with ``experimental_preserve_all_tensors``
  (every intermediate kept), so its number is an upper bound: serving would cut the graph there.

The pipeline cost is the shipped pipeline's (``python -m inference.benchmark``) with the
classifier part swapped. Nothing is asserted: the numbers go to docs/benchmarks.md.

    python -m training.frozen_bench --weights ../shared/weights
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, statistics, sys, time
import numpy as np
kind, runs = sys.argv[1], int(sys.argv[2])
rgb = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
if kind == "shipped":
    from inference import Screener
    clf = Screener.load().classifier
    def once():
        clf.predict(rgb)
else:
    from training.frozen import LiteFeatures, V2_POOL
    a05, v2, v1 = sys.argv[3], sys.argv[4], sys.argv[5]
    nets = [LiteFeatures(a05), LiteFeatures(v2, tensor_name=V2_POOL), LiteFeatures(v1)]
    w = np.random.default_rng(1).normal(size=(1280 + 1280 + 1024, 7)).astype(np.float32)
    views = 2 if kind == "candidate2" else 1
    def once():
        for view in range(views):
            img = rgb if view == 0 else np.ascontiguousarray(rgb[:, ::-1])
            f = np.concatenate([n(img) for n in nets])
            z = f @ w
            np.exp(z - z.max())
once()
times = []
for _ in range(runs):
    t0 = time.perf_counter(); once(); times.append((time.perf_counter() - t0) * 1000)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))  # (ru_maxrss survives exec: the parent's)
print(json.dumps({"ms_p50": statistics.median(times), "ms_p95": float(np.percentile(times, 95)), "rss_mb": hwm / 1024,
                  "tensorflow": "tensorflow" in sys.modules}))
"""


def measure(kind: str, runs: int, paths: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(runs), *paths], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, default=Path(os.environ.get("SHARED_DIR", "../shared")) / "weights")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2, help="shipped and candidate alternate this many times (this machine's timings drift)")
    args = ap.parse_args(argv)
    from training.frozen import CORAL_V1, CORAL_V2, KERAS_A05, keras_a05_tflite

    with tempfile.TemporaryDirectory() as tmp:
        a05 = Path(tmp) / "a05.tflite"
        a05.write_bytes(keras_a05_tflite(args.weights / KERAS_A05))
        paths = [str(a05), str(args.weights / CORAL_V2), str(args.weights / CORAL_V1)]
        rows = []
        for r in range(args.rounds):
            for kind in ("shipped", "candidate1", "candidate2"):
                m = measure(kind, args.runs, paths)
                rows.append({"round": r, "kind": kind, **{k: round(v, 1) if isinstance(v, float) else v for k, v in m.items()}})
                print(json.dumps(rows[-1]), flush=True)
    print("\n| model | classifier ms/photo, p50 (p95) | peak RSS, models loaded | TensorFlow imported |\n|---|---|---|---|")
    names = {"shipped": "2026.11.29-E4 (shipped, two members)", "candidate1": "Model v3 candidate, centre view", "candidate2": "Model v3 candidate, centre + mirror"}
    for kind, name in names.items():
        got = [x for x in rows if x["kind"] == kind]
        ms = ", ".join(f"{x['ms_p50']:.1f} ({x['ms_p95']:.1f})" for x in got)
        print(f"| {name} | {ms} | {max(x['rss_mb'] for x in got):.0f} MB | {'yes' if any(x['tensorflow'] for x in got) else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
