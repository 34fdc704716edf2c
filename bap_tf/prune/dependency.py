"""Channel dependencies of a switched network, declared by each layer's rule.

In Torch-Pruning's terms (DepGraph): each layer's rule (``bap_tf.rules``) says how its output
channels relate to its inputs' (``Rule.couple``), and the tensors whose channels share one
index form a *group*. A convolution starts a new group of its filters; channel-wise layers keep
their input's channels; an ``Add`` or ``Multiply`` ties its operands into one group; a
``Concatenate`` lays its operands' channels one after another, so a tensor's *channel space* is
a sequence of groups at offsets (DenseNet's growing stream) and each operand shrinks on its own.

Given which input channels each switched conv keeps (the union of the domains' gates, or one
domain's), ``DependencyGraph.plan`` decides per group which channels survive: channel ``c``
stays when some conv still reads it, or when the group must stay whole (it holds the image,
feeds the heads or a model output, is read by an unswitched conv or passes a layer with
per-channel constants in its config). A producer's filter therefore goes only when no
consumer reads that channel.

Two options shape the plan for the hardware that runs it (XNNPACK packs a convolution's output
channels in tiles of 16 or 32 floats and computes whole tiles; it runs no ``GATHER``):

- ``channel_multiple=k`` rounds every stream that may shrink up to a multiple of ``k`` channels
  (or its full width), adding the channels the switches rank highest; nothing reads the added
  channels (their readers' kernel rows are zero), so the logits do not change, and the cost
  model counts them, so the rounding is paid for in the reported params and MACs;
- ``dense_reads=True`` makes each switched conv read its input's whole kept stream, with zero
  kernel rows for the channels its keep-set drops, instead of gathering the channels it reads;
  with ``read_runs=True`` too, each conv reads only the shortest run of the stream that holds its
  channels (a slice), and each group that may be reordered stores its kept channels in the order
  that keeps its readers' runs shortest (``_reader_order``): fewer zero rows, fewer MACs.

The graph is computed once per network; ``describe()`` prints the groups for debugging.
"""

import dataclasses
import itertools

import numpy as np

from bap_tf import layers as bap_layers
from bap_tf.graph import LayerGraph
from bap_tf.rules import UnsupportedLayerError, describe_rules, rule_for  # noqa: F401  (re-exported)

# Up to this many distinct readers of a group, read runs try every order of them (5! = 120).
ORDERED_READERS = 5


@dataclasses.dataclass
class Group:
    """Channels sharing one index: the tensors made of it alone, the convs writing it and the
    convs reading it (alone or inside a concatenation)."""

    index: int
    channels: int
    members: list  # node names whose output is this group alone, in graph order
    producers: list  # convs whose filters are this group's channels
    consumers: list  # convs that read a tensor holding this group
    pinned_by: list  # why the group must stay whole (empty: it may shrink)
    order_fixed: bool = False  # a pin also fixes its channel order (the image, a model output...)

    @property
    def pinned(self):
        return bool(self.pinned_by)


@dataclasses.dataclass(frozen=True)
class PrunePlan:
    """Which channels survive, for one keep-set of gates.

    ``kept[g]``: the channel indices group ``g`` keeps, in the order they are stored (sorted, or
    with read runs ordered for its readers). ``reads[conv]``: the input channels a conv reads
    (a subset of its input's kept channels; with read runs a run of them in stored order). ``zero_rows[conv]``: bool
    over ``reads[conv]``, True where the conv reads a channel with a zero kernel row (a channel
    its keep-set drops, read anyway: ``dense_reads``, or a conv no kept gate reaches). ``zeroed``:
    the convs no kept gate reaches; they read kept channels with a zero kernel, so they output
    their bias exactly as the masked conv does. ``spaces[name]``: the groups of a node's output,
    in channel order, and ``sizes[g]`` their channel counts.
    """

    kept: dict
    reads: dict
    zeroed: frozenset
    spaces: dict
    sizes: dict
    zero_rows: dict = dataclasses.field(default_factory=dict)

    def channels(self, name):
        """Kept channel indices of node ``name``'s output (in its unpruned channel numbering)."""
        parts, offset = [], 0
        for group in self.spaces[name]:
            parts.append(self.kept[group] + offset)
            offset += self.sizes[group]
        return np.concatenate(parts)


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
        self.inputs = {node.name: tuple(n for n in node.inputs if n != self.domain_input) for node in self.nodes}
        self.rules = {node.name: rule_for(node.layer, node.call)
                      for node in self.nodes if node.name != self.image_input}
        self.switched = [n.name for n in self.nodes if isinstance(n.layer, bap_layers.SwitchedConv2D)]
        self._couple()

    # -- what rules call while coupling ---------------------------------------------------
    def inputs_of(self, node):
        return self.inputs[node.name]

    def space(self, name):
        """The channel space of node ``name``'s output: a tuple of (raw) group ids."""
        return self._spaces[name]

    def input_space(self, node):
        return self._spaces[self.inputs[node.name][0]]

    def width(self, space):
        return sum(self._sizes[g] for g in space)

    def new_space(self, node):
        """A new group of ``node``'s output channels, ``node`` its producer."""
        group = self._new_group(int(node.layer.output.shape[-1]))
        self._producers[group].append(node.name)
        return (group,)

    def read(self, node, space):
        """``node`` is a conv reading ``space`` (its switches choose which channels)."""
        self._reads[node.name] = space

    def pin(self, space, why, fixes_order=True):
        """``space`` stays whole; ``fixes_order=False`` when the pinning reader indexes its rows by
        ``PrunePlan.channels`` (the heads), so the plan may still store the channels in another order."""
        for group in space:
            self._pins[group].append(why)
            self._fixed[group] = self._fixed[group] or fixes_order

    def tie(self, spaces, node):
        """One channel index for ``spaces`` (element-wise operands); returns the result's space.

        Spaces cut into groups alike are tied group by group; otherwise (a concatenation added
        to a differently made tensor) every group involved stays whole, which is exact too.
        """
        first = spaces[0]
        if all([self._sizes[g] for g in space] == [self._sizes[g] for g in first] for space in spaces):
            for space in spaces[1:]:
                for a, b in zip(space, first):
                    self._union(a, b)
        else:
            for space in spaces:
                self.pin(space, f"element-wise '{node.name}' of differently concatenated tensors")
        return first

    def concat(self, spaces):
        return tuple(group for space in spaces for group in space)

    # -- building -------------------------------------------------------------------------
    def _new_group(self, channels):
        self._parent.append(len(self._parent))
        self._sizes.append(channels)
        self._producers.append([])
        self._pins.append([])
        self._fixed.append(False)
        return len(self._parent) - 1

    def _find(self, group):
        while self._parent[group] != group:
            self._parent[group] = self._parent[self._parent[group]]
            group = self._parent[group]
        return group

    def _union(self, a, b):
        self._parent[self._find(a)] = self._find(b)

    def _couple(self):
        self._parent, self._sizes, self._producers, self._pins, self._fixed = [], [], [], [], []
        self._reads, self._spaces = {}, {}
        image = self._new_group(int(self.graph[self.image_input].layer.output.shape[-1]))
        self.pin((image,), "image input")
        self._spaces[self.image_input] = (image,)
        for node in self.nodes:
            if node.name == self.image_input:
                continue
            space = self.rules[node.name].couple(node, self)
            if space is None:  # the heads: nothing reads their channels as a stream
                continue
            channels = int(node.layer.output.shape[-1])
            if self.width(space) != channels:
                raise ValueError(
                    f"Layer '{node.name}' has {channels} channels but its rule gives it "
                    f"{self.width(space)}; bap_tf cannot couple them."
                )
            self._spaces[node.name] = space
        for name in self.graph.output_names:
            if name in self._spaces:
                self.pin(self._spaces[name], f"model output '{name}'")
        self._collect_groups()

    def _collect_groups(self):
        """Numbers the groups in graph order and fills in members, producers, readers, pins."""
        order = {node.name: i for i, node in enumerate(self.nodes)}
        index = {}
        self.groups = []
        for node in self.nodes:
            for raw in self._spaces.get(node.name, ()):
                root = self._find(raw)
                if root not in index:
                    index[root] = len(self.groups)
                    self.groups.append(Group(len(self.groups), self._sizes[root], [], [], [], []))
        for raw in range(len(self._parent)):
            group = self.groups[index[self._find(raw)]] if self._find(raw) in index else None
            if group is not None:
                group.producers.extend(self._producers[raw])
                group.pinned_by.extend(self._pins[raw])
                group.order_fixed = group.order_fixed or self._fixed[raw]
        self.spaces = {name: tuple(index[self._find(g)] for g in space) for name, space in self._spaces.items()}
        self.group_of = {}
        for node in self.nodes:
            space = self.spaces.get(node.name, ())
            if len(space) == 1:
                self.groups[space[0]].members.append(node.name)
                self.group_of[node.name] = space[0]
        for name, space in self._reads.items():
            for g in dict.fromkeys(index[self._find(raw)] for raw in space):
                self.groups[g].consumers.append(name)
        for group in self.groups:
            group.producers.sort(key=order.get)
            group.consumers.sort(key=order.get)
        self._reads = {name: tuple(index[self._find(g)] for g in space) for name, space in self._reads.items()}

    # -- queries ----------------------------------------------------------------------------
    def input_channels(self, conv_name):
        """Channel count of the tensor a conv reads."""
        return sum(self.groups[g].channels for g in self._reads[conv_name])

    def read_groups(self, conv_name):
        """The groups a conv reads, in its input channels' order (several for a concatenation)."""
        return self._reads[conv_name]

    def input_group(self, conv_name):
        """The group a conv reads, when its input is one group (not a concatenation)."""
        space = self._reads[conv_name]
        if len(space) != 1:
            raise ValueError(f"Conv '{conv_name}' reads a concatenation of groups {list(space)}, not one group.")
        return self.groups[space[0]]

    def output_group(self, name):
        return self.groups[self.group_of[name]]

    def describe(self):
        """The groups as text, one block per group: channels, pins, producers, consumers."""
        lines = []
        for group in self.groups:
            pins = "; ".join(dict.fromkeys(group.pinned_by)) if group.pinned else "no (may shrink)"
            lines.append(f"group {group.index}: {group.channels} channels, kept whole: {pins}")
            lines.append(f"  producers: {', '.join(group.producers) or '-'}")
            lines.append(f"  consumers: {', '.join(group.consumers) or '-'}")
            lines.append(f"  members:   {', '.join(group.members) or '-'}")
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
            channels = self.input_channels(name)
            if value.ndim != 2 or value.shape[1] != channels:
                raise ValueError(
                    f"gates['{name}'] must have shape (num_domains, {channels}). Received: shape={value.shape}"
                )
            checked[name] = value
        return checked

    def plan(self, keep, channel_multiple=1, dense_reads=False, scores=None, read_runs=False):
        """Which channels survive when each switched conv reads only ``keep[name]`` (bool ``(C_in,)``).

        Pass the union over domains for the multi-domain model, or one domain's gates for its
        own model. Returns a ``PrunePlan``.

        Args:
          keep: ``{switched conv: bool (C_in,)}``.
          channel_multiple: round every stream that may shrink up to a multiple of this many
            channels (or to its full width); 1 rounds nothing.
          dense_reads: each switched conv reads its input's whole kept stream (zero kernel rows
            for the channels ``keep`` drops) instead of gathering the channels it reads.
          read_runs: with ``dense_reads``, each switched conv reads only the shortest run of the
            stream holding its channels, the groups' kept channels ordered to shorten the runs.
          scores: optional ``{switched conv: float (C_in,)}``; rounding adds the channels whose
            best score among their readers is highest (by default the lowest-numbered ones).
        """
        check_channel_multiple(channel_multiple)
        if read_runs and not dense_reads:
            raise ValueError("read_runs=True needs dense_reads=True: runs are what a dense read reads.")
        needed = {group.index: np.zeros(group.channels, bool) for group in self.groups}
        rank = {group.index: np.full(group.channels, -np.inf) for group in self.groups}
        readers = {group.index: [] for group in self.groups}  # (row MACs, bool over the group) per reader
        reads = {}
        for name in self.switched:
            mask = np.asarray(keep[name]).astype(bool)
            if mask.shape != (self.input_channels(name),):
                raise ValueError(
                    f"keep['{name}'] must have shape ({self.input_channels(name)},). Received: shape={mask.shape}"
                )
            reads[name] = np.flatnonzero(mask)
            score = None if scores is None else np.asarray(scores[name], dtype=float)
            offset = 0
            for g in self._reads[name]:
                width = self.groups[g].channels
                needed[g] |= mask[offset : offset + width]
                readers[g].append((self._row_macs(name), mask[offset : offset + width]))
                if score is not None:
                    rank[g] = np.maximum(rank[g], score[offset : offset + width])
                offset += width
        kept = {}
        for group in self.groups:
            if group.pinned:
                kept[group.index] = np.arange(group.channels)
            else:
                # A stream nobody reads still needs one channel for its producers to exist.
                chosen = np.flatnonzero(needed[group.index]) if needed[group.index].any() else np.arange(1)
                kept[group.index] = _round_up(chosen, group.channels, channel_multiple, rank[group.index])
            if read_runs and not group.order_fixed:
                kept[group.index] = _reader_order(kept[group.index], readers[group.index])
        plan = PrunePlan(kept, reads, frozenset(), self.spaces, {g.index: g.channels for g in self.groups})
        zeroed, zero_rows = set(), {}
        for name, space in self._reads.items():
            available = plan.channels(self.inputs[name][0])
            if name not in reads:  # unswitched conv: reads its (whole) input
                reads[name] = available
                continue
            if reads[name].size == 0:
                zeroed.add(name)
            if read_runs and reads[name].size:
                live = np.flatnonzero(np.isin(available, reads[name]))
                run = slice(live[0], live[-1] + 1)
                reads[name], zero_rows[name] = available[run], ~np.isin(available[run], reads[name])
            elif dense_reads or reads[name].size == 0:
                live = np.isin(available, reads[name])
                reads[name] = available if dense_reads else available[:1]
                zero_rows[name] = ~live if dense_reads else np.ones(1, bool)
        return dataclasses.replace(plan, zeroed=frozenset(zeroed), zero_rows=zero_rows)

    def _row_macs(self, conv_name):
        """MACs one input channel of a switched conv costs: what a zero row it reads wastes."""
        layer = self.graph[conv_name].layer
        positions = np.prod([d for d in layer.output.shape[1:-1] if d is not None])
        return float(np.prod(layer.kernel_size) * layer.filters * positions)


def check_channel_multiple(value):
    """Refuses anything but a positive integer, in the Keras form."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"channel_multiple must be a positive integer. Received: channel_multiple={value!r}")
    return int(value)


def _round_up(chosen, width, multiple, rank):
    """``chosen`` plus the best-ranked other channels, up to a multiple of ``multiple`` (at most
    ``width``); ties and unranked channels go by index."""
    target = min(width, -(-len(chosen) // multiple) * multiple)
    if target == len(chosen):
        return chosen
    others = np.setdiff1d(np.arange(width), chosen)
    extra = others[np.argsort(-rank[others], kind="stable")][: target - len(chosen)]
    return np.sort(np.concatenate([chosen, extra]))


def _reader_order(kept, readers):
    """``kept`` in the order that puts each reader's channels closest together.

    With dense reads a conv reads the shortest run of its input holding its channels (a slice,
    which XNNPACK runs) and pays a zero kernel row for every channel inside the run it drops.
    Channels are sorted by the reflected Gray code of which readers read them: the first reader's
    channels form one run, the second's one run across the first's edge, each next reader at most
    twice as many. The readers' order (tried in full for up to ``ORDERED_READERS`` distinct
    readers, else heaviest first) is the one leaving the fewest zero-row MACs.

    Args:
      kept: the group's kept channel indices.
      readers: ``(row MACs, bool over the group's channels)`` per conv that reads the group.
    """
    distinct = {}
    for weight, reads in readers:
        key = reads[kept].tobytes()
        distinct[key] = (distinct.get(key, (0.0,))[0] + weight, reads[kept])
    rows = sorted(distinct.values(), key=lambda entry: -entry[0])
    if len(rows) < 2:
        return kept
    orders = itertools.permutations(rows) if len(rows) <= ORDERED_READERS else [rows]
    return min((kept[_gray_order([reads for _, reads in order])] for order in orders),
               key=lambda candidate: _zero_row_macs(candidate, readers))


def _gray_order(memberships):
    """Positions sorted by the reflected Gray-code rank of their bits (first membership most significant)."""
    rank, bit = np.zeros(memberships[0].size, np.int64), np.zeros(memberships[0].size, bool)
    for row in memberships:
        bit = bit ^ row
        rank = rank * 2 + bit
    return np.argsort(rank, kind="stable")


def _zero_row_macs(channels, readers):
    """Zero-row MACs of ``readers`` when the group stores its kept ``channels`` in this order."""
    total = 0.0
    for weight, reads in readers:
        live = np.flatnonzero(reads[channels])
        if live.size:
            total += weight * (live[-1] - live[0] + 1 - live.size)
    return total


def union_keep(gates):
    """Keep-set of the multi-domain model: a channel is kept when any domain's gate is on."""
    return {name: value.any(axis=0) for name, value in gates.items()}


def domain_keep(gates, domain):
    """Keep-set of domain ``domain`` (its index) alone."""
    return {name: value[domain] for name, value in gates.items()}
