"""The shape of a rule: everything bap-tf does that depends on one layer type.

Each method is called by a walker that knows nothing about layer types:

- ``check(layer, call)``: refuses configurations the other methods cannot handle exactly
  (``rules.rule_for``, before anything is built);
- ``switch(node, switcher)``: builds the layer's part of the switched network
  (``switching.build_switched_network``) and returns its output tensor;
- ``couple(node, deps)``: declares how the layer's channels relate to its inputs' channels
  (``prune.dependency.DependencyGraph``) and returns its output's channel space;
- ``rebuild(node, walk)``: builds the layer of a reduced model, sliced to the channels the
  plan keeps (``prune.rewrite.Rewriter``), and returns its output tensor;
- ``cost(layer)``: its ``(params, MACs)`` (``costs.layer_cost``), and ``part(layer,
  switched_names)``: which part of the cost report holds it (``costs.cost_by_part``);
- ``keeps_zeros(layer)``: whether a 0/1 channel mask after it may move before it
  (``export.sharing``);
- ``fine_tuned(layer, layers)``: whether fine-tuning ``layers`` trains it
  (``prune.finetune.unfreeze``);
- ``keras2(node, rebuild)``: builds its Keras 2 (tf_keras) stand-in for quantization-aware
  training (``export.qat_rebuild``, run in the QAT worker process) and returns its output.

The first line of each method's docstring is what ``describe_rules()`` prints, so the table's
description is the code's. This module imports no tf_keras: a rule reaches Keras 2 only
through the ``rebuild`` object the QAT worker hands to ``keras2``.
"""

import keras

# What to do when a layer has no rule; rules with a better answer give their own.
NO_RULE_ADVICE = (
    "bap_tf prunes CNNs built from the layer types bap_tf.rules.describe_rules() lists; give this "
    "type a rule with bap_tf.rules.register(layer_class, rule) or build the backbone without it"
)


class UnsupportedLayerError(ValueError):
    """A layer bap-tf has no exact rule for: refused, naming it, before any training."""


def unsupported(layer, why, advice=NO_RULE_ADVICE):
    """The refusal of ``layer``: what it is, why it has no rule and what to do instead."""
    return UnsupportedLayerError(
        f"Layer '{layer.name}' ({type(layer).__name__}) is not supported by bap_tf: {why}. {advice}."
    )


class Rule:
    """One layer type (or a few that behave alike). Subclasses override what differs."""

    types = ()  # matched with isinstance, in table order
    # Whether a layer reading the raw image still outputs "the image" for switching: a conv
    # reading it then counts as the RGB stem, which carries no switches.
    passes_image = True

    def matches(self, layer):
        return isinstance(layer, self.types)

    @property
    def type_names(self):
        return [cls.__name__ for cls in self.types]

    def check(self, layer, call=None):
        """Any configuration."""

    def switch(self, node, switcher):
        """Copied from its config (weights too, if any), called as in the backbone."""
        return switcher.call(copy_layer(node.layer), node, weights_from=node.layer)

    def couple(self, node, deps):
        """Channel c of the output is channel c of the input: same channel space."""
        return deps.input_space(node)

    def rebuild(self, node, walk):
        """Nothing to slice: copied from its config and shared by the union's domain models."""
        return walk.shared_copy(node)

    def cost(self, layer):
        """Free."""
        return 0, 0

    def part(self, layer, switched_names):
        """Unswitched."""
        return "unswitched"

    def keeps_zeros(self, layer):
        """No: a mask after it stays after it."""
        return False

    def fine_tuned(self, layer, layers):
        """When every layer is (``layers="all"``)."""
        return layers == "all"

    def keras2(self, node, rebuild):
        """None: quantization-aware training refuses it."""
        raise unsupported(
            node.layer, "quantization-aware training has no Keras 2 (tf_keras) stand-in for it",
            "Export it with --quantize=int8 (post-training), or give its rule a keras2 method",
        )


def copy_layer(layer, **overrides):
    """A new, unbuilt layer (or operation) of the same class and config."""
    return type(layer).from_config({**layer.get_config(), **overrides})


def set_weights(layer, weights):
    """``layer.set_weights(weights)``, then what Keras' own weight loaders do after it: a
    ``Normalization`` computes with copies of its statistics taken when they were last loaded
    (``finalize_state``), not with the variables ``set_weights`` assigns."""
    layer.set_weights(weights)
    if hasattr(layer, "finalize_state"):
        layer.finalize_state()


def spatial_size(shape):
    """Product of the spatial dimensions of an ``(N, ..., C)`` shape."""
    size = 1
    for dim in shape[1:-1]:
        size *= int(dim)
    return size


def output_channels(layer):
    return int(layer.output.shape[-1])


def is_layer(op):
    return isinstance(op, keras.layers.Layer)
