"""Weight sharing between per-domain models, kept intact through TFLite conversion.

The union-pruned multi-domain model is a dict of per-domain Keras models that call the same
Conv2D / DepthwiseConv2D objects. The converter stores a constant once when its bytes are equal
in every signature, but it also folds a following BatchNormalization into the conv kernel
(``W * gamma / sqrt(var + eps)``). Each domain has its own BN, so folding would give every
signature its own kernel and the "shared" backbone would be stored once per domain.

``keep_shared_kernels`` prevents that: in a clone used only for export, each per-domain BN that
reads a shared layer becomes ``ChannelAffine``, a 1x1 depthwise convolution with kernel
``gamma / sqrt(var + eps)`` and bias ``beta - mean * kernel``. TFLite does not fold one
convolution into another, so the shared kernel stays bit-identical across signatures and is
stored once; the affine costs one DEPTHWISE_CONV_2D per BN (the BN's MUL and ADD, as one op).

A domain's ``ChannelMask`` that reads such a BN through channel-wise layers keeping zeros (ReLU,
padding, pooling: whose rule says so, ``Rule.keeps_zeros``), with nothing else reading them, is
folded into the affine: its kernel and bias are multiplied by the 0/1 mask
(``f(m * y) = m * f(y)`` for such layers), which saves one MUL per block and changes no output.
"""

import collections

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf import rules
from bap_tf.graph import producer_names
from bap_tf.rules.norms import batchnorm_parameters


class ChannelAffine(keras.layers.DepthwiseConv2D):
    """Inference-time BatchNormalization as a 1x1 depthwise conv (export only, never saved)."""

    def __init__(self, **kwargs):
        super().__init__(kernel_size=1, **kwargs)

    @classmethod
    def from_batchnorm(cls, batchnorm, mask=None):
        """The BN as an affine; ``mask`` (0/1 per channel) multiplies its output."""
        gamma, beta, mean, variance = batchnorm_parameters(batchnorm)
        scale = gamma / np.sqrt(variance + batchnorm.epsilon)
        bias = beta - mean * scale
        if mask is not None:
            scale, bias = scale * mask, bias * mask
        layer = cls(name=f"{batchnorm.name}_affine")
        layer.build((None, None, None, scale.shape[0]))
        layer.set_weights([scale.reshape(1, 1, -1, 1), bias])
        return layer

    def call(self, inputs, training=None, mask=None):
        # The BN node being replaced passes training/mask; a depthwise conv ignores both.
        return super().call(inputs)


def shared_layers(models):
    """Layers with weights that appear (as the same object) in two or more of ``models``."""
    counts = collections.Counter()
    layers = {}
    for model in models.values():
        for layer in {id(layer): layer for layer in model.layers}.values():
            if layer.weights:
                counts[id(layer)] += 1
                layers[id(layer)] = layer
    return [layers[key] for key, count in counts.items() if count > 1]


def shared_weight_bytes(models):
    """Bytes of float32 weights in the shared layers: what sharing saves per extra domain."""
    return sum(
        int(np.prod(weight.shape)) * 4 for layer in shared_layers(models) for weight in layer.weights
    )


def keep_shared_kernels(models):
    """Export clones of ``models`` in which no per-domain BN can be folded into a shared kernel.

    Returns a dict with the same keys. Models with no shared layer feeding a BN are returned
    as they are (their BNs fold as usual). The clones reuse every original layer object except
    the replaced BNs, so variables stay shared and the originals are not modified.
    """
    shared = {id(layer) for layer in shared_layers(models)}
    clones = {}
    for name, model in models.items():
        producers = inbound_layer_names(model)
        by_name = {op.name: op for op in model.operations}
        replace = {
            layer.name
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
            and id(layer) not in shared
            and layer.axis in (-1, 3)
            and len(layer.input.shape) == 4
            and any(id(by_name[p]) in shared for p in producers.get(layer.name, ()))
        }
        if not replace:
            clones[name] = model
            continue
        folded = foldable_masks(model, replace, producers)  # {BN name: mask layer}
        dropped = {mask.name for mask in folded.values()}

        def clone_layer(layer, replace=replace, folded=folded, dropped=dropped):
            if layer.name in replace:
                mask = folded.get(layer.name)
                return ChannelAffine.from_batchnorm(layer, None if mask is None else np.asarray(mask.mask))
            if layer.name in dropped:
                return keras.layers.Identity(name=layer.name)
            return layer

        clones[name] = keras.models.clone_model(model, clone_function=clone_layer)
    return clones


def foldable_masks(model, batchnorms, producers):
    """``{BN name: ChannelMask}`` for each mask that reads one of ``batchnorms`` through
    channel-wise layers that map 0 to 0, each read by nothing else (see the module docstring)."""
    readers = collections.Counter(name for names in producers.values() for name in names)
    by_name = {layer.name: layer for layer in model.layers}
    result = {}
    for mask in (layer for layer in model.layers if isinstance(layer, bap_layers.ChannelMask)):
        name = producers.get(mask.name, [None])[0]
        while (name in by_name and name not in batchnorms and readers[name] == 1
               and rules.rule_of(by_name[name]).keeps_zeros(by_name[name])):
            name = producers.get(name, [None])[0]
        if name in batchnorms and readers[name] == 1 and len(by_name[name].moving_mean.shape) == 1 \
                and by_name[name].moving_mean.shape[0] == len(mask.mask):
            result[name] = mask
    return result


def inbound_layer_names(model):
    """``{layer name: [names of the layers whose outputs it reads]}`` from the model's config.

    Reads the public functional config (``graph.producer_names``), which is what
    ``Model.from_config`` itself uses, rather than private node objects.
    """
    return producer_names(model.get_config())
