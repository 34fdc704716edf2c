"""Layers and tensor operations that pass channels through, join them or reshape around them."""

import numbers

import keras

from bap_tf.graph import is_keras_tensor
from bap_tf.rules.base import Rule, is_layer, output_channels, unsupported

# Activations that mix channels and so cannot be treated channel-wise.
CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


class ChannelwiseRule(Rule):
    """Stateless layers whose output channel c reads input channel c only."""

    types = (
        keras.layers.Activation,
        keras.layers.ReLU,
        keras.layers.LeakyReLU,
        keras.layers.ELU,
        keras.layers.ZeroPadding2D,
        keras.layers.MaxPooling2D,
        keras.layers.AveragePooling2D,
        keras.layers.GlobalAveragePooling2D,
        keras.layers.GlobalMaxPooling2D,
    )

    def check(self, layer, call=None):
        """Refused: activations that mix channels (softmax, log_softmax)."""
        if isinstance(layer, keras.layers.Activation):
            name = getattr(layer.activation, "__name__", "")
            if name in CHANNEL_MIXING_ACTIVATIONS:
                raise unsupported(
                    layer, f"activation {name!r} mixes channels", "Leave it out of the backbone (put it after the heads)"
                )


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


def _leaves(structure):
    if is_keras_tensor(structure) or not isinstance(structure, (list, tuple, dict)):
        return [structure]
    values = structure.values() if isinstance(structure, dict) else structure
    return [leaf for value in values for leaf in _leaves(value)]
