"""The latency budget: a domain's kept cost priced in milliseconds by a measured table.

``LatencyCost`` reads a latency table (``export.latency_table``) of the network's switched
convs and prices a domain's gates as the whole network's latency on the table's target::

    ms_d = scale * sum_conv interpolate(table[conv], stream_count_d, out_count_d)

with the kept counts of ``KeptCounts`` (differentiable: bilinear in the counts, the counts
straight-through in the gates). A conv's input count is the width of the stream it reads, not
its own gates: the Android file's per-domain signature reads the stream whole, with zero kernel
rows for the channels the conv drops (XNNPACK runs no gather), so dropping a channel of a
stream that stays whole (a residual stream) saves nothing there.

``scale`` is the table's ``reference`` (the whole backbone timed with the cells) over the
table's own full-size sum, or 1 for a table without one: what the table does not hold (the
stem, adds, pooling, the head; a conv slower inside the model than alone, its activations no
longer in cache) is taken to shrink with the convs, not to stay constant. At ResNet-26 width 64,
64 px, it is 40 % of the backbone's time, and pruned models measured 0.15-0.20 of the backbone
where a constant share would have made them 0.50. A domain's kept fraction is
``ms_d / ms_backbone``, so ``--budget=0.5`` asks each domain for half the backbone's latency,
and ``--budget_ms`` divides by ``ms_backbone``.

The rewrite keeps every stream that may shrink on a multiple of the table's step (the tile
the target computes whole), and at least one channel of it, so ``predicted_ms(...,
rounded=True)`` rounds each such stream's count up to a multiple of the step, one step at
least (or the stream's width): that is what the hard projection at the end of training uses.
In training, a stream is priced at one step at least: below a tile the file saves nothing, and
a budget that pushed streams under it would empty them instead (a dead network).
"""

import math

import keras
import numpy as np
from keras import ops

from bap_tf import costs
from bap_tf import layers as bap_layers
from bap_tf.budgets.kept_counts import KeptCounts
from bap_tf.export import latency_table


class LatencyCost:
    """Milliseconds of each domain's kept channels, from a latency table.

    Args:
      network: the switched network.
      table: a latency table dict (``latency_table.load_table``), checked to cover every
        switched conv of ``network`` at its full channel counts.
    """

    metric = "latency"

    def __init__(self, network, table, counts=None):
        latency_table.check_table(table)
        latency_table.check_covers(table, network)
        self.table = table
        self.step = int(table["step"])
        self.counts = counts or KeptCounts(network)
        self._layers = {name: table["layers"][name] for name in self.counts.switched}
        table_ms = sum(float(entry["ms"][-1][-1]) for entry in self._layers.values())  # every conv at full counts
        self.scale = table_scale(table, table_ms)
        self.backbone_ms = self.scale * table_ms

    def predicted_ms(self, gates, rounded=False):
        """The table's latency of each domain's kept channels, ``(D,)``: every stream that may
        shrink at one tile at least; with ``rounded``, rounded up to the table's step as the
        rewrite builds it (not differentiable)."""
        groups = self.counts.group_counts(gates)
        for index, count in enumerate(groups):
            if isinstance(count, float):  # a stream that stays whole
                continue
            tile = float(min(self.step, self.counts.full_width(index)))
            if rounded:
                count = ops.minimum(ops.ceil(count / self.step) * self.step, float(self.counts.full_width(index)))
            groups[index] = ops.maximum(count, tile)
        total = 0.0
        for name in self.counts.switched:
            cin = self.counts.stream_count(gates, name, groups)
            cout = groups[self.counts.graph.group_of[name]]
            total = total + latency_table.interpolate(self._layers[name], cin, cout)
        return self.scale * total

    def kept_fractions(self, gates, rounded=False):
        """Each domain's latency as a fraction of the backbone's, ``(D,)``."""
        return self.predicted_ms(gates, rounded) / self.backbone_ms

    def step_moves(self, values):
        """The hard projection's moves for one domain's switch values ``values`` ``(S,)``: per
        stream that may shrink and is above one step, ``(gates, confidence lost)`` with its
        least confident kept channels off, so that its count falls to the next lower multiple
        of the step. A channel stays while one of its readers keeps it, so turning it off turns
        off every reader's switch; its confidence is their positive values summed."""
        gates = (values > 0).astype("float32")
        moves = []
        for group in self.counts.shrinking_groups():
            keepers = self.counts.channel_keepers(group)  # (channels, readers) gate indices
            on = gates[keepers] > 0
            kept = np.flatnonzero(on.any(axis=1))
            full = self.counts.full_width(group)
            target = min(math.ceil(len(kept) / self.step) * self.step, full) - self.step
            if target < min(self.step, full):
                continue
            confidence = np.where(on[kept], values[keepers[kept]], 0.0).clip(min=0.0).sum(axis=1)
            weakest = np.argsort(confidence, kind="stable")[: len(kept) - target]
            trial = gates.copy()
            trial[keepers[kept[weakest]].ravel()] = 0.0
            moves.append((trial, float(confidence[weakest].sum())))
        return moves

    def minimum_fraction(self):
        """The fraction no gates can go below: every switch off (the table's smallest cells and
        the streams that stay whole)."""
        nothing = ops.zeros((1, self.counts.num_switches))
        return float(ops.convert_to_numpy(self.kept_fractions(nothing, rounded=True))[0])

    def model_ms(self, model):
        """The table's latency of a reduced model (``model_latency_ms``)."""
        return model_latency_ms(self.table, model, self.scale)

    def summary(self):
        """What the report says of the table: target, step, where it was measured, the ms."""
        return {"target": self.table["target"], "step": self.step, "machine": self.table["machine"],
                "date": self.table["date"], "backbone_ms": self.backbone_ms, "scale": self.scale}


def budget_fraction(cost, budget, budget_ms=0.0):
    """The budget as a fraction of the backbone's latency: ``budget``, or ``budget_ms`` divided
    by the table's backbone latency. Raises ``ValueError`` naming ``budget_ms`` when no pruning
    can meet it or it asks for nothing."""
    if not budget_ms:
        return budget
    fraction = budget_ms / cost.backbone_ms
    floor = cost.minimum_fraction()
    if fraction >= 1.0 or fraction <= floor:
        raise ValueError(
            f"budget_ms must lie between what the network takes with every switch off and the backbone's "
            f"latency on the table's target. Expected budget_ms in ({floor * cost.backbone_ms:.4g}, "
            f"{cost.backbone_ms:.4g}) ms. Received: budget_ms={budget_ms!r}"
        )
    return fraction


def table_scale(table, table_ms):
    """The table's whole-backbone reference over its switched convs' sum (1 without one)."""
    reference = (table.get("reference") or {}).get("ms")
    return float(reference) / table_ms if reference else 1.0


def model_latency_ms(table, model, scale=1.0):
    """The table's latency of a reduced model (plain Keras convs named as the switched convs
    they came from) as the Android file runs it: ``scale`` times the sum of each table layer at the
    model's channel counts, a conv behind a ``ChannelGather`` at the gather's input width (the
    export absorbs the gather into the conv as zero kernel rows)."""
    counts = {}
    for layer in costs.unique_layers(model):
        if layer.name in table["layers"] and isinstance(layer, keras.layers.Conv2D):
            source = layer.input._keras_history.operation
            cin = source.input.shape[-1] if isinstance(source, bap_layers.ChannelGather) else layer.kernel.shape[2]
            counts[layer.name] = (int(cin), int(layer.kernel.shape[3]))
    return scale * float(np.sum([latency_table.interpolate(table["layers"][n], *c) for n, c in counts.items()]))


def report_entry(latency, layout, promise=None):
    """The report's ``latency_budget``: per domain, the budget, the table's prediction for its
    own model and for its Android signature (the union model's channels in the ``shared`` and
    ``shared_filters`` layouts), and the signature's latency measured by the eval stage as a
    fraction of the backbone's measured beside it (``promise``; None when not timed).

    Args:
      latency: the prune stage's ``costs["latency"]`` (its ``budget``: a fraction of the
        backbone's latency).
      layout: the Android file's layout.
      promise: the eval stage's ``promise`` dict.
    """
    signatures = ((promise or {}).get("android") or {}).get("signatures", {})
    backbone_ms, budget = latency["backbone_ms"], latency["budget"]
    domains = {}
    for name, own_ms in latency["domains_ms"].items():
        signature_ms = own_ms if layout == "per_domain" else latency["union_ms"][name]
        measured = signatures.get(name, {}).get("latency_ratio")
        domains[name] = {
            "predicted_ms": own_ms, "predicted_ratio": own_ms / backbone_ms,
            "signature_predicted_ms": signature_ms, "signature_predicted_ratio": signature_ms / backbone_ms,
            "measured_ratio": measured,
            "measured_over_budget": None if measured is None else measured / budget,
        }
    table = {key: latency[key] for key in ("target", "step", "machine", "date", "backbone_ms", "scale")}
    return {"budget": budget, "budget_ms": budget * backbone_ms, "layout": layout, "table": table, "domains": domains}


def describe(entry):
    """Markdown lines of a ``report_entry``."""
    if not entry:
        return []
    table = entry["table"]
    lines = [f"- Latency budget: {entry['budget']:.3f} of the backbone's {table['backbone_ms']:.3f} ms = "
             f"{entry['budget_ms']:.3f} ms per domain on the table's target ({table['target']}, step "
             f"{table['step']}, measured on {table['machine']}, {table['date']}); the Android file's "
             f"{entry['layout']} signatures timed here, as a fraction of the backbone timed beside them:"]
    for name, domain in entry["domains"].items():
        measured = ("not timed" if domain["measured_ratio"] is None else
                    f"measured x{domain['measured_ratio']:.2f} ({domain['measured_over_budget']:.2f} of the budget)")
        lines.append(f"  - `{name}`: its model x{domain['predicted_ratio']:.2f} by the table, its signature "
                     f"x{domain['signature_predicted_ratio']:.2f} by the table, {measured}")
    return lines
