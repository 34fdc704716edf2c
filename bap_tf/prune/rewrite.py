"""The mechanical rebuild: a switched network becomes plain Keras models of sliced layers.

Every decision comes from ``dependency.DependencyGraph`` (which channels each group keeps, which
channels each conv reads); this module only walks the graph in order and lets each node's rule
(``Rule.rebuild`` in ``bap_tf.rules``) build the standard layer with the kept channels: convs
and depthwise convs sliced (with a ``ChannelGather`` / domain ``ChannelMask`` in front where
needed), ``DomainBatchNormalization`` row d as ``BatchNormalization`` named ``{domain}_{name}``,
``DomainHeads`` columns of d as ``Dense`` named ``{domain}_head``, everything else copied.

Two products: ``union_models()``, one model per domain that call the same (shared) conv layer
objects, and ``domain_model(d)``, physically pruned to domain d's own gates (no masks).
"""

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf.domains import as_domain_specs, domain_index
from bap_tf.prune import dependency as dep
from bap_tf.rules.base import copy_layer, set_weights
from bap_tf.switching import HEADS_NAME, gate_values, switched_layers


class Rewriter:
    """Builds the reduced models of one switched network; the dependency graph is read once.

    Args:
      network: the switched network (``switching.build_switched_network``).
      domains: its ``DomainSpec``s (or ``(name, num_classes)`` pairs) in domain-index order.
      gates: optional ``{switched conv: bool (num_domains, in_channels)}``; by default the
        network's own binarized switches (``switching.gate_values``).
      channel_multiple: round every stream that may shrink up to a multiple of this many
        channels (XNNPACK's tile: 16 float32 on AVX2, 32 on AVX-512), adding the channels the
        switches rank highest; 1 rounds nothing (``DependencyGraph.plan``).
      dense_reads: convs read their input's whole kept stream with zero kernel rows for the
        channels they drop, instead of a ``ChannelGather`` (which XNNPACK does not run).
      read_runs: with ``dense_reads``, each conv reads only the shortest run of its input's
        stream that holds its channels (a slice, which XNNPACK runs), every stream stored in the
        order that keeps its readers' runs short: fewer zero rows and MACs.
    """

    def __init__(self, network, domains, gates=None, channel_multiple=1, dense_reads=False, read_runs=False):
        self.network = network
        self.channel_multiple = dep.check_channel_multiple(channel_multiple)
        self.dense_reads = bool(dense_reads)
        self.read_runs = bool(read_runs)
        if self.read_runs and not self.dense_reads:
            raise ValueError("read_runs=True needs dense_reads=True: runs are what a dense read reads.")
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
        # Which extra channels rounding keeps: the best switch value over the domains.
        self.scores = {layer.name: np.asarray(layer.switches.numpy()).max(axis=0) for layer in switched_layers(network)}

    @classmethod
    def from_model(cls, model, gates=None, **options):
        """From a ``BudgetAwareModel`` (its ``.network`` and ``.domains``); ``options`` as above."""
        return cls(model.network, model.domains, gates, **options)

    @property
    def domain_names(self):
        return [d.name for d in self.domains]

    def domain_index(self, domain):
        return domain_index(self.domains, domain)

    # -- plans ----------------------------------------------------------------------------
    def union_plan(self):
        return self._plan(dep.union_keep(self.gates))

    def domain_plan(self, domain):
        return self._plan(dep.domain_keep(self.gates, self.domain_index(domain)))

    def _plan(self, keep):
        return self.dependency.plan(keep, self.channel_multiple, self.dense_reads, self.scores, self.read_runs)

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
                zero_rows = plan.zero_rows.get(name)
                if zero_rows is not None:
                    mask = mask | zero_rows  # a zero kernel row needs no mask
                if not mask.all():
                    masks[spec.name][name] = mask.astype("float32")
        return masks

    # -- products -------------------------------------------------------------------------
    def union_models(self, domain_masks=True):
        """``{domain: keras.Model}``, image -> logits ``(N, num_classes)``, sharing the conv layers.

        Convs, depthwise convs, gathers and stateless layers are one object per backbone
        layer, called by every domain's model; BatchNorms, masks and heads are per domain.
        ``domain_masks=False``: every domain reads all the union keeps (no masks), a different
        function from the masked model's, to be fine-tuned.
        """
        plan = self.union_plan()
        masks = self.union_masks(plan) if domain_masks else {spec.name: {} for spec in self.domains}
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
        graph = self.dependency
        image_layer = graph.graph[graph.image_input].layer
        image = keras.Input(shape=image_layer.output.shape[1:], name="image")
        walk = Walk(self, plan, domain, shared, masks, {graph.image_input: image})
        for node in graph.nodes:
            if node.name not in walk.tensors:
                walk.tensors[node.name] = graph.rules[node.name].rebuild(node, walk)
        return keras.Model(image, walk.tensors[graph.graph.output_names[0]], name=name)

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


class Walk:
    """What a rule's ``rebuild`` needs while one domain's model is built.

    ``plan``: the ``PrunePlan``; ``domain``/``prefix``: the domain's index and name;
    ``masks``: ``{conv: 0/1 mask}`` of this domain in the union model; ``tensors``: the new
    tensors so far. ``shared`` layers are created once and called by every domain's model.
    """

    def __init__(self, rewriter, plan, domain, shared, masks, tensors):
        self.plan = plan
        self.domain = domain
        self.prefix = rewriter.domains[domain].name
        self.masks = masks
        self.tensors = tensors
        self._rewriter = rewriter
        self._shared = shared
        self._domain_input = rewriter.dependency.domain_input

    def input_name(self, node):
        return self._rewriter.dependency.inputs[node.name][0]

    def inputs(self, node):
        return [self.tensors[name] for name in self._rewriter.dependency.inputs[node.name]]

    def weights(self, layer):
        """``layer.get_weights()`` as numpy arrays, read once per rewriter."""
        return self._rewriter._numpy(layer)

    def array(self, layer, attribute):
        """One weight of ``layer`` by attribute name as a numpy array, read once per rewriter."""
        return self._rewriter._array(layer, attribute)

    def shared(self, key, factory, *args, **kwargs):
        """Calls the shared layer ``key``, created by ``factory() -> (layer, weights or None)``
        on first use."""
        return _call(self._shared, key, factory, args, kwargs)

    def own(self, factory, *args, **kwargs):
        """Calls a new layer of this domain's model alone."""
        return _call({}, None, factory, args, kwargs)

    def shared_copy(self, node, **overrides):
        """The node's layer (or operation) copied with ``overrides`` in its config, weights too,
        called with its original arguments (constants kept, the domain input left out)."""
        layer = node.layer

        def factory():
            weights = self.weights(layer) if getattr(layer, "weights", None) else None
            return copy_layer(layer, **overrides), weights

        args, kwargs = node.arguments(self.tensors, skip=(self._domain_input,))
        return self.shared(node.name, factory, *args, **kwargs)


def _call(cache, key, factory, args, kwargs):
    """Calls the cached layer ``key`` on the inputs, creating it (and setting its weights) once."""
    if key in cache:
        return cache[key](*args, **kwargs)
    layer, weights = factory()
    outputs = layer(*args, **kwargs)
    if weights is not None:
        set_weights(layer, weights)
    if key is not None:
        cache[key] = layer
    return outputs
