"""The one cost model of bap-tf: parameters and multiply-accumulates from layer shapes.

The budget term, the sharing losses, the pruner's reports and the metrics all read their
numbers from here, so "kept 50% of the MACs" means the same thing everywhere.

Each layer type's cost is its rule's (``bap_tf.rules``, ``Rule.cost``): a convolution costs
``H_out * W_out * C_out * k_h * k_w * C_in`` MACs and its stored weights as parameters; a dense
layer ``in * out`` MACs. A BatchNormalization folds into the preceding convolution at
inference, so it costs no MACs and one bias per channel as parameters. Everything else
(activations, adds, pooling, gathers, masks) is free. A layer without a rule is refused by
name rather than counted as free, so no cost goes missing unnoticed.
"""

import dataclasses

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf import rules
from bap_tf.rules.base import spatial_size

# What a switch can cost (the linear budgets; bap_tf.budgets adds the measured ones).
SWITCH_COST_METRICS = ("macs", "params")


@dataclasses.dataclass(frozen=True)
class Cost:
    params: int = 0
    macs: int = 0

    def __add__(self, other):
        return Cost(self.params + other.params, self.macs + other.macs)


def layer_cost(layer):
    """Parameters and MACs of one called layer, from its rule (``Rule.cost``).

    Raises ``rules.UnsupportedLayerError`` for a layer type without a rule.
    """
    return Cost(*rules.rule_of(layer).cost(layer))


def count_model(model):
    """Total ``Cost`` of a functional model (every layer once, nested models included)."""
    total = Cost()
    for layer in model.layers:
        total = total + (count_model(layer) if isinstance(layer, keras.Model) else layer_cost(layer))
    return total


def switch_cost(layer, metric="macs"):
    """Cost of one input channel of a switched conv: the kernel slice ``W[:, :, c, :]``."""
    if metric not in SWITCH_COST_METRICS:
        raise ValueError(f"metric must be one of {SWITCH_COST_METRICS}. Received: metric={metric!r}")
    per_channel_params = layer.filters * layer.kernel_size[0] * layer.kernel_size[1]
    if metric == "params":
        return per_channel_params
    return per_channel_params * spatial_size(layer.output.shape)


def switch_cost_vector(switched_layers, metric="macs"):
    """Cost of every switch, concatenated in layer order: shape ``(sum of in_channels,)``.

    The budget and sharing terms are weighted sums of the concatenated gates with this vector.
    """
    return np.concatenate(
        [np.full(layer.switches.shape[-1], switch_cost(layer, metric), dtype=np.float64) for layer in switched_layers]
    )


# -- models that share layers (the union-pruned multi-domain model) -----------------------
# A ChannelMask holds one bit per channel: 32 of them count as one (float32) parameter.
BITS_PER_PARAM = 32
PARTS = ("switched", "unswitched", "heads")


def unique_layers(models):
    """Every layer of ``models`` (a model, a list or a dict of models) once, in first-seen order.

    Nested models are flattened; a layer object that several models call is listed once, which
    is how the union-pruned model stores its shared convolutions.
    """
    if isinstance(models, keras.Model):
        models = [models]
    elif isinstance(models, dict):
        models = list(models.values())
    seen = {}
    stack = [layer for model in models for layer in model.layers][::-1]
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers[::-1])
        elif id(layer) not in seen:
            seen[id(layer)] = layer
    return list(seen.values())


def count_layers(layers):
    """Total ``Cost`` of ``layers``, each object counted once."""
    total = Cost()
    for layer in {id(layer): layer for layer in layers}.values():
        total = total + layer_cost(layer)
    return total


def count_models(models):
    """``Cost`` of models that may share layers: every shared layer counted once."""
    return count_layers(unique_layers(models))


def mask_bits(models):
    """Bits of the fixed 0/1 channel masks (``ChannelMask``) in ``models``: one per channel."""
    masks = [layer for layer in unique_layers(models) if isinstance(layer, bap_layers.ChannelMask)]
    return sum(len(layer.mask) for layer in masks)


def cost_by_part(layers, switched_names):
    """``{part: Cost}`` over ``PARTS`` for ``layers`` (each object once), each layer's part
    from its rule (``Rule.part``): ``"switched"`` (a conv the network switches, found by
    name), ``"heads"`` (Dense or DomainHeads) or ``"unswitched"`` (everything else)."""
    parts = {part: Cost() for part in PARTS}
    for layer in {id(layer): layer for layer in layers}.values():
        part = rules.rule_of(layer).part(layer, switched_names)
        parts[part] = parts[part] + layer_cost(layer)
    return parts


def backbone_layers(network):
    """The switched network's backbone layers: everything but the heads.

    Costed as the single-domain backbone: a switched conv counts its whole kernel (switches
    are not parameters of the backbone) and a DomainBatchNormalization one domain's BN.
    """
    return [layer for layer in unique_layers(network) if not isinstance(layer, bap_layers.DomainHeads)]
