"""The one cost model of bap-tf: parameters and multiply-accumulates from layer shapes.

The budget term, the sharing losses, the pruner's reports and the metrics all read their
numbers from here, so "kept 50% of the MACs" means the same thing everywhere.

Conventions: a convolution costs ``H_out * W_out * C_out * k_h * k_w * C_in / groups`` MACs
and its stored weights as parameters; a dense layer ``in * out`` MACs. A BatchNormalization
folds into the preceding convolution at inference, so it costs no MACs and one bias per
channel as parameters. Everything else (activations, adds, pooling, gathers, masks) is free.
"""

import dataclasses

import keras
import numpy as np

from bap_tf import layers as bap_layers

BUDGET_METRICS = ("macs", "params")


@dataclasses.dataclass(frozen=True)
class Cost:
    params: int = 0
    macs: int = 0

    def __add__(self, other):
        return Cost(self.params + other.params, self.macs + other.macs)


def _spatial_size(shape):
    """Product of the spatial dimensions of an (N, ..., C) shape."""
    return int(np.prod([d for d in shape[1:-1]])) if len(shape) > 2 else 1


def layer_cost(layer):
    """Parameters and MACs of one called layer, read from its weights and output shape."""
    if isinstance(layer, (keras.layers.Conv2D, bap_layers.SwitchedConv2D)):
        kernel_size = int(np.prod(layer.kernel.shape))
        bias = layer.filters if layer.use_bias else 0
        macs = kernel_size * _spatial_size(layer.output.shape)
        return Cost(kernel_size + bias, macs)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel_size = int(np.prod(layer.kernel.shape))
        bias = int(layer.bias.shape[0]) if layer.use_bias else 0
        return Cost(kernel_size + bias, kernel_size * _spatial_size(layer.output.shape))
    if isinstance(layer, keras.layers.Dense):
        kernel_size = int(np.prod(layer.kernel.shape))
        bias = layer.units if layer.use_bias else 0
        return Cost(kernel_size + bias, kernel_size * _spatial_size(layer.output.shape))
    if isinstance(layer, (keras.layers.BatchNormalization, bap_layers.DomainBatchNormalization)):
        return Cost(int(layer.output.shape[-1]), 0)
    if isinstance(layer, bap_layers.DomainHeads):
        total = sum(layer.num_classes)
        features = int(layer.kernel.shape[0])
        return Cost(features * total + total, features * total)
    return Cost()


def count_model(model):
    """Total ``Cost`` of a functional model (every layer once, nested models included)."""
    total = Cost()
    for layer in model.layers:
        total = total + (count_model(layer) if isinstance(layer, keras.Model) else layer_cost(layer))
    return total


def switch_cost(layer, metric="macs"):
    """Cost of one input channel of a switched conv: the kernel slice ``W[:, :, c, :]``."""
    if metric not in BUDGET_METRICS:
        raise ValueError(f"budget_metric must be one of {BUDGET_METRICS}. Received: budget_metric={metric!r}")
    per_channel_params = layer.filters * layer.kernel_size[0] * layer.kernel_size[1]
    if metric == "params":
        return per_channel_params
    return per_channel_params * _spatial_size(layer.output.shape)


def switch_cost_vector(switched_layers, metric="macs"):
    """Cost of every switch, concatenated in layer order: shape ``(sum of in_channels,)``.

    The budget and sharing terms are weighted sums of the concatenated gates with this vector.
    """
    return np.concatenate(
        [np.full(layer.switches.shape[-1], switch_cost(layer, metric), dtype=np.float64) for layer in switched_layers]
    )
