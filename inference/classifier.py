"""LiteRT classifier: the model is read once, each worker thread gets its own interpreter.

A TFLite interpreter is not safe to call from two threads at once, and the bot runs screenings
in a thread pool; one interpreter per thread (built lazily from the shared model bytes) is
cheaper than a lock that would serialise all screenings.  TensorFlow is never imported here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from inference.labels import CLASSES
from inference.preprocess import INPUT_SIZE, model_input


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # (len(CLASSES),) calibrated softmax
    skin: float  # probability that the photo is a close-up of skin


class Classifier:
    def __init__(self, model: bytes | str | Path, *, colour_constancy: bool, threads_per_interpreter: int = 1):
        self._model = model if isinstance(model, bytes) else Path(model).read_bytes()
        # No default: it must match training, so it comes from the model card.  A default of "on"
        # once gave wrong probabilities when a script forgot it for a model trained without it.
        self.colour_constancy = colour_constancy
        self._threads = threads_per_interpreter
        self._local = threading.local()
        # Fail at load time, not on the first user's photo; tensor indices are the same for every
        # interpreter built from these bytes, so they are resolved once here, not per photo.
        self._input_index, self._probs_index, self._skin_index = self._resolve(self._interpreter())

    @property
    def model_bytes(self) -> bytes:
        """The TFLite flatbuffer (what a worker process needs to load the same model)."""
        return self._model

    def _interpreter(self) -> Interpreter:
        it = getattr(self._local, "interpreter", None)
        if it is None:
            it = Interpreter(model_content=self._model, num_threads=self._threads)
            it.allocate_tensors()
            self._local.interpreter = it
        return it

    @staticmethod
    def _resolve(it: Interpreter) -> tuple[int, int, int]:
        """Check the model's tensors against preprocessing and classes; return their indices."""
        inp = it.get_input_details()[0]
        shape = tuple(inp["shape"])
        if shape != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"model input {shape} does not match preprocessing ({INPUT_SIZE}x{INPUT_SIZE} RGB)")
        outputs = {int(d["shape"][-1]): d["index"] for d in it.get_output_details()}
        if sorted(outputs) != sorted([1, len(CLASSES)]):
            raise ValueError(f"model outputs {sorted(outputs)} do not match {len(CLASSES)} classes + skin")
        return inp["index"], outputs[len(CLASSES)], outputs[1]

    def predict(self, rgb: np.ndarray) -> Prediction:
        """RGB uint8 image of any size → calibrated class probabilities and skin score."""
        return self.predict_input(self.prepare(rgb))

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        return model_input(rgb, self.colour_constancy)

    def predict_input(self, x: np.ndarray) -> Prediction:
        it = self._interpreter()
        it.set_tensor(self._input_index, x[None].astype(np.float32, copy=False))
        it.invoke()
        probs = it.get_tensor(self._probs_index)[0].astype(np.float64)
        skin = float(it.get_tensor(self._skin_index)[0][0])
        return Prediction(probs / probs.sum(), skin)
