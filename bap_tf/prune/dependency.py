"""Channel dependencies of a switched network: every coupling rule of the pruner lives here.

In Torch-Pruning's terms (DepGraph): each layer gets a *rule* from one table (what pruning
one of its output or input channels means), and the tensors whose channels share one index
form a *group*. A convolution starts a new channel space; channel-wise layers (BatchNorm,
depthwise conv, activations, padding, pooling, dropout) keep their input's; an ``Add`` joins
all its operands into one. So a residual stream, with every conv that writes into it and every
conv that reads it, is one group.

Given which input channels each switched conv keeps (the union of the domains' gates, or one
domain's), ``DependencyGraph.plan`` decides per group which channels survive: channel ``c``
stays when some consumer still reads it, or when the group must stay whole (it holds the
image, feeds the heads, a concatenation or a model output, or passes a layer with per-channel
constants). A producer's filter therefore goes only when no consumer reads that channel.

The graph is computed once per network (``DependencyGraph(network)``); ``describe()`` prints
the groups and ``describe_rules()`` the table, for debugging.
"""

import dataclasses

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf.graph import LayerGraph
from bap_tf.switching import PASS_THROUGH_LAYERS


# Roles a layer can play in the channel graph.
CONV = "conv"  # new channel space out; reads some (switched) or all (plain) input channels
CHANNELWISE = "channelwise"  # output channel c is a function of input channel c only
ADD = "add"  # operands and sum share one channel index
CONCAT = "concat"  # new channel space made of its operands, kept whole
PIN = "pin"  # channel-wise, but holds per-channel constants: its stream stays whole
HEADS = "heads"  # per-domain classifiers: read the whole feature vector
INPUT = "input"  # the image: its channels are fixed


@dataclasses.dataclass(frozen=True)
class Rule:
    """What pruning a channel means for one kind of layer."""

    layer_types: tuple
    role: str
    output_channel: str  # what removing output channel c does to this layer
    input_channel: str  # what removing input channel c does to this layer


# The stateless layers the switching converter copies, less those with rules of their own.
_PASS_THROUGH = tuple(
    cls for cls in PASS_THROUGH_LAYERS if cls not in (keras.layers.Add, keras.layers.Normalization)
)

# The table, matched in order with isinstance (more specific types first).
RULES = (
    Rule(
        (bap_layers.SwitchedConv2D,), CONV,
        "drop filter c: kernel[..., c] and bias[c]; c leaves the conv's output group",
        "drop kernel[:, :, c, :] when the kept gates are off for c; reads a stream that keeps c "
        "for other layers through ChannelGather",
    ),
    Rule(
        (keras.layers.Conv2D,), CONV,
        "drop filter c: kernel[..., c] and bias[c] (the unswitched RGB stem shrinks this way)",
        "never: an unswitched conv reads its whole input, which stays whole",
    ),
    Rule(
        (keras.layers.DepthwiseConv2D,), CHANNELWISE,
        "drop kernel[:, :, c, :] and bias[c]; input channel c goes with it (same group)",
        "same as its output channel c",
    ),
    Rule(
        (keras.layers.BatchNormalization, bap_layers.DomainBatchNormalization), CHANNELWISE,
        "drop gamma/beta/moving statistics [c] (DomainBN: column c of every domain's row; "
        "domain d's row becomes a plain BatchNormalization)",
        "same as its output channel c",
    ),
    Rule(
        (keras.layers.Add,), ADD,
        "every operand and the sum share one channel index: they are one group",
        "only together with the same channel of every operand and of the sum",
    ),
    Rule(
        (keras.layers.Concatenate,), CONCAT,
        "never: the concatenated channels are a new group kept whole",
        "never: every operand's group is kept whole",
    ),
    Rule(
        (bap_layers.DomainHeads,), HEADS,
        "never: classes are not pruned (domain d's columns become a Dense head)",
        "never: the heads read the whole feature vector, so the last stream stays whole",
    ),
    Rule(
        (keras.layers.Normalization,), PIN,
        "never: per-channel mean/variance; its group is kept whole",
        "never: same group as its output",
    ),
    Rule(
        _PASS_THROUGH, CHANNELWISE,
        "nothing to slice: channel c of the output is channel c of the input (same group)",
        "same as its output channel c",
    ),
)

# Activations that mix channels and so cannot be treated channel-wise.
_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


class UnsupportedLayerError(ValueError):
    """A layer the pruner has no exact rule for: refused rather than pruned wrongly."""


def _unsupported(layer, why):
    kinds = sorted({cls.__name__ for rule in RULES for cls in rule.layer_types})
    return UnsupportedLayerError(
        f"Layer '{layer.name}' ({type(layer).__name__}) cannot be pruned by bap_tf: {why}. "
        f"Supported layer types: {', '.join(kinds)}."
    )


def rule_for(layer):
    """The ``Rule`` of ``layer`` and the role it plays here; refuses what has no exact rule."""
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise _unsupported(layer, f"data_format={layer.data_format!r}, expected 'channels_last'")
    for rule in RULES:
        if isinstance(layer, rule.layer_types):
            return rule, _role(rule, layer)
    if isinstance(layer, keras.layers.Dense):
        raise _unsupported(layer, "a Dense layer inside the network (only the DomainHeads may be dense)")
    raise _unsupported(layer, "no channel rule for this layer type")


def _role(rule, layer):
    if isinstance(layer, keras.layers.DepthwiseConv2D) and layer.depth_multiplier != 1:
        raise _unsupported(layer, f"depthwise conv with depth_multiplier={layer.depth_multiplier}, expected 1")
    if isinstance(layer, keras.layers.Conv2D):
        if type(layer) is not keras.layers.Conv2D:
            raise _unsupported(layer, "only plain Conv2D (or SwitchedConv2D) convolutions have a rule")
        if layer.groups != 1:
            raise _unsupported(layer, f"grouped convolution (groups={layer.groups})")
    if isinstance(layer, keras.layers.BatchNormalization) and layer.axis not in (-1, len(layer.output.shape) - 1):
        raise _unsupported(layer, f"BatchNormalization over axis {layer.axis}, expected the last axis")
    if isinstance(layer, keras.layers.Activation):
        name = getattr(layer.activation, "__name__", "")
        if name in _CHANNEL_MIXING_ACTIVATIONS:
            raise _unsupported(layer, f"activation {name!r} mixes channels")
    if isinstance(layer, keras.layers.Rescaling) and (np.ndim(layer.scale) > 0 or np.ndim(layer.offset) > 0):
        return PIN  # per-channel scale/offset: cannot slice a constant stored in the config
    if isinstance(layer, keras.layers.Concatenate) and layer.axis not in (-1, len(layer.output.shape) - 1):
        raise _unsupported(layer, f"Concatenate over axis {layer.axis}, expected the last axis")
    return rule.role


def describe_rules():
    """The rule table as text: one line per layer kind, output then input channel rule."""
    lines = []
    for rule in RULES:
        names = ", ".join(cls.__name__ for cls in rule.layer_types)
        lines.append(f"{names} [{rule.role}]")
        lines.append(f"    output c: {rule.output_channel}")
        lines.append(f"    input c:  {rule.input_channel}")
    return "\n".join(lines)


@dataclasses.dataclass
class Group:
    """Tensors sharing one channel index, the convs writing them and the convs reading them."""

    index: int
    channels: int
    members: list  # node names whose output lies in this group, in graph order
    producers: list  # convs whose filters are this group's channels
    consumers: list  # convs that read a tensor of this group
    pinned_by: list  # why the group must stay whole (empty: it may shrink)

    @property
    def pinned(self):
        return bool(self.pinned_by)


@dataclasses.dataclass(frozen=True)
class PrunePlan:
    """Which channels survive, for one keep-set of gates.

    ``kept[g]``: sorted channel indices group ``g`` keeps. ``reads[conv]``: sorted input
    channels a conv reads (a subset of its input group's kept channels). ``zeroed``: convs no
    kept gate reaches; each reads one kept channel with a zero kernel slice, so it outputs its
    bias exactly as the masked conv does.
    """

    kept: dict
    reads: dict
    zeroed: frozenset
    group_of: dict

    def channels(self, name):
        """Kept channel indices of node ``name``'s output."""
        return self.kept[self.group_of[name]]


class DependencyGraph:
    """The channel groups of a switched network, computed once.

    Args:
      network: the switched network (``switching.build_switched_network``): inputs
        ``{"image", "domain"}``, output padded logits from ``DomainHeads``.
    """

    def __init__(self, network):
        inputs = network.input if isinstance(network.input, dict) else {}
        if set(inputs) != {"image", "domain"}:
            raise ValueError(
                "Expected a switched network with inputs {'image', 'domain'} "
                "(see switching.build_switched_network). "
                f"Received: inputs={list(inputs) if inputs else type(network.input).__name__}"
            )
        self.graph = LayerGraph(network)
        # Input tensors are named after their InputLayer, which is the graph's node name.
        self.domain_input = inputs["domain"].name
        self.image_input = inputs["image"].name
        self.nodes = [node for node in self.graph if node.name != self.domain_input]
        self.roles = {}
        self.inputs = {}  # node name -> producer names, the domain input left out
        for node in self.nodes:
            self.roles[node.name] = INPUT if node.name == self.image_input else rule_for(node.layer)[1]
            self.inputs[node.name] = tuple(n for n in node.inputs if n != self.domain_input)
        self.switched = [n.name for n in self.nodes if isinstance(n.layer, bap_layers.SwitchedConv2D)]
        self._build_groups()

    # -- groups ---------------------------------------------------------------------------
    def _build_groups(self):
        parent = {}

        def find(name):
            while parent[name] != name:
                parent[name] = parent[parent[name]]
                name = parent[name]
            return name

        def union(a, b):
            parent[find(a)] = find(b)

        channelled = [n for n in self.nodes if self.roles[n.name] != HEADS]
        for node in channelled:
            parent[node.name] = node.name
            role = self.roles[node.name]
            if role in (CHANNELWISE, PIN, ADD):
                for name in self.inputs[node.name]:
                    union(node.name, name)

        roots = {}
        self.groups = []
        self.group_of = {}
        for node in channelled:
            root = find(node.name)
            if root not in roots:
                roots[root] = len(self.groups)
                self.groups.append(Group(len(self.groups), _channels(node.layer), [], [], [], []))
            group = self.groups[roots[root]]
            if _channels(node.layer) != group.channels:
                raise ValueError(
                    f"Layer '{node.name}' has {_channels(node.layer)} channels but its group has "
                    f"{group.channels}; bap_tf cannot couple them."
                )
            group.members.append(node.name)
            self.group_of[node.name] = group.index

        for node in self.nodes:
            role = self.roles[node.name]
            own = self.groups[self.group_of[node.name]] if node.name in self.group_of else None
            read = [self.groups[self.group_of[name]] for name in self.inputs[node.name]]
            if role == INPUT:
                own.pinned_by.append("image input")
            elif role == CONV:
                own.producers.append(node.name)
                read[0].consumers.append(node.name)
                if not isinstance(node.layer, bap_layers.SwitchedConv2D):
                    read[0].pinned_by.append(f"read whole by unswitched conv '{node.name}'")
            elif role == PIN:
                own.pinned_by.append(f"per-channel constants in '{node.name}'")
            elif role == CONCAT:
                own.pinned_by.append(f"output of concat '{node.name}'")
                for group in read:
                    group.pinned_by.append(f"operand of concat '{node.name}'")
            elif role == HEADS:
                read[0].pinned_by.append(f"read whole by heads '{node.name}'")
        for name in self.graph.output_names:
            if self.roles[name] != HEADS:
                self.groups[self.group_of[name]].pinned_by.append(f"model output '{name}'")

    def input_group(self, conv_name):
        """The group a conv reads."""
        return self.groups[self.group_of[self.inputs[conv_name][0]]]

    def output_group(self, name):
        return self.groups[self.group_of[name]]

    def describe(self):
        """The groups as text, one block per group: channels, pins, producers, consumers."""
        lines = []
        for group in self.groups:
            pins = "; ".join(group.pinned_by) if group.pinned else "no (may shrink)"
            lines.append(f"group {group.index}: {group.channels} channels, kept whole: {pins}")
            lines.append(f"  producers: {', '.join(group.producers) or '-'}")
            lines.append(f"  consumers: {', '.join(group.consumers) or '-'}")
            lines.append(f"  members:   {', '.join(group.members)}")
        return "\n".join(lines)

    # -- keep sets ------------------------------------------------------------------------
    def check_gates(self, gates):
        """Validates ``{switched conv: bool (num_domains, in_channels)}``; returns numpy copies."""
        missing = [name for name in self.switched if name not in gates]
        extra = [name for name in gates if name not in self.switched]
        if missing or extra:
            raise ValueError(
                "gates must have one entry per switched conv of the network. "
                f"Received: missing={missing}, unknown={extra}"
            )
        checked = {}
        for name in self.switched:
            value = np.asarray(gates[name]).astype(bool)
            channels = self.input_group(name).channels
            if value.ndim != 2 or value.shape[1] != channels:
                raise ValueError(
                    f"gates['{name}'] must have shape (num_domains, {channels}). Received: shape={value.shape}"
                )
            checked[name] = value
        return checked

    def plan(self, keep):
        """Which channels survive when each switched conv reads only ``keep[name]`` (bool ``(C_in,)``).

        Pass the union over domains for the multi-domain model, or one domain's gates for its
        own model. Returns a ``PrunePlan``.
        """
        reads = {}
        for name in self.switched:
            mask = np.asarray(keep[name]).astype(bool)
            if mask.shape != (self.input_group(name).channels,):
                raise ValueError(
                    f"keep['{name}'] must have shape ({self.input_group(name).channels},). "
                    f"Received: shape={mask.shape}"
                )
            reads[name] = np.flatnonzero(mask)
        kept = {}
        for group in self.groups:
            if group.pinned:
                kept[group.index] = np.arange(group.channels)
                continue
            needed = np.zeros(group.channels, bool)
            for name in group.consumers:
                needed[reads[name]] = True
            # A stream nobody reads still needs one channel for its producers to exist.
            kept[group.index] = np.flatnonzero(needed) if needed.any() else np.arange(1)
        zeroed = set()
        for group in self.groups:
            for name in group.consumers:
                if name not in reads:  # unswitched conv: reads its (whole) input
                    reads[name] = kept[group.index]
                elif reads[name].size == 0:
                    reads[name] = kept[group.index][:1]
                    zeroed.add(name)
        return PrunePlan(kept, reads, frozenset(zeroed), dict(self.group_of))


def union_keep(gates):
    """Keep-set of the multi-domain model: a channel is kept when any domain's gate is on."""
    return {name: value.any(axis=0) for name, value in gates.items()}


def domain_keep(gates, domain):
    """Keep-set of domain ``domain`` (its index) alone."""
    return {name: value[domain] for name, value in gates.items()}


def _channels(layer):
    return int(layer.output.shape[-1])
