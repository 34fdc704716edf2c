"""Turns a pre-trained Keras functional CNN into a multi-domain switched network.

The result is a functional model with inputs ``{"image": (N, H, W, C), "domain": (N,) int32}``
and output padded logits ``(N, max num_classes)`` (see ``layers.DomainHeads``). The rules:

- a Conv2D that reads the image (through no other convolution) stays a frozen Conv2D: the
  RGB stem carries no switches;
- every other Conv2D becomes a frozen ``SwitchedConv2D`` with per-domain switches;
- DepthwiseConv2D stays frozen and unswitched: its channels follow its producer's;
- every BatchNormalization becomes a ``DomainBatchNormalization`` initialised from it;
- the backbone's output (a feature vector) feeds per-domain ``DomainHeads``;
- shape-only and stateless layers are copied; any other layer is refused by name.

Layer names are kept, so a switched layer can be traced back to its backbone layer.
"""

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf.domains import as_domain_specs
from bap_tf.graph import LayerGraph

# Layers copied as they are: they neither mix channels nor hold trainable state.
PASS_THROUGH_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.Add,
    keras.layers.ZeroPadding2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Dropout,
    keras.layers.Rescaling,
    keras.layers.Normalization,
)
HEADS_NAME = "heads"


def _copy_layer(layer, **overrides):
    config = {**layer.get_config(), **overrides}
    return layer.__class__.from_config(config)


def _unsupported(layer, why):
    names = ", ".join(cls.__name__ for cls in PASS_THROUGH_LAYERS)
    return ValueError(
        f"Layer '{layer.name}' ({type(layer).__name__}) is not supported by bap_tf: {why}. "
        f"Supported: Conv2D, DepthwiseConv2D, BatchNormalization, {names}."
    )


def _check_channels_last(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise _unsupported(layer, "only channels_last is supported")


def build_switched_network(backbone, domains, switch_init=1e-2):
    """Multi-domain switched network on top of ``backbone``'s frozen weights.

    Args:
      backbone: a functional model from one image input to one feature vector ``(N, F)``
        (e.g. built with ``pooling="avg"``).
      domains: ``DomainSpec``s (or ``(name, num_classes)`` pairs), in domain-index order.
      switch_init: initial real value of every switch (positive: all channels on).
    """
    domains = as_domain_specs(domains)
    num_domains = len(domains)
    graph = LayerGraph(backbone)
    if len(graph.input_names) != 1 or len(graph.output_names) != 1:
        raise ValueError(
            "The backbone must have one image input and one feature output. "
            f"Received: inputs={graph.input_names}, outputs={graph.output_names}"
        )
    image_layer = graph[graph.input_names[0]].layer
    image = keras.Input(shape=image_layer.output.shape[1:], name="image")
    domain = keras.Input(shape=(), dtype="int32", name="domain")

    tensors = {graph.input_names[0]: image}
    reads_image = {graph.input_names[0]}  # nodes whose output is the image with no conv applied
    copies = []  # (backbone layer, new layer) whose weights must be copied once built
    for node in graph:
        if node.name in tensors:
            continue
        layer = node.layer
        args = [tensors[name] for name in node.inputs]
        from_image = all(name in reads_image for name in node.inputs)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _check_channels_last(layer)
            new = _copy_layer(layer, trainable=False)
            tensors[node.name] = new(*args)
            copies.append((layer, new))
        elif isinstance(layer, keras.layers.Conv2D):
            _check_channels_last(layer)
            if layer.groups != 1:
                raise _unsupported(layer, f"grouped convolution (groups={layer.groups})")
            if type(layer) is not keras.layers.Conv2D:
                raise _unsupported(layer, "only plain 2D convolutions are supported")
            if from_image:
                new = _copy_layer(layer, trainable=False)
                tensors[node.name] = new(*args)
            else:
                new = bap_layers.SwitchedConv2D(
                    filters=layer.filters, kernel_size=layer.kernel_size, num_domains=num_domains,
                    strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
                    use_bias=layer.use_bias, activation=layer.activation, switch_init=switch_init,
                    name=layer.name,
                )
                tensors[node.name] = new(*args, domain)
            copies.append((layer, new))
        elif isinstance(layer, keras.layers.BatchNormalization):
            if layer.axis not in (-1, len(layer.output.shape) - 1):
                raise _unsupported(layer, f"BatchNormalization over axis {layer.axis}")
            new = bap_layers.DomainBatchNormalization(
                num_domains, momentum=layer.momentum, epsilon=layer.epsilon,
                center=layer.center, scale=layer.scale, name=layer.name,
            )
            tensors[node.name] = new(*args, domain)
            new.set_from_batchnorm(layer)
        elif isinstance(layer, PASS_THROUGH_LAYERS):
            new = _copy_layer(layer)
            tensors[node.name] = new(args if isinstance(layer, keras.layers.Add) else args[0])
            if layer.weights:
                copies.append((layer, new))
            if from_image:
                reads_image.add(node.name)
        else:
            raise _unsupported(layer, "no rule for this layer type")

    features = tensors[graph.output_names[0]]
    if len(features.shape) != 2:
        raise ValueError(
            "The backbone must end in a feature vector (N, F); build it with pooling='avg'. "
            f"Received: output shape {tuple(features.shape)} from layer '{graph.output_names[0]}'"
        )
    if HEADS_NAME in graph.nodes:
        raise ValueError(f"The backbone already has a layer named '{HEADS_NAME}'; rename it.")
    logits = bap_layers.DomainHeads([d.num_classes for d in domains], name=HEADS_NAME)(features, domain)
    for old, new in copies:
        if isinstance(new, bap_layers.SwitchedConv2D):
            new.kernel.assign(old.kernel)
            if old.use_bias:
                new.bias.assign(old.bias)
        else:
            new.set_weights(old.get_weights())
    return keras.Model({"image": image, "domain": domain}, logits, name=f"{backbone.name}_switched")


def switched_layers(network):
    """The network's ``SwitchedConv2D`` layers in graph order."""
    return [layer for layer in network.layers if isinstance(layer, bap_layers.SwitchedConv2D)]


def gate_values(network):
    """Binary gates of every switched layer as numpy bool arrays ``(num_domains, in_channels)``."""
    return {layer.name: np.asarray(layer.switches.numpy() > 0) for layer in switched_layers(network)}
