"""One rule per layer type: how it is switched, how its channels couple, how it is sliced
and what it costs (see ``base.Rule``). Switching, the dependency graph, the rewriter and the
cost model all look layers up here; adding a layer type means adding one rule.

- ``convs``: Conv2D / SwitchedConv2D, DepthwiseConv2D, SeparableConv2D;
- ``norms``: BatchNorm / DomainBatchNormalization, Normalization / Rescaling, heads, Dense;
- ``streams``: channel-wise layers, Dropout, Reshape, element-wise merges and operations,
  Concatenate.
"""

import inspect

import keras

from bap_tf.rules.base import Rule, UnsupportedLayerError, unsupported
from bap_tf.rules.convs import ConvRule, DepthwiseRule, SeparableRule
from bap_tf.rules.norms import BatchNormRule, ConstantsRule, DenseRule, HeadsRule
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
ASPECTS = ("check", "switch", "couple", "rebuild", "cost")


def find_rule(layer):
    """The rule of ``layer``'s type, or None."""
    return next((rule for rule in RULES if rule.matches(layer)), None)


def rule_for(layer, call=None):
    """The rule of ``layer``, after checking its configuration; refuses what has none.

    ``call``: the serialized call (``graph.Node.call``), for rules that read its constants.
    """
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise unsupported(layer, f"data_format={layer.data_format!r}", "Build the backbone channels_last")
    rule = find_rule(layer)
    for types, why, advice in REFUSED:
        if rule is None and isinstance(layer, types):
            raise unsupported(layer, why, advice)
    if rule is None:
        kind = "layer type" if isinstance(layer, keras.layers.Layer) else "operation"
        raise unsupported(layer, f"no rule for this {kind}")
    rule.check(layer, call)
    return rule


def describe_rules():
    """The table as text: per rule, the types it covers and what each aspect does (the first
    line of the docstring of the method that does it)."""
    lines = []
    for rule in RULES:
        lines.append(f"{', '.join(rule.type_names)}  [{type(rule).__name__}]")
        for aspect in ASPECTS:
            doc = inspect.getdoc(getattr(rule, aspect)) or ""
            lines.append(f"    {aspect + ':':8} {' '.join(doc.split(chr(10) + chr(10))[0].split())}")
    return "\n".join(lines)


__all__ = [
    "RULES", "BatchNormRule", "ChannelwiseRule", "ConcatRule", "ConstantsRule", "ConvRule", "DenseRule",
    "DepthwiseRule", "DropoutRule", "HeadsRule", "MergeRule", "OperationRule", "ReshapeRule", "Rule",
    "SeparableRule", "UnsupportedLayerError", "describe_rules", "find_rule", "rule_for",
]
