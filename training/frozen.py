"""Frozen ImageNet features of every image, cached once per source and view (Model v3, docs/model/HISTORY.md).

Three networks, none fine-tuned: the Keras MobileNetV2 α0.5 (global-average pooled, float) and
the two Coral int8 LiteRT files (MobileNetV2 1.0: the pooled 1280 tensor before its classifier;
MobileNetV1 1.0: its pooled embedding output). Their inputs are raw uint8 224×224; the int8
outputs are dequantised with each interpreter's own scale and zero point.

Views: the serving view (central square, ``inference.preprocess``) and its mirror. Each source
lands in ``OUT/<source>.npz`` as soon as it is done, so a killed run resumes at the next
source: head training and leave-one-source-out then take minutes (``training.frozen_loso``).

    python -m training.frozen --data ../shared/data --weights ../shared/weights --out runs/frozen
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from inference.preprocess import center_square, resize_square
from training.data import load_image, read_source

SOURCES = ("ham10000", "isic2017", "pad_ufes20", "sd198_subset", "bcn20000", "isic_archive_mixed", "isic2020")
CORAL_V2 = "coral_tf2_mobilenet_v2_1.0_224_ptq.tflite"
CORAL_V1 = "coral_mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
KERAS_A05 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5"
#: The pooled tensor of the Coral MobileNetV2 (the classifier's input), found by name.
V2_POOL = "MobileNetV2/top/GlobalPool/Mean"


class LiteFeatures:
    """One LiteRT network as a feature extractor: uint8 RGB 224 in, float32 vector out."""

    def __init__(self, model_path: str | Path, tensor_name: str | None = None, content: bytes | None = None, threads: int = 1):
        import warnings

        from ai_edge_litert.interpreter import Interpreter

        kwargs = {"model_content": content} if content is not None else {"model_path": str(model_path)}
        with warnings.catch_warnings():  # an inner tensor is read on purpose (the pooled features); serving would cut the graph there
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
            self.it = Interpreter(num_threads=threads, experimental_preserve_all_tensors=tensor_name is not None, **kwargs)
        self.it.allocate_tensors()
        inp = self.it.get_input_details()[0]
        self.input_index, self.input_dtype = inp["index"], inp["dtype"]
        self.input_quant = inp["quantization"]
        if tensor_name is None:
            out = self.it.get_output_details()[0]
        else:
            out = next(d for d in self.it.get_tensor_details() if tensor_name in d["name"] and d["shape"].size == 4 and d["shape"][1] == 1)
        self.output_index, self.output_quant = out["index"], out["quantization"]

    def __call__(self, rgb224: np.ndarray) -> np.ndarray:
        if self.input_dtype == np.uint8:
            # The Coral files take raw pixels: their input quantisation (scale ≈ 1/128, zero ≈ 128)
            # is exactly the [-1, 1] scaling the networks were trained with.
            x = rgb224[None]
        else:
            x = (rgb224.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0))[None]
        self.it.set_tensor(self.input_index, x)
        self.it.invoke()
        raw = self.it.get_tensor(self.output_index).reshape(-1)
        scale, zero = self.output_quant
        return (raw.astype(np.float32) - zero) * scale if scale else raw.astype(np.float32)


def keras_a05_tflite(weights: Path) -> bytes:
    """The α0.5 backbone with average pooling as a float TFLite flatbuffer (TensorFlow only here)."""
    import keras

    from training.features import to_tflite

    net = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=0.5, include_top=False, weights=str(weights), pooling="avg")
    return to_tflite(net)


def networks(weights: Path, threads: int = 1) -> dict[str, LiteFeatures]:
    return {
        "a05": LiteFeatures(None, content=keras_a05_tflite(weights / KERAS_A05), threads=threads),
        "v2": LiteFeatures(weights / CORAL_V2, tensor_name=V2_POOL, threads=threads),
        "v1": LiteFeatures(weights / CORAL_V1, threads=threads),
    }


def extract_source(folder: Path, nets: dict[str, LiteFeatures], out: Path) -> None:
    src = read_source(folder)
    n = len(src.samples)
    feats = {f"{k}_{v}": [] for k in nets for v in ("c", "f")}
    t0 = time.time()
    for i, s in enumerate(src.samples):
        square = resize_square(center_square(load_image(s)))
        for view, img in (("c", square), ("f", np.ascontiguousarray(square[:, ::-1]))):
            for k, net in nets.items():
                feats[f"{k}_{view}"].append(net(img).astype(np.float16))
        if i % 500 == 0:
            print(f"  {src.name} {i}/{n} ({(i + 1) / (time.time() - t0):.1f}/s)", file=sys.stderr, flush=True)
    arrays = {k: np.stack(v) for k, v in feats.items()}
    tmp = out.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        label=np.array([s.label for s in src.samples], np.int8),
        malignant=np.array([-1 if s.malignant is None else s.malignant for s in src.samples], np.int8),
        modality=np.array([s.modality for s in src.samples]),
        group=np.array([s.group for s in src.samples]),
        image=np.array([s.path.name for s in src.samples]),
        **arrays,
    )
    os.replace(tmp, out)
    print(f"{src.name}: {n} images in {time.time() - t0:.0f} s -> {out}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SHARED_DIR", "../shared")) / "data")
    ap.add_argument("--weights", type=Path, default=Path(os.environ.get("SHARED_DIR", "../shared")) / "weights")
    ap.add_argument("--out", type=Path, default=Path("runs/frozen"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sources", nargs="*", default=list(SOURCES))
    args = ap.parse_args(argv)
    nets = networks(args.weights, args.threads)
    cache_each(args.sources, args.out, lambda name, target: extract_source(args.data / name, nets, target))
    return 0


def cache_each(sources, out: Path, extract) -> None:
    """``extract(name, OUT/<name>.npz)`` for each source not cached yet: a killed run resumes at
    the next source (each file is written whole, then renamed)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in sources:
        target = out / f"{name}.npz"
        if target.exists():
            print(f"{name}: cached", file=sys.stderr)
            continue
        extract(name, target)


if __name__ == "__main__":
    sys.exit(main())
