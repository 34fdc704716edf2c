"""Layers that compute nothing of the backbone: a model's inputs, and the channel gathers and
masks the rewriter adds to the reduced models. They matter to the cost model (free), to
fine-tuning and to the QAT rebuild, not to switching or pruning."""

import keras

from bap_tf import layers as bap_layers
from bap_tf.rules.base import Rule, unsupported


class InputRule(Rule):
    """InputLayer: each walker makes the inputs of what it builds, so it never switches,
    couples or rebuilds one."""

    types = (keras.layers.InputLayer,)

    def keras2(self, node, rebuild):
        """A tf_keras Input of the same shape, dtype and name."""
        layer = node.layer
        return rebuild.layers.Input(shape=tuple(layer.output.shape[1:]), dtype=layer.output.dtype, name=layer.name)


class _ReducedRule(Rule):
    """A layer the rewriter puts in reduced models."""

    def check(self, layer, call=None):
        """Refused in a network to switch or prune: only reduced models hold it."""
        raise unsupported(
            layer, "a layer the rewriter adds to reduced models",
            "Switch and prune the original backbone, not a reduced model",
        )


class GatherRule(_ReducedRule):
    """ChannelGather: the channels a conv reads, where it reads fewer than its input keeps."""

    types = (bap_layers.ChannelGather,)

    def keras2(self, node, rebuild):
        """bap_tf's Keras 2 twin: a GATHER, whose output keeps its input's quantization."""
        return rebuild.call(rebuild.layers.ChannelGather(node.layer.indices, name=node.name), node)


class MaskRule(_ReducedRule):
    """ChannelMask: a domain's 0/1 channel mask in the union model (its bits are counted apart,
    ``costs.mask_bits``)."""

    types = (bap_layers.ChannelMask,)

    def keras2(self, node, rebuild):
        """bap_tf's Keras 2 twin: a MUL by the 0/1 constant, its output fake-quantized."""
        return rebuild.call(rebuild.layers.ChannelMask(node.layer.mask, name=node.name), node)
