"""Rebuilds a reduced per-domain Keras 3 model as a ``tf_keras`` (Keras 2) functional model.

Only the QAT worker imports this module: tensorflow-model-optimization works on Keras 2
models only. The input is what the parent can write without tf_keras: the Keras 3 functional
config (``model.get_config()``) and each layer's ``get_weights()``. Here the Keras 3 model is
built again from them (Keras 3 and tf_keras live side by side in the worker), read as a
``graph.LayerGraph``, and each node's rule (``Rule.keras2`` in ``bap_tf.rules``) builds its
Keras 2 stand-in from the Keras 3 layer: the rule file of a layer type says how it is
quantized, as it says how it is switched, pruned and costed.

What tf_keras has no layer for gets a small Keras 2 twin here, which rules reach as
``rebuild.layers.<name>``: bap_tf's ChannelGather / ChannelMask, hard-swish, and Keras 3's
element-wise operations with a scalar (``x + 3.0``).
"""

import keras
import tensorflow as tf
import tf_keras

from bap_tf import rules
from bap_tf.graph import LayerGraph
from bap_tf.rules.base import set_weights, unsupported


class ChannelGather(tf_keras.layers.Layer):
    """Keras 2 twin of ``bap_tf.layers.ChannelGather``: keeps the listed channels (GATHER)."""

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, inputs):
        return tf.gather(inputs, self.indices, axis=-1)

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


class ChannelMask(tf_keras.layers.Layer):
    """Keras 2 twin of ``bap_tf.layers.ChannelMask``: multiplies by a 0/1 constant (MUL)."""

    def __init__(self, mask, **kwargs):
        super().__init__(**kwargs)
        self.mask = [float(m) for m in mask]

    def call(self, inputs):
        return inputs * tf.constant(self.mask, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "mask": self.mask}


class HardSwish(tf_keras.layers.Layer):
    """Keras 3's ``hard_silu`` (MobileNetV3's hard-swish), ``x * relu6(x + 3) / 6``, written as
    the pattern the TFLite converter turns into one int8 HARD_SWISH."""

    def call(self, inputs):
        return inputs * tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0)


class ScalarOperation(tf_keras.layers.Layer):
    """A Keras 3 element-wise operation of a tensor and a scalar (``x + 3.0``, ``3.0 - x``).

    A division by the constant is a multiplication by its inverse: TFLite has no int8 DIV.
    """

    FUNCTIONS = {"Add": tf.add, "Subtract": tf.subtract, "Multiply": tf.multiply, "Divide": tf.divide,
                 "TrueDivide": tf.divide, "Maximum": tf.maximum, "Minimum": tf.minimum}

    def __init__(self, operation, constant, constant_first=False, **kwargs):
        super().__init__(**kwargs)
        if operation not in self.FUNCTIONS:
            raise ValueError(
                f"operation must be one of {sorted(self.FUNCTIONS)}. Received: operation={operation!r}"
            )
        self.operation, self.constant, self.constant_first = operation, float(constant), bool(constant_first)

    def call(self, inputs):
        if self.operation in ("Divide", "TrueDivide") and not self.constant_first:
            return inputs * tf.constant(1.0 / self.constant, inputs.dtype)
        constant = tf.constant(self.constant, inputs.dtype)
        operands = (constant, inputs) if self.constant_first else (inputs, constant)
        return self.FUNCTIONS[self.operation](*operands)

    def get_config(self):
        return {**super().get_config(), "operation": self.operation, "constant": self.constant,
                "constant_first": self.constant_first}


CUSTOM_OBJECTS = {twin.__name__: twin for twin in (ChannelGather, ChannelMask, HardSwish, ScalarOperation)}
# Keras 3 activations by serialized name, and the tf_keras activation that computes the same.
# Not listed: gelu (Keras 3 approximates it, tf_keras does not), hard_sigmoid (other formulas).
ACTIVATIONS = {"linear": "linear", "relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh",
               "silu": "swish"}


class Keras2Layers:
    """``tf_keras.layers``, plus the twins above by name."""

    def __init__(self):
        for name, twin in CUSTOM_OBJECTS.items():
            setattr(self, name, twin)

    def __getattr__(self, name):
        return getattr(tf_keras.layers, name)


class Keras2Rebuild:
    """What a rule's ``keras2`` needs: ``layers`` (``Keras2Layers``) and the Keras 2 tensors
    built so far, by node name."""

    def __init__(self):
        self.layers = Keras2Layers()
        self.tensors = {}

    def inputs(self, node):
        return [self.tensors[name] for name in node.inputs]

    def arguments(self, node):
        """``(args, kwargs)`` of the node's call with its Keras 2 tensors, constants kept."""
        return node.arguments(self.tensors)

    def call(self, new, node, weights=None):
        """Calls the Keras 2 layer ``new`` on the node's inputs (one tensor, or the list of
        several), then gives it ``weights``: by default the Keras 3 layer's own, whose
        ``get_weights()`` order Keras 2 shares for every layer the rules build."""
        inputs = self.inputs(node)
        outputs = new(inputs[0] if len(inputs) == 1 else inputs)
        if weights is None and getattr(node.layer, "weights", None):  # operations have none
            weights = node.layer.get_weights()
        if weights:
            new.set_weights(weights)
        return outputs

    def activation(self, layer):
        """The tf_keras name of ``layer``'s activation (``ACTIVATIONS``); refuses the others."""
        name = keras.activations.serialize(layer.activation)
        if name not in ACTIVATIONS:
            raise unsupported(
                layer, f"activation {name!r} has no tf_keras equivalent for quantization-aware training",
                f"Use one of {sorted(ACTIVATIONS)} (hard_silu as an Activation layer)",
            )
        return ACTIVATIONS[name]

    def activation_layer(self, layer):
        """An Activation layer's stand-in: tf_keras' own, or ``HardSwish`` for hard_silu."""
        if keras.activations.serialize(layer.activation) == "hard_silu":
            return HardSwish(name=layer.name)
        return tf_keras.layers.Activation(self.activation(layer), name=layer.name)


def rebuild(config, weights):
    """``tf_keras.Model`` computing what the Keras 3 functional model of ``config`` computes.

    Args:
        config: ``keras_model.get_config()`` of a one-input, one-output functional model.
        weights: ``{layer name: [arrays in get_weights() order]}``.
    """
    model = keras.Model.from_config(config)
    for layer in model.layers:
        if layer.weights:
            set_weights(layer, weights[layer.name])
    graph = LayerGraph(model)
    if len(graph.input_names) != 1 or len(graph.output_names) != 1:
        raise ValueError(
            "The QAT rebuild takes a model with one image input and one logits output. "
            f"Received: inputs={graph.input_names}, outputs={graph.output_names}"
        )
    walk = Keras2Rebuild()
    for node in graph:
        walk.tensors[node.name] = rules.rule_of(node.layer).keras2(node, walk)
    return tf_keras.Model(walk.tensors[graph.input_names[0]], walk.tensors[graph.output_names[0]], name=model.name)
