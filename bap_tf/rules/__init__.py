"""One rule per layer type: everything bap-tf does that depends on the type (see ``base.Rule``).

Switching, the dependency graph, the rewriter, the cost model, fine-tuning, the export's
sharing of kernels and the QAT rebuild all look layers up here, so adding a layer type means
adding one rule:

- ``convs``: Conv2D / SwitchedConv2D, DepthwiseConv2D, SeparableConv2D;
- ``norms``: BatchNorm / DomainBatchNormalization, Normalization / Rescaling, heads, Dense;
- ``streams``: channel-wise layers, Dropout, Reshape, element-wise merges and operations,
  Concatenate;
- ``reduced``: model inputs, and the gathers and masks the rewriter puts in reduced models.

``describe_rules()`` prints the table. A layer type of your own gets its rule with
``register``, ahead of the built-in ones; a rule overrides only what differs from
``Rule``'s defaults (copied as it is, same channel space, free, not quantization-aware)::

    import keras
    from bap_tf import rules

    class Swish(keras.layers.Layer):
        def call(self, x):
            return x * keras.ops.sigmoid(x)

    class SwishRule(rules.Rule):
        def keeps_zeros(self, layer):
            return True  # swish(0) = 0, channel by channel

    rules.register(Swish, SwishRule())
"""

import inspect

import keras

from bap_tf.rules.base import Rule, UnsupportedLayerError, unsupported
from bap_tf.rules.convs import ConvRule, DepthwiseRule, SeparableRule
from bap_tf.rules.norms import BatchNormRule, ConstantsRule, DenseRule, HeadsRule
from bap_tf.rules.reduced import GatherRule, InputRule, MaskRule
from bap_tf.rules.streams import (
    ChannelwiseRule,
    ConcatRule,
    DropoutRule,
    MergeRule,
    OperationRule,
    ReshapeRule,
)

# Matched in order (a subclass before its base class).
RULES = (
    ConvRule(),
    DepthwiseRule(),
    SeparableRule(),
    BatchNormRule(),
    ConstantsRule(),
    HeadsRule(),
    DenseRule(),
    DropoutRule(),
    ChannelwiseRule(),
    ReshapeRule(),
    MergeRule(),
    OperationRule(),
    ConcatRule(),
    InputRule(),
    GatherRule(),
    MaskRule(),
)
# Layer types known to have no exact rule, with why and what to do instead.
REFUSED = (
    (
        (keras.layers.LayerNormalization, keras.layers.GroupNormalization),
        "it normalizes over the channels (ConvNeXt), so removing one channel changes the others",
        "Use a backbone normalized with BatchNormalization (ResNet, MobileNet, EfficientNet)",
    ),
    (
        (keras.layers.MultiHeadAttention,),
        "attention mixes every channel",
        "Use a convolutional backbone",
    ),
)
# Activations that mix channels, refused on any layer that applies one (an Activation layer or
# a fused activation="softmax").
CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")
ASPECTS = ("check", "switch", "couple", "rebuild", "cost", "part", "keeps_zeros", "fine_tuned", "keras2")
# (layer class, rule) pairs given to ``register``, newest first: matched before ``RULES``.
_registered = []


def register(layer_class, rule):
    """Makes ``rule`` the rule of ``layer_class`` and its subclasses, ahead of every built-in
    rule (so a subclass of a built-in type may get its own), and of earlier registrations.

    Args:
      layer_class: a Keras layer (or operation) class.
      rule: a ``Rule`` instance; its ``types`` are not used.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.Operation)):
        raise ValueError(
            "layer_class must be a Keras layer class (a subclass of keras.layers.Layer). "
            f"Received: layer_class={layer_class!r}"
        )
    if not isinstance(rule, Rule):
        raise ValueError(
            f"rule must be an instance of bap_tf.rules.Rule (the class, called). Received: rule={rule!r}"
        )
    _registered.insert(0, (layer_class, rule))


def find_rule(layer):
    """The rule of ``layer``'s type, or None."""
    for layer_class, rule in _registered:
        if isinstance(layer, layer_class):
            return rule
    return next((rule for rule in RULES if rule.matches(layer)), None)


def rule_of(layer):
    """The rule of ``layer``'s type; refuses, by name and saying what to do, a layer without
    one and a channels_first layer."""
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise unsupported(layer, f"data_format={layer.data_format!r}", "Build the backbone channels_last")
    rule = find_rule(layer)
    for types, why, advice in REFUSED:
        if rule is None and isinstance(layer, types):
            raise unsupported(layer, why, advice)
    if rule is None:
        kind = "layer type" if isinstance(layer, keras.layers.Layer) else "operation"
        raise unsupported(layer, f"no rule for this {kind}")
    return rule


def rule_for(layer, call=None):
    """The rule of ``layer``, after checking its configuration: what switching and the
    dependency graph call before building anything. Besides ``rule_of`` and ``Rule.check``,
    refuses an activation that mixes channels, whatever layer applies it.

    ``call``: the serialized call (``graph.Node.call``), for rules that read its constants.
    """
    rule = rule_of(layer)
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    if activation in CHANNEL_MIXING_ACTIVATIONS:
        raise unsupported(
            layer, f"activation {activation!r} mixes channels", "Leave it out of the backbone (put it after the heads)"
        )
    rule.check(layer, call)
    return rule


def describe_rules():
    """The table as text, in matching order: per rule, the types it covers and what each
    aspect does (the first line of the docstring of the method that does it)."""
    table = [([cls.__name__], rule) for cls, rule in _registered] + [(rule.type_names, rule) for rule in RULES]
    lines = []
    for type_names, rule in table:
        lines.append(f"{', '.join(type_names)}  [{type(rule).__name__}]")
        for aspect in ASPECTS:
            doc = inspect.getdoc(getattr(rule, aspect)) or ""
            lines.append(f"    {aspect + ':':12} {' '.join(doc.split(chr(10) + chr(10))[0].split())}")
    return "\n".join(lines)


__all__ = [
    "RULES", "BatchNormRule", "ChannelwiseRule", "ConcatRule", "ConstantsRule", "ConvRule", "DenseRule",
    "DepthwiseRule", "DropoutRule", "GatherRule", "HeadsRule", "InputRule", "MaskRule", "MergeRule",
    "OperationRule", "ReshapeRule", "Rule", "SeparableRule", "UnsupportedLayerError", "describe_rules",
    "find_rule", "register", "rule_for", "rule_of",
]
