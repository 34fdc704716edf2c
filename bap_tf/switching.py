"""Turns a pre-trained Keras functional CNN into a multi-domain switched network.

The result is a functional model with inputs ``{"image": (N, H, W, C), "domain": (N,) int32}``
and output padded logits ``(N, max num_classes)`` (see ``layers.DomainHeads``). Each backbone
layer or operation is converted by its rule (``bap_tf.rules``; ``describe_rules()`` lists what
each does): in short, convs become frozen ``SwitchedConv2D`` with per-domain switches except
the RGB stem, BatchNorms become ``DomainBatchNormalization``, everything else is copied; the
backbone's feature vector feeds per-domain ``DomainHeads``. A layer with no rule is refused by
name before anything is built.

Layer names are kept, so a switched layer can be traced back to its backbone layer.
"""

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf import rules
from bap_tf.domains import as_domain_specs
from bap_tf.graph import LayerGraph
from bap_tf.rules.base import set_weights

HEADS_NAME = "heads"


class Switcher:
    """What a rule's ``switch`` needs: the new tensors so far, the domain input and settings."""

    def __init__(self, image_name, image, domain, num_domains, switch_init):
        self.tensors = {image_name: image}
        self.domain = domain
        self.num_domains = num_domains
        self.switch_init = switch_init
        self._reads_image = {image_name}  # nodes whose output is the image with no conv applied

    def inputs(self, node):
        return [self.tensors[name] for name in node.inputs]

    def reads_image(self, node):
        """Whether ``node`` reads the image through no convolution."""
        return all(name in self._reads_image for name in node.inputs)

    def call(self, new, node, weights_from=None):
        """Calls ``new`` as the backbone called ``node``; copies the old weights once built."""
        args, kwargs = node.arguments(self.tensors)
        outputs = new(*args, **kwargs)
        if weights_from is not None and getattr(weights_from, "weights", None):
            set_weights(new, weights_from.get_weights())
        return outputs

    def add(self, node, rule):
        self.tensors[node.name] = rule.switch(node, self)
        if rule.passes_image and self.reads_image(node):
            self._reads_image.add(node.name)


def build_switched_network(backbone, domains, switch_init=1e-2):
    """Multi-domain switched network on top of ``backbone``'s frozen weights.

    Args:
      backbone: a functional model from one image input to one feature vector ``(N, F)``
        (e.g. built with ``pooling="avg"``).
      domains: ``DomainSpec``s (or ``(name, num_classes)`` pairs), in domain-index order.
      switch_init: initial real value of every switch (positive: all channels on).

    Raises ``rules.UnsupportedLayerError`` naming the first layer without a rule, before
    building anything.
    """
    domains = as_domain_specs(domains)
    graph = LayerGraph(backbone)
    if len(graph.input_names) != 1 or len(graph.output_names) != 1:
        raise ValueError(
            "The backbone must have one image input and one feature output. "
            f"Received: inputs={graph.input_names}, outputs={graph.output_names}"
        )
    if HEADS_NAME in graph.nodes:
        raise ValueError(f"The backbone already has a layer named '{HEADS_NAME}'; rename it.")
    image_name = graph.input_names[0]
    nodes = [node for node in graph if node.name != image_name]
    node_rules = [rules.rule_for(node.layer, node.call) for node in nodes]  # refuse before building

    image = keras.Input(shape=graph[image_name].layer.output.shape[1:], name="image")
    domain = keras.Input(shape=(), dtype="int32", name="domain")
    switcher = Switcher(image_name, image, domain, len(domains), switch_init)
    for node, rule in zip(nodes, node_rules):
        switcher.add(node, rule)

    features = switcher.tensors[graph.output_names[0]]
    if len(features.shape) != 2:
        raise ValueError(
            "The backbone must end in a feature vector (N, F); build it with pooling='avg'. "
            f"Received: output shape {tuple(features.shape)} from layer '{graph.output_names[0]}'"
        )
    logits = bap_layers.DomainHeads([d.num_classes for d in domains], name=HEADS_NAME)(features, domain)
    return keras.Model({"image": image, "domain": domain}, logits, name=f"{backbone.name}_switched")


def switched_layers(network):
    """The network's ``SwitchedConv2D`` layers in graph order."""
    return [layer for layer in network.layers if isinstance(layer, bap_layers.SwitchedConv2D)]


def gate_values(network):
    """Binary gates of every switched layer as numpy bool arrays ``(num_domains, in_channels)``."""
    return {layer.name: np.asarray(layer.switches.numpy() > 0) for layer in switched_layers(network)}
