"""MobileNetV2 split into a frozen lower part and a fine-tuned top with two heads.

Why split: on a 2-core CPU, full fine-tuning in TensorFlow runs at ~12 images/s, far too slow to
train within an hour, while the lower part of the network runs at ~300 images/s in LiteRT.  So
the frozen lower part computes feature maps for several augmented views of each image once
(``training.features``), and only the top blocks and the heads are trained on those maps.  The
exported model is the same network end to end.

Heads: ``diagnosis`` (softmax over ``inference.labels.CLASSES``) and ``skin`` (sigmoid: is this a
close-up skin photo at all, trained against everyday photos, screenshots and documents).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from inference.labels import CLASSES
from inference.preprocess import INPUT_SIZE

#: The layer whose output is cached; everything after it is trained.  Measured on 2 cores, the
#: top trains at 192 views/s from ``block_12_add``, 149 from ``block_9_add`` and 49 from
#: ``block_5_add`` (too slow for the one-hour budget).  Fine-tuning three more blocks raised the
#: best validation mean AUC from 0.884 to 0.899 (model card, "Full trainings compared").
CUT_LAYER = "block_9_add"


@dataclass
class Networks:
    lower: keras.Model  # image → feature map at CUT_LAYER (frozen ImageNet weights)
    top: keras.Model  # feature map → {diagnosis, skin}
    full: keras.Model  # image → {diagnosis, skin}; shares layers with the two above


def build(weights: str | None, alpha: float = 0.5, cut: str = CUT_LAYER, dropout: float = 0.3) -> Networks:
    base = keras.applications.MobileNetV2(
        input_shape=(INPUT_SIZE, INPUT_SIZE, 3), alpha=alpha, include_top=False, weights=weights
    )
    names = [layer.name for layer in base.layers]
    cut_index = names.index(cut)
    lower = keras.Model(base.input, base.get_layer(cut).output, name="lower")
    lower.trainable = False

    feat_in = keras.Input(shape=base.get_layer(cut).output.shape[1:], name="features")
    tensors = {cut: feat_in}
    for layer in base.layers[cut_index + 1 :]:
        inbound = [t._keras_history[0].name for t in layer._inbound_nodes[0].input_tensors]
        args = [tensors[name] for name in inbound]
        tensors[layer.name] = layer(args if len(args) > 1 else args[0])
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # small batches of cached maps: keep ImageNet statistics
    x = keras.layers.GlobalAveragePooling2D(name="pool")(tensors[base.layers[-1].name])
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    diagnosis = keras.layers.Dense(len(CLASSES), name="diagnosis_logits")(x)
    diagnosis = keras.layers.Softmax(name="diagnosis")(diagnosis)
    skin = keras.layers.Dense(1, activation="sigmoid", name="skin")(x)
    top = keras.Model(feat_in, {"diagnosis": diagnosis, "skin": skin}, name="top")

    image = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), name="image")
    full = keras.Model(image, top(lower(image)), name="skin_lesion")
    return Networks(lower, top, full)
