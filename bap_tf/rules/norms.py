"""Per-channel parameters: BatchNorm, input normalization stems, the heads and Dense layers."""

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf.rules.base import Rule, copy_layer, output_channels, unsupported


class BatchNormRule(Rule):
    """BatchNormalization of the backbone and the DomainBatchNormalization it becomes."""

    types = (keras.layers.BatchNormalization, bap_layers.DomainBatchNormalization)
    passes_image = False

    def check(self, layer, call=None):
        """Refused: normalization over another axis than the channels."""
        if isinstance(layer, keras.layers.BatchNormalization) and layer.axis not in (-1, len(layer.output.shape) - 1):
            raise unsupported(
                layer, f"BatchNormalization over axis {layer.axis}, expected the last axis",
                "Build the backbone channels_last",
            )

    def switch(self, node, switcher):
        """DomainBatchNormalization: the backbone's statistics and affine copied to every domain."""
        layer = node.layer
        new = bap_layers.DomainBatchNormalization(
            switcher.num_domains, momentum=layer.momentum, epsilon=layer.epsilon,
            center=layer.center, scale=layer.scale, name=layer.name,
        )
        outputs = new(switcher.inputs(node)[0], switcher.domain)
        new.set_from_batchnorm(layer)
        return outputs

    def rebuild(self, node, walk):
        """gamma/beta/moving statistics [kept]; a DomainBatchNormalization gives domain d's row
        as a plain BatchNormalization '{domain}_{name}', one per domain."""
        layer, channels = node.layer, walk.plan.channels(node.name)
        x = walk.inputs(node)[0]
        if isinstance(layer, bap_layers.DomainBatchNormalization):
            return walk.own(lambda: self._domain_row(layer, channels, walk), x)
        return walk.shared(node.name, lambda: (copy_layer(layer), [w[channels] for w in walk.weights(layer)]), x)

    def _domain_row(self, layer, channels, walk):
        new = keras.layers.BatchNormalization(
            axis=-1, momentum=layer.momentum, epsilon=layer.epsilon, center=layer.center,
            scale=layer.scale, dtype=layer.dtype_policy, name=f"{walk.prefix}_{layer.name}",
        )
        # Plain BN's weight order; it has no gamma without scale and no beta without center.
        order = ["gamma"] * layer.scale + ["beta"] * layer.center + ["moving_mean", "moving_variance"]
        return new, [walk.array(layer, key)[walk.domain, channels] for key in order]

    def cost(self, layer):
        """Folds into the conv before it: no MACs, one bias per channel as parameters."""
        return output_channels(layer), 0

    def fine_tuned(self, layer, layers):
        """Always: also when only the BatchNorms and heads are (``"batchnorm_heads"``)."""
        return True

    def keras2(self, node, rebuild):
        """A plain BatchNormalization's tf_keras namesake, same configuration and statistics."""
        layer = node.layer
        if not isinstance(layer, keras.layers.BatchNormalization):
            return super().keras2(node, rebuild)
        return rebuild.call(rebuild.layers.BatchNormalization(
            axis=layer.axis, momentum=layer.momentum, epsilon=layer.epsilon, center=layer.center,
            scale=layer.scale, name=layer.name,
        ), node)


def batchnorm_parameters(batchnorm):
    """gamma, beta, mean, variance of a BatchNormalization as float64 arrays (gamma 1 without
    ``scale``, beta 0 without ``center``): what folding it elsewhere needs."""
    mean = np.asarray(batchnorm.moving_mean.numpy(), dtype="float64")
    variance = np.asarray(batchnorm.moving_variance.numpy(), dtype="float64")
    gamma = np.ones_like(mean) if batchnorm.gamma is None else np.asarray(batchnorm.gamma.numpy(), "float64")
    beta = np.zeros_like(mean) if batchnorm.beta is None else np.asarray(batchnorm.beta.numpy(), "float64")
    return gamma, beta, mean, variance


class ConstantsRule(Rule):
    """Input stems with constants in their config: Normalization, Rescaling."""

    types = (keras.layers.Normalization, keras.layers.Rescaling)

    def couple(self, node, deps):
        """Same channel space as its input; kept whole when its constants are per channel
        (they live in the config, which is not sliced)."""
        space = deps.input_space(node)
        layer = node.layer
        if isinstance(layer, keras.layers.Normalization) or np.ndim(layer.scale) > 0 or np.ndim(layer.offset) > 0:
            deps.pin(space, f"per-channel constants in '{node.name}'")
        return space

    def keras2(self, node, rebuild):
        """A 1x1 DepthwiseConv2D computing the same ``x * scale + offset`` per channel: tfmot
        quantizes it, whereas a Rescaling's constants stay float under QAT and leave a
        DEQUANTIZE/QUANTIZE pair at the int8 model's input."""
        layer = node.layer
        channels = int(layer.input.shape[-1])
        if isinstance(layer, keras.layers.Rescaling):
            scale, offset = np.float64(layer.scale), np.float64(layer.offset)
        else:
            scale, offset = _normalization_affine(layer)
        scale, offset = (np.broadcast_to(v, (channels,)).astype("float32") for v in (scale, offset))
        new = rebuild.layers.DepthwiseConv2D(1, use_bias=True, name=layer.name)
        return rebuild.call(new, node, [scale.reshape(1, 1, channels, 1), offset])


def _normalization_affine(layer):
    """``(scale, offset)`` of a Normalization over the last axis: ``(x - mean) / std`` (or
    ``x * std + mean`` with ``invert``), ``std`` no smaller than Keras' epsilon, as it computes."""
    if tuple(layer.axis) not in ((-1,), (len(layer.input.shape) - 1,)):
        raise unsupported(layer, f"Normalization over axis {layer.axis} in a quantized model", "Normalize the channels")
    mean, variance = (np.asarray(keras.ops.convert_to_numpy(v), np.float64).reshape(-1)
                      for v in (layer.mean, layer.variance))
    std = np.maximum(np.sqrt(variance), keras.config.epsilon())
    return (std, mean) if layer.invert else (1.0 / std, -mean / std)


class HeadsRule(Rule):
    """DomainHeads: the per-domain classifiers switching adds on top of the features."""

    types = (bap_layers.DomainHeads,)
    passes_image = False

    def switch(self, node, switcher):
        """Never reached: switching adds the heads itself."""
        raise unsupported(node.layer, "a backbone that already ends in DomainHeads", "Pass the plain backbone")

    def couple(self, node, deps):
        """Reads the whole feature vector, which stays whole (in any stored order: its rows follow
        the plan's); classes are not pruned."""
        deps.pin(deps.input_space(node), f"read whole by heads '{node.name}'", fixes_order=False)

    def rebuild(self, node, walk):
        """Domain d's columns of kernel and bias as a Dense '{domain}_head', its rows in the order
        the plan stores the features."""
        layer = node.layer

        def factory():
            columns = layer.domain_slice(walk.domain)
            rows = walk.plan.channels(walk.input_name(node))
            new = keras.layers.Dense(layer.num_classes[walk.domain], dtype=layer.dtype_policy,
                                     name=f"{walk.prefix}_head")
            return new, [walk.array(layer, "kernel")[rows][:, columns], walk.array(layer, "bias")[columns]]

        return walk.own(factory, walk.inputs(node)[0])

    def cost(self, layer):
        """Every domain's kernel columns and biases; features x classes MACs."""
        total = sum(layer.num_classes)
        features = int(layer.kernel.shape[0])
        return features * total + total, features * total

    def part(self, layer, switched_names):
        """Heads."""
        return "heads"

    def fine_tuned(self, layer, layers):
        """Always."""
        return True


class DenseRule(Rule):
    """Dense: a reduced model's head; inside a backbone it would mix every channel."""

    types = (keras.layers.Dense,)
    passes_image = False

    def check(self, layer, call=None):
        """Refused inside a network: it mixes every channel."""
        raise unsupported(
            layer, "a Dense layer inside the network (only the DomainHeads may be dense)",
            "Build the backbone with include_top=False and pooling='avg'",
        )

    def cost(self, layer):
        """Kernel and bias as parameters; kernel size MACs per position."""
        kernel = int(np.prod(layer.kernel.shape))
        positions = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 else 1
        return kernel + (layer.units if layer.use_bias else 0), kernel * positions

    def part(self, layer, switched_names):
        """Heads (a reduced model's domain head)."""
        return "heads"

    def fine_tuned(self, layer, layers):
        """Always."""
        return True

    def keras2(self, node, rebuild):
        """Its tf_keras namesake, same configuration and weights."""
        layer = node.layer
        return rebuild.call(rebuild.layers.Dense(
            layer.units, activation=rebuild.activation(layer), use_bias=layer.use_bias, name=layer.name
        ), node)
