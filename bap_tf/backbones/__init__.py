"""Backbones bap-tf knows by name; any other functional CNN works through ``switching``."""

import keras

from bap_tf.backbones.applications import efficientnet_b0, mobilenet_v2, mobilenet_v3_small, resnet50
from bap_tf.backbones.resnet26 import FEATURES_LAYER, resnet26

BACKBONES = ("resnet26", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")


def build_backbone(name, input_shape, width=64, weights=None):
    """A feature-extracting backbone by name; ``width`` applies to resnet26 (alpha-like)."""
    if name == "resnet26":
        model = resnet26(input_shape=input_shape, width=width)
        if weights is not None:
            model.load_weights(weights)
        return model
    if name == "resnet50":
        return resnet50(input_shape=input_shape, weights=weights)
    if name == "mobilenet_v2":
        return mobilenet_v2(input_shape=input_shape, weights=weights)
    if name == "mobilenet_v3_small":
        return mobilenet_v3_small(input_shape=input_shape, weights=weights)
    if name == "efficientnet_b0":
        return efficientnet_b0(input_shape=input_shape, weights=weights)
    raise ValueError(f"backbone must be one of {BACKBONES}. Received: backbone={name!r}")


def features_of(classifier, features_layer=FEATURES_LAYER):
    """The feature extractor inside a pre-training classifier (its graph up to ``features_layer``)."""
    return keras.Model(classifier.inputs, classifier.get_layer(features_layer).output, name=classifier.name)


__all__ = [
    "BACKBONES", "build_backbone", "efficientnet_b0", "features_of", "mobilenet_v2", "mobilenet_v3_small",
    "resnet26", "resnet50",
]
