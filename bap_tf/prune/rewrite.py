"""The mechanical rebuild: a switched network becomes plain Keras models of sliced layers.

Every decision comes from ``dependency.DependencyGraph`` (which channels each group keeps, which
channels each conv reads); this module only walks the graph in order and, per node, builds the
standard layer from the old one's config with the kept channels and copies the sliced weights:

- ``SwitchedConv2D`` / ``Conv2D`` -> ``Conv2D`` (filters = kept output channels, kernel sliced
  on both channel axes), preceded by ``ChannelGather`` where it reads a strict subset of a
  stream that keeps more, and in the union model by the domain's ``ChannelMask`` where the
  domain uses a strict subset of the conv's kept inputs;
- ``DepthwiseConv2D`` -> the same, sliced; ``DomainBatchNormalization`` row d ->
  ``BatchNormalization`` named ``{domain}_{name}``; ``DomainHeads`` columns of d -> ``Dense``
  named ``{domain}_head``; every other layer is copied from its config.

Two products: ``union_models()``, one model per domain that call the same (shared) conv layer
objects, and ``domain_model(d)``, physically pruned to domain d's own gates (no masks).
"""

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf.domains import as_domain_specs, domain_index
from bap_tf.prune import dependency as dep
from bap_tf.switching import HEADS_NAME, gate_values


class Rewriter:
    """Builds the reduced models of one switched network; the dependency graph is read once.

    Args:
      network: the switched network (``switching.build_switched_network``).
      domains: its ``DomainSpec``s (or ``(name, num_classes)`` pairs) in domain-index order.
      gates: optional ``{switched conv: bool (num_domains, in_channels)}``; by default the
        network's own binarized switches (``switching.gate_values``).
    """

    def __init__(self, network, domains, gates=None):
        self.network = network
        self.domains = as_domain_specs(domains)
        self.dependency = dep.DependencyGraph(network)
        heads = [n.layer for n in self.dependency.nodes if isinstance(n.layer, bap_layers.DomainHeads)]
        if len(heads) != 1:
            raise ValueError(
                f"The network must end in one DomainHeads layer ('{HEADS_NAME}'). "
                f"Received: {len(heads)} DomainHeads layers"
            )
        self.heads = heads[0]
        counts = [d.num_classes for d in self.domains]
        if counts != list(self.heads.num_classes):
            raise ValueError(
                f"The domains' class counts must match the network's heads {self.heads.num_classes}. "
                f"Received: {counts}"
            )
        self.gates = self.dependency.check_gates(gate_values(network) if gates is None else gates)
        for name, value in self.gates.items():
            if value.shape[0] != len(self.domains):
                raise ValueError(
                    f"gates['{name}'] has {value.shape[0]} domain rows, expected {len(self.domains)}."
                )
        self._weights = {}

    @classmethod
    def from_model(cls, model, gates=None):
        """From a ``BudgetAwareModel`` (its ``.network`` and ``.domains``)."""
        return cls(model.network, model.domains, gates)

    @property
    def domain_names(self):
        return [d.name for d in self.domains]

    def domain_index(self, domain):
        return domain_index(self.domains, domain)

    # -- plans ----------------------------------------------------------------------------
    def union_plan(self):
        return self.dependency.plan(dep.union_keep(self.gates))

    def domain_plan(self, domain):
        return self.dependency.plan(dep.domain_keep(self.gates, self.domain_index(domain)))

    def union_masks(self, plan=None):
        """``{domain: {conv: 0/1 mask over the conv's read channels}}``, all-ones masks left out."""
        plan = self.union_plan() if plan is None else plan
        masks = {}
        for index, spec in enumerate(self.domains):
            masks[spec.name] = {}
            for name in self.dependency.switched:
                if name in plan.zeroed:
                    continue  # no domain reads it: the zero kernel slice already does the masking
                mask = self.gates[name][index][plan.reads[name]]
                if not mask.all():
                    masks[spec.name][name] = mask.astype("float32")
        return masks

    # -- products -------------------------------------------------------------------------
    def union_models(self):
        """``{domain: keras.Model}``, image -> logits ``(N, num_classes)``, sharing the conv layers.

        Convs, depthwise convs, gathers and stateless layers are one object per backbone
        layer, called by every domain's model; BatchNorms, masks and heads are per domain.
        """
        plan = self.union_plan()
        masks = self.union_masks(plan)
        shared = {}
        return {
            spec.name: self._build(plan, index, shared, masks[spec.name], name=spec.name)
            for index, spec in enumerate(self.domains)
        }

    def domain_model(self, domain):
        """Domain ``domain`` (name or index) alone, pruned to its own gates: no masks."""
        index = self.domain_index(domain)
        plan = self.domain_plan(index)
        return self._build(plan, index, {}, {}, name=f"{self.domains[index].name}_pruned")

    def domain_models(self):
        return {spec.name: self.domain_model(index) for index, spec in enumerate(self.domains)}

    # -- the walk -------------------------------------------------------------------------
    def _build(self, plan, domain, shared, masks, name):
        """One domain's functional model; layers found in ``shared`` are reused, new ones added."""
        prefix = self.domains[domain].name
        graph = self.dependency
        image_layer = graph.graph[graph.image_input].layer
        image = keras.Input(shape=image_layer.output.shape[1:], name="image")
        tensors = {graph.image_input: image}
        for node in graph.nodes:
            if node.name in tensors:
                continue
            layer, role = node.layer, graph.roles[node.name]
            args = [tensors[n] for n in graph.inputs[node.name]]
            if role == dep.CONV:
                x = args[0]
                reads, available = plan.reads[node.name], plan.channels(graph.inputs[node.name][0])
                if not np.array_equal(reads, available):
                    positions = np.searchsorted(available, reads).tolist()
                    gather = f"{node.name}_gather"
                    x = _call(shared, gather, lambda: (bap_layers.ChannelGather(positions, name=gather), None), x)
                if node.name in masks:
                    mask = bap_layers.ChannelMask(masks[node.name].tolist(), name=f"{prefix}_{node.name}_mask")
                    x = mask(x)
                tensors[node.name] = _call(shared, node.name, lambda: self._conv(layer, plan), x)
            elif isinstance(layer, bap_layers.DomainBatchNormalization):
                tensors[node.name] = _call(
                    {}, node.name, lambda: self._domain_batchnorm(layer, plan, domain, prefix), args[0]
                )
            elif isinstance(layer, bap_layers.DomainHeads):
                tensors[node.name] = _call({}, node.name, lambda: self._head(layer, domain, prefix), args[0])
            elif isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.BatchNormalization)):
                tensors[node.name] = _call(shared, node.name, lambda: self._sliced(layer, plan), args[0])
            else:
                operand = args if role in (dep.ADD, dep.CONCAT) else args[0]
                tensors[node.name] = _call(shared, node.name, lambda: self._copy(layer), operand)
        logits = tensors[graph.graph.output_names[0]]
        return keras.Model(image, logits, name=name)

    # -- one layer each -------------------------------------------------------------------
    def _numpy(self, layer):
        """The layer's weights as numpy arrays, read once per rewriter."""
        if layer.name not in self._weights:
            self._weights[layer.name] = [np.asarray(w) for w in layer.get_weights()]
        return self._weights[layer.name]

    def _array(self, layer, attribute):
        key = (layer.name, attribute)
        if key not in self._weights:
            self._weights[key] = np.asarray(getattr(layer, attribute).numpy())
        return self._weights[key]

    def _conv(self, layer, plan):
        reads, outputs = plan.reads[layer.name], plan.channels(layer.name)
        # By attribute, not get_weights(): a switched conv lists its trainable switches first.
        kernel = self._array(layer, "kernel")[:, :, reads, :][..., outputs]
        if layer.name in plan.zeroed:
            kernel = np.zeros_like(kernel)
        sliced = [kernel] + ([self._array(layer, "bias")[outputs]] if layer.use_bias else [])
        if isinstance(layer, bap_layers.SwitchedConv2D):
            new = keras.layers.Conv2D(
                filters=len(outputs), kernel_size=layer.kernel_size, strides=layer.strides,
                padding=layer.padding, dilation_rate=layer.dilation_rate, use_bias=layer.use_bias,
                activation=keras.activations.serialize(layer.activation), trainable=False,
                dtype=layer.dtype_policy, name=layer.name,
            )
        else:
            config = {**layer.get_config(), "filters": len(outputs), "trainable": False}
            new = keras.layers.Conv2D.from_config(config)
        return new, sliced

    def _sliced(self, layer, plan):
        channels = plan.channels(layer.name)
        # Depthwise kernel (kh, kw, C, 1): channels on axis 2; biases and BN vectors: axis 0.
        sliced = [w[:, :, channels, :] if w.ndim == 4 else w[channels] for w in self._numpy(layer)]
        return layer.__class__.from_config(layer.get_config()), sliced

    def _domain_batchnorm(self, layer, plan, domain, prefix):
        channels = plan.channels(layer.name)
        new = keras.layers.BatchNormalization(
            axis=-1, momentum=layer.momentum, epsilon=layer.epsilon, center=layer.center,
            scale=layer.scale, dtype=layer.dtype_policy, name=f"{prefix}_{layer.name}",
        )
        # Plain BN's weight order; it has no gamma without scale and no beta without center.
        order = ["gamma"] * layer.scale + ["beta"] * layer.center + ["moving_mean", "moving_variance"]
        return new, [self._array(layer, key)[domain, channels] for key in order]

    def _head(self, layer, domain, prefix):
        kernel, bias = self._array(layer, "kernel"), self._array(layer, "bias")
        columns = layer.domain_slice(domain)
        new = keras.layers.Dense(
            self.domains[domain].num_classes, dtype=layer.dtype_policy, name=f"{prefix}_head"
        )
        return new, [kernel[:, columns], bias[columns]]

    def _copy(self, layer):
        new = layer.__class__.from_config(layer.get_config())
        return new, (self._numpy(layer) if layer.weights else None)


def _call(cache, key, factory, inputs):
    """Calls the cached layer ``key`` on ``inputs``, creating it (and setting its weights) once."""
    if key in cache:
        return cache[key](inputs)
    layer, weights = factory()
    outputs = layer(inputs)
    if weights is not None:
        layer.set_weights(weights)
    cache[key] = layer
    return outputs
