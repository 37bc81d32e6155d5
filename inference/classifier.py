"""LiteRT classifier: the model is read once, each worker thread gets its own interpreter.

A TFLite interpreter is not safe to call from two threads at once, and the bot runs screenings
in a thread pool; one interpreter per thread (built lazily from the shared model bytes) is
cheaper than a lock that would serialise all screenings.  TensorFlow is never imported here.

A model may be an ensemble: several TFLite files with the same input and outputs, whose
calibrated probabilities are averaged (the card lists them as ``members``; training.loso measures
ensembles the same way).  The skin score is the mean over the members the card names as the gate
(all of them unless a member is marked ``"gate": false``): a member's skin head trained against
more kinds of non-skin photos is diluted, not helped, by averaging in an older one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from inference.labels import CLASSES
from inference.preprocess import INPUT_SIZE, model_input

_FD_LOCK = threading.Lock()
#: LiteRT's native code prints this on every interpreter it makes, whatever TF_CPP_MIN_LOG_LEVEL
#: says, and has no Python switch for it.
DELEGATE_NOTICE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_delegate_notice():
    """Native stderr goes to a temporary file while an interpreter is made; everything but the
    XNNPACK notice is written back, so no other line (another thread's log) is lost."""
    with _FD_LOCK, tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().splitlines(keepends=True) if line.strip() != DELEGATE_NOTICE]
            if kept:
                os.write(2, b"".join(kept))


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # (len(CLASSES),) calibrated softmax
    skin: float  # probability that the photo is a close-up of skin
    features: np.ndarray | None = None  # the feature member's pooled vector (modality head's input)


#: The pooled tensor every member's diagnosis and skin heads read (global average pooling).
POOL_TENSOR = "pool_1/Mean"


ModelSource = bytes | str | Path


class Classifier:
    def __init__(
        self,
        model: ModelSource | Sequence[ModelSource],
        *,
        colour_constancy: bool,
        threads_per_interpreter: int = 1,
        skin_members: Sequence[int] | None = None,
        features_member: int | None = None,
    ):
        members = [model] if isinstance(model, bytes | str | Path) else list(model)
        if not members:
            raise ValueError("a classifier needs at least one model file")
        self._models = tuple(m if isinstance(m, bytes) else Path(m).read_bytes() for m in members)
        self.skin_members = tuple(range(len(members)) if skin_members is None else sorted(set(skin_members)))
        if not self.skin_members or not all(0 <= i < len(members) for i in self.skin_members):
            raise ValueError(f"skin gate members {skin_members} are not among the {len(members)} model files")
        # No default: it must match training, so it comes from the model card.  A default of "on"
        # once gave wrong probabilities when a script forgot it for a model trained without it.
        self.colour_constancy = colour_constancy
        # The modality head reads one member's pooled features: the tensor is inside the graph,
        # so that member's interpreter keeps its intermediate tensors (measured: same speed,
        # a few MB more; ``inference.benchmark`` prints it).
        if features_member is not None and not 0 <= features_member < len(members):
            raise ValueError(f"features member {features_member} is not among the {len(members)} model files")
        self.features_member = features_member
        self._threads = threads_per_interpreter
        self._local = threading.local()
        # Fail at load time, not on the first user's photo; tensor indices are the same for every
        # interpreter built from these bytes, so they are resolved once here, not per photo.
        its = self._interpreters()
        self._indices = [self._resolve(it) for it in its]
        self._feature_index = None if features_member is None else self._pool_index(its[features_member])

    @property
    def model_bytes(self) -> tuple[bytes, ...]:
        """The TFLite flatbuffers (what a worker process needs to load the same model)."""
        return self._models

    @property
    def members(self) -> int:
        return len(self._models)

    def _interpreters(self) -> list[Interpreter]:
        its = getattr(self._local, "interpreters", None)
        if its is None:
            its = []
            for model in self._models:
                keep = len(its) == self.features_member
                with _without_delegate_notice(), warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
                    it = Interpreter(model_content=model, num_threads=self._threads, experimental_preserve_all_tensors=keep)
                    it.allocate_tensors()
                its.append(it)
            self._local.interpreters = its
        return its

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

    @staticmethod
    def _pool_index(it: Interpreter) -> int:
        found = [d["index"] for d in it.get_tensor_details() if d["name"].endswith(POOL_TENSOR) and len(d["shape"]) == 2]
        if len(found) != 1:
            raise ValueError(f"the features member has {len(found)} tensors named *{POOL_TENSOR}, expected one")
        return found[0]

    def predict(self, rgb: np.ndarray) -> Prediction:
        """RGB uint8 image of any size → calibrated class probabilities and skin score."""
        return self.predict_input(self.prepare(rgb))

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        return model_input(rgb, self.colour_constancy)

    def predict_input(self, x: np.ndarray) -> Prediction:
        batch = x[None].astype(np.float32, copy=False)
        probs = np.zeros(len(CLASSES))
        skin = 0.0
        features = None
        for i, (it, (inp, out_probs, out_skin)) in enumerate(zip(self._interpreters(), self._indices, strict=True)):
            it.set_tensor(inp, batch)
            it.invoke()
            p = it.get_tensor(out_probs)[0].astype(np.float64)
            probs += p / p.sum()
            if i in self.skin_members:
                skin += float(it.get_tensor(out_skin)[0][0])
            if i == self.features_member:
                features = it.get_tensor(self._feature_index)[0].astype(np.float32)
        return Prediction(probs / len(self._models), skin / len(self.skin_members), features)
