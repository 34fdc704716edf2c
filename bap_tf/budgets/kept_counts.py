"""Kept channel counts of every switched conv as differentiable functions of the gates.

A MACs or parameter budget is linear in the gates: each switch costs its kernel slice. A
device budget is not: a convolution's latency depends on how many input channels it reads
*and* how many filters it keeps, and a filter stays while any conv of the same domain reads
its channel (``prune.dependency``). This module turns the concatenated gates ``(D, S)`` of
``BudgetAwareModel.gates()`` into, per domain:

- ``in_count``: the channels a switched conv reads, the sum of its own gates (its MACs and
  its weights in a model that gathers them);
- ``stream_count``: the channels of the tensor it reads, its domain's kept width of that
  stream (what it computes over in a model that reads the stream whole, with zero kernel rows
  for the channels it drops: the Android file's per-domain signatures);
- ``out_count``: the filters it keeps: the whole width when its output group is pinned
  (a residual stream, the heads' input), else the number of channels some reader of the group
  keeps on, ``sum_c (1 - prod_readers (1 - g_c))``, which stays binary in the forward pass
  while the straight-through gradient flows;
- ``channels(name)``: the kept width of any tensor of the graph (for activation memory).

A stream no switched conv reads keeps its whole width, exactly as the rewrite does.
"""

import numpy as np
from keras import ops

from bap_tf.prune.dependency import DependencyGraph
from bap_tf.switching import switched_layers


class KeptCounts:
    """The channel arithmetic of one switched network, computed once.

    Args:
      network: the switched network (``switching.build_switched_network``).
    """

    def __init__(self, network):
        self.graph = DependencyGraph(network)
        self.switched = [layer.name for layer in switched_layers(network)]
        offsets = np.cumsum([0] + [layer.switches.shape[-1] for layer in switched_layers(network)])
        self.gate_slices = {name: (int(start), int(stop))
                            for name, start, stop in zip(self.switched, offsets[:-1], offsets[1:])}
        self.num_switches = int(offsets[-1])
        # Per group that may shrink: the gate indices of each reader, channel by channel.
        self._readers = {}
        for name in self.switched:
            start = self.gate_slices[name][0]
            for group in self.graph.read_groups(name):
                width = self.graph.groups[group].channels
                self._readers.setdefault(group, []).append(np.arange(start, start + width))
                start += width

    def full_width(self, group):
        return self.graph.groups[group].channels

    def _shrinks(self, group):
        return not self.graph.groups[group].pinned and group in self._readers

    def shrinking_groups(self):
        """The groups whose kept count follows the gates (not pinned, read by switched convs)."""
        return [group for group in self._readers if self._shrinks(group)]

    def channel_keepers(self, group):
        """``(channels, readers)`` gate indices of a shrinking group: a channel is kept while
        one of its readers' gates is on."""
        return np.stack(self._readers[group], axis=1)

    def group_count(self, gates, group):
        """Kept channels of ``group`` per domain, ``(D,)`` (a tensor when the group may shrink,
        else its width as a float)."""
        if not self._shrinks(group):
            return float(self.full_width(group))
        dropped = None
        for indices in self._readers[group]:
            off = 1.0 - ops.take(gates, indices, axis=1)
            dropped = off if dropped is None else dropped * off
        return ops.sum(1.0 - dropped, axis=1)

    def in_count(self, gates, conv):
        """Input channels switched conv ``conv`` reads per domain: its gates that are on."""
        start, stop = self.gate_slices[conv]
        return ops.sum(gates[:, start:stop], axis=1)

    def out_count(self, gates, conv):
        """Filters switched conv ``conv`` keeps per domain."""
        return self.group_count(gates, self.graph.group_of[conv])

    def stream_count(self, gates, conv, group_counts=None):
        """Kept width per domain of the stream switched conv ``conv`` reads."""
        group_counts = group_counts or self.group_counts(gates)
        total = 0.0
        for group in self.graph.read_groups(conv):
            total = total + group_counts[group]
        return total

    def group_counts(self, gates):
        """Every group's kept count (``group_count``), each computed once: what ``channels``
        and ``conv_counts`` read when they are asked for many nodes of one graph."""
        return [self.group_count(gates, group.index) for group in self.graph.groups]

    def channels(self, gates, name, group_counts=None):
        """Kept width of node ``name``'s output per domain (its groups' counts summed)."""
        total = 0.0
        for group in self.graph.spaces[name]:
            total = total + (self.group_count(gates, group) if group_counts is None else group_counts[group])
        return total

    def conv_counts(self, gates, group_counts=None):
        """``{switched conv: (in_count, out_count)}``, each ``(D,)`` or a float."""
        group_counts = group_counts or self.group_counts(gates)
        return {name: (self.in_count(gates, name), group_counts[self.graph.group_of[name]]) for name in self.switched}
