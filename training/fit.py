"""The one "fit the top of the network on cached maps" step, shared by the full training
(``training.train``) and the leave-one-source-out protocol (``training.loso``).

Two stages: the heads alone (everything else frozen), then the heads and the convolutional top
blocks, each with a cosine learning-rate schedule. BatchNormalization layers stay frozen
(``training.model``). With ``checkpoint`` the step is resumable: after every epoch the weights,
the best weights so far and the progress are written atomically, and a rerun continues after
the last finished epoch (the learning rate continues along the remaining part of the cosine).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

STAGES = (("heads", 1e-3), ("fine-tune", 3e-4))
ALPHA = 0.02  # the cosine ends at this share of the stage's learning rate


@dataclass
class Schedule:
    epochs_head: int
    epochs_finetune: int
    batch: int = 64
    loss_weights: tuple[float, float] = (1.0, 0.5)  # diagnosis, skin


def cosine_lr(lr0: float, step: int, total: int) -> float:
    """The learning rate CosineDecay(lr0, total, ALPHA) gives at ``step``."""
    cos = 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    return lr0 * ((1 - ALPHA) * cos + ALPHA)


def _atomic_json(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


class _Checkpoint(keras.callbacks.Callback):
    def __init__(self, folder: Path, stage: str, done_before: int, best):
        super().__init__()
        self.folder, self.stage, self.done_before, self.best = folder, stage, done_before, best

    def on_epoch_end(self, epoch, logs=None):
        self.model.save_weights(self.folder / "last.weights.h5")
        if self.best is not None and self.best.best_weights is not None:
            np.savez(self.folder / "best.tmp.npz", *self.best.best_weights)
            os.replace(self.folder / "best.tmp.npz", self.folder / "best.npz")
        progress = {"stage": self.stage, "epochs_done": self.done_before + epoch + 1}
        if self.best is not None:
            progress.update(best=self.best.best, history=self.best.history)
        _atomic_json(self.folder / "progress.json", progress)
        print(f"  checkpoint: {self.stage} epoch {progress['epochs_done']} saved", file=sys.stderr, flush=True)


def fit_top(top: keras.Model, x, y: dict, sample_weight: dict, schedule: Schedule, best=None, checkpoint: Path | None = None, verbose: int = 2, callbacks: tuple = ()) -> None:
    """Train ``top`` in place. ``best``: a callback with ``best``, ``best_weights`` and
    ``history`` (``training.train.BestByValidation``), restored on resume."""
    conv = [lyr for lyr in top.layers if lyr.weights and not isinstance(lyr, keras.layers.BatchNormalization) and lyr.name not in ("diagnosis_logits", "skin")]
    losses = {"diagnosis": keras.losses.SparseCategoricalCrossentropy(), "skin": keras.losses.BinaryCrossentropy()}
    steps = int(np.ceil(len(x) / schedule.batch))
    progress = {"stage": None, "epochs_done": 0}
    if checkpoint is not None:
        checkpoint.mkdir(parents=True, exist_ok=True)
        if (checkpoint / "progress.json").exists():
            progress = json.loads((checkpoint / "progress.json").read_text())
            top.load_weights(checkpoint / "last.weights.h5")
            if best is not None and (checkpoint / "best.npz").exists():
                with np.load(checkpoint / "best.npz") as z:
                    best.best_weights = [z[f"arr_{i}"] for i in range(len(z.files))]
                best.best, best.history = progress.get("best", -1.0), progress.get("history", [])
            print(f"  resuming after {progress['stage']} epoch {progress['epochs_done']}", file=sys.stderr, flush=True)
    stage_names = [name for name, _ in STAGES]
    for (stage, lr0), epochs in zip(STAGES, (schedule.epochs_head, schedule.epochs_finetune), strict=True):
        done = 0
        if progress["stage"] is not None:
            if stage_names.index(stage) < stage_names.index(progress["stage"]):
                continue  # finished before the interruption
            if stage == progress["stage"]:
                done = progress["epochs_done"]
        remaining = epochs - done
        if remaining <= 0:
            continue
        for lyr in conv:
            lyr.trainable = stage == "fine-tune"
        total = max(1, epochs * steps)
        lr_now = cosine_lr(lr0, done * steps, total)
        lr = keras.optimizers.schedules.CosineDecay(lr_now, decay_steps=max(1, remaining * steps), alpha=lr0 * ALPHA / lr_now)
        top.compile(optimizer=keras.optimizers.Adam(lr), loss=losses, loss_weights=dict(zip(("diagnosis", "skin"), schedule.loss_weights, strict=True)))
        stage_callbacks = [c for c in (best,) if c is not None]
        if checkpoint is not None:
            stage_callbacks.append(_Checkpoint(checkpoint, stage, done, best))
        stage_callbacks += list(callbacks)  # after the checkpoint: an interruption there loses nothing
        print(f"stage {stage}: {remaining} of {epochs} epochs over {len(x)} views", file=sys.stderr, flush=True)
        top.fit(x, y, sample_weight=sample_weight, batch_size=schedule.batch, epochs=remaining, shuffle=True, callbacks=stage_callbacks, verbose=verbose)
        progress = {"stage": stage, "epochs_done": epochs}
