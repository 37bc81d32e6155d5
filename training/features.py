"""Feature maps of augmented views, computed once with LiteRT on the frozen lower network."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from inference.preprocess import model_input


def to_tflite(model: keras.Model) -> bytes:
    """Float32 TFLite flatbuffer of a Keras model (no quantisation: the card promises ≤ 1e-3)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return converter.convert()


class FeatureExtractor:
    """Runs the frozen lower network in LiteRT, batch by batch."""

    def __init__(self, lower: keras.Model, batch: int = 32, threads: int | None = None):
        self.batch = batch
        self.interpreter = Interpreter(model_content=to_tflite(lower), num_threads=threads or os.cpu_count() or 1)
        inp = self.interpreter.get_input_details()[0]
        self.interpreter.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]])
        self.interpreter.allocate_tensors()
        self.input_index = inp["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.shape = tuple(self.interpreter.get_output_details()[0]["shape"][1:])

    def run(self, views: np.ndarray) -> np.ndarray:
        n = len(views)
        padded = np.zeros((self.batch, *views.shape[1:]), np.float32)
        padded[:n] = views
        self.interpreter.set_tensor(self.input_index, padded)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)[:n].copy()

    def extract(self, items: Iterable[np.ndarray], total: int, label: str = "", prep: Callable[[np.ndarray], np.ndarray] = model_input) -> np.ndarray:
        """``items`` yields RGB uint8 views; returns float16 feature maps (total, *shape).

        ``prep`` is the serving preprocessing; only ablations pass anything else."""
        out = np.empty((total, *self.shape), np.float16)
        buf: list[np.ndarray] = []
        done, start = 0, time.time()

        def flush() -> None:
            nonlocal done
            out[done : done + len(buf)] = self.run(np.stack(buf))
            done += len(buf)
            buf.clear()

        for view in items:
            buf.append(prep(view))
            if len(buf) == self.batch:
                flush()
                if done % (self.batch * 40) == 0:
                    rate = done / (time.time() - start)
                    print(f"  {label} features {done}/{total} ({rate:.0f}/s)", file=sys.stderr, flush=True)
        if buf:
            flush()
        assert done == total, (done, total)
        return out


def views_of(images: list[np.ndarray], counts: list[int], make: Callable[[np.ndarray, np.random.Generator], np.ndarray], seed: int):
    """Yield ``counts[i]`` views of ``images[i]`` made by ``make``; deterministic by seed."""
    rng = np.random.default_rng(seed)
    for img, k in zip(images, counts, strict=True):
        for _ in range(k):
            yield make(img, rng)
