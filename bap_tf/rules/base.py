"""The shape of a rule: how one layer type is switched, coupled, sliced and costed.

A rule's four methods are called by four walkers that know nothing about layer types:

- ``switch(node, switcher)``: builds the layer's part of the switched network
  (``switching.build_switched_network``) and returns its output tensor;
- ``couple(node, deps)``: declares how the layer's channels relate to its inputs' channels
  (``prune.dependency.DependencyGraph``) and returns its output's channel space;
- ``rebuild(node, walk)``: builds the layer of a reduced model, sliced to the channels the
  plan keeps (``prune.rewrite.Rewriter``), and returns its output tensor;
- ``cost(layer)``: its ``(params, MACs)`` (``costs.layer_cost``).

The first line of each method's docstring is what ``describe_rules()`` prints, so the table's
description is the code's.
"""

import keras

# What to do when a layer has no rule; rules with a better answer give their own.
NO_RULE_ADVICE = (
    "bap_tf prunes CNNs built from the layer types bap_tf.rules.describe_rules() lists; add a Rule "
    "for this type (bap_tf/rules/) or build the backbone without it"
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


def copy_layer(layer, **overrides):
    """A new, unbuilt layer (or operation) of the same class and config."""
    return type(layer).from_config({**layer.get_config(), **overrides})


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
