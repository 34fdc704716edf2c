"""Layers and tensor operations that pass channels through, join them or reshape around them."""

import numbers

import keras
import numpy as np

from bap_tf.graph import is_keras_tensor
from bap_tf.rules.base import Rule, is_layer, output_channels, unsupported

# The channel-wise types, each with how its tf_keras namesake is built (from the layer and the
# QAT rebuild, see ``Rule.keras2``).
_KERAS2_NAMESAKES = {
    keras.layers.Activation: lambda layer, rebuild: rebuild.activation_layer(layer),
    keras.layers.ReLU: lambda layer, rebuild: rebuild.layers.ReLU(
        max_value=layer.max_value, negative_slope=layer.negative_slope, threshold=layer.threshold, name=layer.name),
    keras.layers.LeakyReLU: lambda layer, rebuild: rebuild.layers.LeakyReLU(
        alpha=layer.negative_slope, name=layer.name),
    keras.layers.ELU: lambda layer, rebuild: rebuild.layers.ELU(alpha=layer.alpha, name=layer.name),
    keras.layers.ZeroPadding2D: lambda layer, rebuild: rebuild.layers.ZeroPadding2D(layer.padding, name=layer.name),
    keras.layers.MaxPooling2D: lambda layer, rebuild: rebuild.layers.MaxPooling2D(
        layer.pool_size, strides=layer.strides, padding=layer.padding, name=layer.name),
    keras.layers.AveragePooling2D: lambda layer, rebuild: rebuild.layers.AveragePooling2D(
        layer.pool_size, strides=layer.strides, padding=layer.padding, name=layer.name),
    keras.layers.GlobalAveragePooling2D: lambda layer, rebuild: _keras2_global_average(layer, rebuild),
    keras.layers.GlobalMaxPooling2D: lambda layer, rebuild: rebuild.layers.GlobalMaxPooling2D(
        keepdims=layer.keepdims, name=layer.name),
}


def _keras2_global_average(layer, rebuild):
    """tf_keras' GlobalAveragePooling2D; over a single position (MobileNetV3-Small's last blocks
    at 32x32), a Reshape: the converter drops a mean over one position, which would leave the
    layers on both sides of it with their own fake-quant scales where TFLite needs one (a GATHER
    after it fails to convert)."""
    if tuple(layer.input.shape[1:3]) == (1, 1):
        return rebuild.layers.Reshape(tuple(layer.output.shape[1:]), name=layer.name)
    return rebuild.layers.GlobalAveragePooling2D(keepdims=layer.keepdims, name=layer.name)


class ChannelwiseRule(Rule):
    """Stateless layers whose output channel c reads input channel c only."""

    types = tuple(_KERAS2_NAMESAKES)

    def keeps_zeros(self, layer):
        """If it maps an all-zero input to zeros (evaluated: an activation, or a ReLU with a
        threshold, may not): then ``f(m * x) = m * f(x)`` for a 0/1 channel mask ``m``."""
        shape = tuple(1 if dim is None else int(dim) for dim in layer.input.shape)
        return not np.any(keras.ops.convert_to_numpy(layer(np.zeros(shape, "float32"))))

    def keras2(self, node, rebuild):
        """Its tf_keras namesake (an activation by its tf_keras name; hard_silu, which tf_keras
        lacks, as a twin layer)."""
        layer = node.layer
        build = next(build for cls, build in _KERAS2_NAMESAKES.items() if isinstance(layer, cls))
        return rebuild.call(build(layer, rebuild), node)


class DropoutRule(ChannelwiseRule):
    """Dropout (the identity at inference), also with a noise_shape (EfficientNet)."""

    types = (keras.layers.Dropout,)

    def rebuild(self, node, walk):
        """Copied; a noise_shape over the channels takes the kept channel count."""
        noise_shape = node.layer.noise_shape
        if noise_shape is not None and noise_shape[-1] not in (None, 1):
            kept = len(walk.plan.channels(node.name))
            return walk.shared_copy(node, noise_shape=tuple(noise_shape[:-1]) + (kept,))
        return walk.shared_copy(node)

    def keras2(self, node, rebuild):
        """Its tf_keras namesake (the identity at inference)."""
        layer = node.layer
        return rebuild.call(
            rebuild.layers.Dropout(layer.rate, noise_shape=layer.noise_shape, seed=layer.seed, name=layer.name), node
        )


class ReshapeRule(Rule):
    """Reshape between (N, C) and (N, 1, 1, C), as squeeze-and-excitation blocks do."""

    types = (keras.layers.Reshape,)

    def check(self, layer, call=None):
        """Refused: reshapes that move channels."""
        before, after = tuple(layer.input.shape), tuple(layer.output.shape)
        if before[-1] != after[-1] or any(d != 1 for d in before[1:-1] + after[1:-1]):
            raise unsupported(
                layer, f"a reshape from {before} to {after} moves channels",
                "Only reshapes that add or drop unit dimensions around the channels have a rule",
            )

    def rebuild(self, node, walk):
        """target_shape takes the kept channel count."""
        kept = len(walk.plan.channels(node.name))
        return walk.shared_copy(node, target_shape=tuple(node.layer.target_shape[:-1]) + (kept,))

    def keras2(self, node, rebuild):
        """Its tf_keras namesake."""
        return rebuild.call(rebuild.layers.Reshape(node.layer.target_shape, name=node.name), node)


class MergeRule(Rule):
    """Element-wise layers on several tensors: Add, Subtract, Multiply (the SE gate), Maximum..."""

    types = (
        keras.layers.Add,
        keras.layers.Subtract,
        keras.layers.Multiply,
        keras.layers.Maximum,
        keras.layers.Minimum,
        keras.layers.Average,
    )

    def couple(self, node, deps):
        """Operands and result share one channel index: their spaces become one. An operand
        of one channel broadcast over all (a per-position gate) is kept whole."""
        channels = output_channels(node.layer)
        tied = []
        for name in deps.inputs_of(node):
            space = deps.space(name)
            if deps.width(space) == channels:
                tied.append(space)
            else:
                deps.pin(space, f"broadcast over the channels by '{node.name}'")
        return deps.tie(tied, node)

    def keras2(self, node, rebuild):
        """Its tf_keras namesake (Add, Multiply...) on the same operands."""
        return rebuild.call(getattr(rebuild.layers, type(node.layer).__name__)(name=node.name), node)


class OperationRule(MergeRule):
    """Keras 3 operations on tensors (``x + 3.0``, ``x * y``, ``x / 6``): not layers, but in
    ``model.operations``; their constants must be scalars."""

    names = ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum")

    def matches(self, layer):
        return not is_layer(layer) and isinstance(layer, keras.Operation) and type(layer).__name__ in self.names

    @property
    def type_names(self):
        return [f"operation {name}" for name in self.names]

    def check(self, layer, call=None):
        """Refused: operands that are not tensors or scalars (per-channel constants)."""
        constants = [value for value in _leaves((call or {}).get("args", [])) if not is_keras_tensor(value)]
        for value in constants:
            if not isinstance(value, numbers.Number):
                raise unsupported(
                    layer, f"an operand that is not a scalar ({type(value).__name__})",
                    "Write per-channel constants as a layer (e.g. a Normalization) so they can be sliced",
                )

    def keras2(self, node, rebuild):
        """With a scalar operand, a twin layer that applies it with that constant (``x + 3.0``
        becomes an int8 ADD of a constant); on two tensors, the merge layer of its name."""
        self.check(node.layer, node.call)
        args, _ = rebuild.arguments(node)
        name = type(node.layer).__name__
        constants = [value for value in args if isinstance(value, numbers.Number)]
        if constants:
            new = rebuild.layers.ScalarOperation(
                name, float(constants[0]), constant_first=isinstance(args[0], numbers.Number), name=node.name
            )
        elif name in ("Divide", "TrueDivide"):
            return Rule.keras2(self, node, rebuild)  # of two tensors: tf_keras has no division layer
        else:
            new = getattr(rebuild.layers, name)(name=node.name)
        return rebuild.call(new, node)


class ConcatRule(Rule):
    """Concatenate on the channel axis (DenseNet)."""

    types = (keras.layers.Concatenate,)

    def check(self, layer, call=None):
        """Refused: concatenation over another axis than the channels."""
        if layer.axis not in (-1, len(layer.output.shape) - 1):
            raise unsupported(layer, f"Concatenate over axis {layer.axis}", "Only channel concatenations have a rule")

    def couple(self, node, deps):
        """Its channel space is its operands' spaces one after another: channel offsets move
        through the concatenation, and each operand shrinks on its own."""
        return deps.concat([deps.space(name) for name in deps.inputs_of(node)])

    def keras2(self, node, rebuild):
        """Its tf_keras namesake on the same axis."""
        return rebuild.call(rebuild.layers.Concatenate(axis=node.layer.axis, name=node.name), node)


def _leaves(structure):
    if is_keras_tensor(structure) or not isinstance(structure, (list, tuple, dict)):
        return [structure]
    values = structure.values() if isinstance(structure, dict) else structure
    return [leaf for value in values for leaf in _leaves(value)]
