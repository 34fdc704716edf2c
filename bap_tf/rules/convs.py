"""Convolutions: the layers that start a new channel space and carry the switches."""

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf.rules.base import Rule, copy_layer, spatial_size, unsupported

GROUPED_ADVICE = (
    "A grouped convolution (ResNeXt, RegNet) ties channels within its groups, which bap_tf does "
    "not model; use a backbone without grouped convolutions"
)
MULTIPLIER_ADVICE = (
    "A depth multiplier gives each input channel several output channels, which bap_tf does not "
    "model; use depth_multiplier=1"
)


def _conv_cost(kernel_shape, filters, use_bias, output_shape):
    kernel = int(np.prod(kernel_shape))
    return kernel + (filters if use_bias else 0), kernel * spatial_size(output_shape)


def switch_conv(layer, x, switcher, stem):
    """``layer`` (a built Conv2D) applied to ``x`` in the switched network: a frozen copy for
    the stem, else a frozen SwitchedConv2D with its kernel and bias."""
    if stem:
        new = copy_layer(layer, trainable=False)
        outputs = new(x)
        new.set_weights(layer.get_weights())
        return outputs
    new = bap_layers.SwitchedConv2D(
        filters=layer.filters, kernel_size=layer.kernel_size, num_domains=switcher.num_domains,
        strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
        use_bias=layer.use_bias, activation=layer.activation, switch_init=switcher.switch_init,
        name=layer.name,
    )
    outputs = new(x, switcher.domain)
    new.kernel.assign(layer.kernel)
    if layer.use_bias:
        new.bias.assign(layer.bias)
    return outputs


class ConvRule(Rule):
    """Plain Conv2D of the backbone and the SwitchedConv2D it becomes."""

    types = (keras.layers.Conv2D, bap_layers.SwitchedConv2D)
    passes_image = False

    def check(self, layer, call=None):
        """Refused: Conv2D subclasses, grouped convolutions."""
        if isinstance(layer, keras.layers.Conv2D):
            if type(layer) is not keras.layers.Conv2D:
                raise unsupported(layer, "a subclass of Conv2D, whose call may differ", "Use plain Conv2D layers")
            if layer.groups != 1:
                raise unsupported(layer, f"grouped convolution (groups={layer.groups})", GROUPED_ADVICE)

    def switch(self, node, switcher):
        """Frozen Conv2D if it reads the image through no conv (the RGB stem); else a frozen
        SwitchedConv2D, one switch per input channel and domain."""
        return switch_conv(node.layer, switcher.inputs(node)[0], switcher, stem=switcher.reads_image(node))

    def couple(self, node, deps):
        """New channel space of its filters. Reads its input without tying it: a switched conv
        reads any subset of the input's channels (a gather picks them); a plain conv reads all,
        so its input stays whole."""
        space = deps.input_space(node)
        deps.read(node, space)
        if not isinstance(node.layer, bap_layers.SwitchedConv2D):
            deps.pin(space, f"read whole by unswitched conv '{node.name}'")
        return deps.new_space(node)

    def rebuild(self, node, walk):
        """Conv2D with filters = kept output channels and kernel[:, :, reads, kept] (zero rows
        where the plan reads a dropped channel anyway); a ChannelGather first where it reads a
        strict subset of its input's kept channels (a slice when they are consecutive), and in
        the union model the domain's ChannelMask where the domain reads fewer."""
        layer, plan = node.layer, walk.plan
        x = walk.inputs(node)[0]
        reads, available = plan.reads[node.name], plan.channels(walk.input_name(node))
        if not np.array_equal(reads, available):
            position = {channel: index for index, channel in enumerate(available.tolist())}
            positions = [position[channel] for channel in reads.tolist()]
            gather = f"{node.name}_gather"
            x = walk.shared(gather, lambda: (bap_layers.ChannelGather(positions, name=gather), None), x)
        mask = walk.masks.get(node.name)
        if mask is not None:
            mask_name = f"{walk.prefix}_{node.name}_mask"
            x = walk.own(lambda: (bap_layers.ChannelMask(mask.tolist(), name=mask_name), None), x)
        return walk.shared(node.name, lambda: self._sliced(layer, plan, walk), x)

    def _sliced(self, layer, plan, walk):
        reads, outputs = plan.reads[layer.name], plan.channels(layer.name)
        # By attribute, not get_weights(): a switched conv lists its trainable switches first.
        kernel = walk.array(layer, "kernel")[:, :, reads, :][..., outputs]
        zero_rows = plan.zero_rows.get(layer.name)
        if zero_rows is not None:
            kernel = np.where(zero_rows[None, None, :, None], 0.0, kernel).astype(kernel.dtype)
        weights = [kernel] + ([walk.array(layer, "bias")[outputs]] if layer.use_bias else [])
        if isinstance(layer, bap_layers.SwitchedConv2D):
            new = keras.layers.Conv2D(
                filters=len(outputs), kernel_size=layer.kernel_size, strides=layer.strides,
                padding=layer.padding, dilation_rate=layer.dilation_rate, use_bias=layer.use_bias,
                activation=keras.activations.serialize(layer.activation), trainable=False,
                dtype=layer.dtype_policy, name=layer.name,
            )
        else:
            new = copy_layer(layer, filters=len(outputs), trainable=False)
        return new, weights

    def cost(self, layer):
        """Kernel and bias as parameters; H_out * W_out * kernel size MACs."""
        return _conv_cost(layer.kernel.shape, layer.filters, layer.use_bias, layer.output.shape)

    def part(self, layer, switched_names):
        """Switched if the network switches it (by name: a reduced model's conv keeps it)."""
        return "switched" if layer.name in switched_names else "unswitched"

    def keras2(self, node, rebuild):
        """A plain Conv2D's tf_keras namesake, same configuration and weights."""
        layer = node.layer
        if not isinstance(layer, keras.layers.Conv2D):
            return super().keras2(node, rebuild)
        return rebuild.call(rebuild.layers.Conv2D(
            layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
            dilation_rate=layer.dilation_rate, groups=layer.groups, activation=rebuild.activation(layer),
            use_bias=layer.use_bias, name=layer.name,
        ), node)


class DepthwiseRule(Rule):
    """DepthwiseConv2D with depth_multiplier=1: channel-wise, so it follows its input."""

    types = (keras.layers.DepthwiseConv2D,)
    passes_image = False

    def check(self, layer, call=None):
        """Refused: depth_multiplier other than 1."""
        if layer.depth_multiplier != 1:
            raise unsupported(
                layer, f"depthwise conv with depth_multiplier={layer.depth_multiplier}, expected 1", MULTIPLIER_ADVICE
            )

    def switch(self, node, switcher):
        """Frozen copy, unswitched: its channels are its producer's, switched by its readers."""
        return switcher.call(copy_layer(node.layer, trainable=False), node, weights_from=node.layer)

    def rebuild(self, node, walk):
        """kernel[:, :, kept, :] and bias[kept] of its (shared) channel space."""
        channels = walk.plan.channels(node.name)

        def factory():
            weights = [w[:, :, channels, :] if w.ndim == 4 else w[channels] for w in walk.weights(node.layer)]
            return copy_layer(node.layer), weights

        return walk.shared(node.name, factory, walk.inputs(node)[0])

    def cost(self, layer):
        """Kernel and bias as parameters; H_out * W_out * kernel size MACs."""
        bias = int(layer.bias.shape[0]) if layer.use_bias else 0
        params, macs = _conv_cost(layer.kernel.shape, 0, False, layer.output.shape)
        return params + bias, macs

    def keras2(self, node, rebuild):
        """Its tf_keras namesake, same configuration and weights."""
        layer = node.layer
        return rebuild.call(rebuild.layers.DepthwiseConv2D(
            layer.kernel_size, strides=layer.strides, padding=layer.padding, depth_multiplier=layer.depth_multiplier,
            dilation_rate=layer.dilation_rate, activation=rebuild.activation(layer), use_bias=layer.use_bias,
            name=layer.name,
        ), node)


class SeparableRule(Rule):
    """SeparableConv2D (Xception): a depthwise conv, then a 1x1 conv that mixes channels."""

    types = (keras.layers.SeparableConv2D,)
    passes_image = False

    def check(self, layer, call=None):
        """Refused: depth_multiplier other than 1."""
        if layer.depth_multiplier != 1:
            raise unsupported(
                layer, f"separable conv with depth_multiplier={layer.depth_multiplier}, expected 1", MULTIPLIER_ADVICE
            )

    def switch(self, node, switcher):
        """Split into a frozen DepthwiseConv2D '{name}_depthwise' (no bias) and a 1x1 conv
        '{name}' (bias, activation) switched like any conv; from then on their rules apply."""
        layer = node.layer
        depthwise = keras.layers.DepthwiseConv2D(
            layer.kernel_size, strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
            use_bias=False, trainable=False, dtype=layer.dtype_policy, name=f"{layer.name}_depthwise",
        )
        x = depthwise(switcher.inputs(node)[0])
        depthwise.set_weights([layer.depthwise_kernel.numpy()])
        pointwise = keras.layers.Conv2D(
            layer.filters, 1, use_bias=layer.use_bias, activation=layer.activation,
            dtype=layer.dtype_policy, name=layer.name,
        )
        pointwise(x)  # builds the kernel the switched conv copies
        pointwise.set_weights([layer.pointwise_kernel.numpy()] + ([layer.bias.numpy()] if layer.use_bias else []))
        return switch_conv(pointwise, x, switcher, stem=switcher.reads_image(node))

    def couple(self, node, deps):
        """Never reached: the switched network holds its two halves instead."""
        raise self._split(node.layer)

    def rebuild(self, node, walk):
        """Never reached: the switched network holds its two halves instead."""
        raise self._split(node.layer)

    def _split(self, layer):
        return unsupported(
            layer, "a SeparableConv2D inside a switched network", "Build the network with build_switched_network"
        )

    def cost(self, layer):
        """Depthwise and pointwise kernels and the bias; their MACs at the output's size."""
        depthwise = int(np.prod(layer.depthwise_kernel.shape))
        pointwise = int(np.prod(layer.pointwise_kernel.shape))
        bias = layer.filters if layer.use_bias else 0
        return depthwise + pointwise + bias, (depthwise + pointwise) * spatial_size(layer.output.shape)
