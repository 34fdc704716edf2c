"""The microcontroller budget: each domain's int8 file within the flash, its TFLM arena within
the RAM a board leaves for them.

``McuCost`` estimates, per domain, from the kept counts (``KeptCounts``) and the layer shapes:

- **flash**: the domain's own full-int8 model as the export stage writes it: one byte per
  weight (the switched convs' ``k*k*in*out`` at their kept counts, every other layer at its
  full size, the domain's head), ``BYTES_PER_CHANNEL`` per output channel of each layer with
  weights (an int32 bias; a float32 scale and an int64 zero point for the weights' channel
  and as many for the bias's) and the format's own bytes
  (tensor and operator tables, names: ``FORMAT_BYTES_PER_LAYER`` per layer that writes a tensor,
  plus ``FILE_BYTES``);
- **RAM**: the peak of the int8 activations alive at once, walking the graph in order (a
  tensor lives from the layer that writes it to the last that reads it; BatchNorms and
  activations fuse into their conv, so they write no tensor of their own), plus what TFLM
  keeps in the arena for the whole run: ``ARENA_BYTES_PER_CHANNEL`` per output channel of each
  layer with weights (the int8 kernels' per-channel output multiplier and shift) and
  ``ARENA_BYTES_PER_LAYER`` per layer that writes a tensor (its tensor and node structs), plus
  ``ARENA_FIXED_BYTES``.

A conv that reads fewer channels than its domain keeps of its input stream (a residual
stream, or a stream another conv reads more of) gets a gather in its domain's model: a copy of
the channels it reads, alive with its input and output, and one layer more in the file and
the arena.

A domain's cost is ``max(flash / flash budget, RAM / RAM budget)``: the budget asks it to be
at most 1, and the dual ascent pushes on whichever of the two binds. Both sums are
differentiable in the kept counts (the peak through its largest step), so the same training
drives them. The constants were fitted on ResNet-26 int8 files at width 16 (the pocket
backbone, unpruned and pruned for four domains) and width 4, then the fixed terms raised until
the estimates bound the measurements at width 16 (the files by 0-2 %, the arenas by 4-7 %);
at width 4 the file is over-estimated by ~15 %. The eval stage measures the real file and arena
with TFLM, and the report puts estimate and measurement side by side.
"""

import keras
import numpy as np
from keras import ops

from bap_tf import costs
from bap_tf import layers as bap_layers
from bap_tf.budgets.kept_counts import KeptCounts

KIB = 1024
BYTES_PER_CHANNEL = 28
FORMAT_BYTES_PER_LAYER = 200
FILE_BYTES = 23 * KIB
GATHER_INDEX_BYTES = 4
ARENA_BYTES_PER_CHANNEL = 8
ARENA_BYTES_PER_LAYER = 240
ARENA_FIXED_BYTES = 2.5 * KIB


class McuCost:
    """Flash and RAM of each domain's int8 model as fractions of a board's budget.

    Args:
      network: the switched network.
      flash_kb: flash (KiB) one domain's model may take.
      ram_kb: RAM (KiB) its TFLM arena may take.

    Raises ``ValueError`` naming ``mcu_flash_kb`` or ``mcu_ram_kb`` when not even a model with
    every switch off fits (the stem, the heads and the pinned streams stay whole).
    """

    metric = "mcu"

    def __init__(self, network, flash_kb, ram_kb, counts=None):
        self.flash_bytes, self.ram_bytes = float(flash_kb) * KIB, float(ram_kb) * KIB
        self.counts = counts or KeptCounts(network)
        graph = self.counts.graph
        self._convs = {}
        fixed, fixed_channels = FILE_BYTES, 0
        for node in graph.nodes:
            layer = node.layer
            if isinstance(layer, bap_layers.SwitchedConv2D):
                self._convs[node.name] = int(np.prod(layer.kernel_size))
            elif isinstance(layer, bap_layers.DomainHeads):
                heads = layer
            elif node.name in graph.spaces and layer.weights and not _folds(layer):
                weights = costs.layer_cost(layer).params
                channels = int(layer.output.shape[-1])
                fixed += weights + BYTES_PER_CHANNEL * channels
                fixed_channels += channels
        features = int(heads.kernel.shape[0])
        self._head_bytes = np.array([(features + BYTES_PER_CHANNEL) * n for n in heads.num_classes], "float32")
        self._fixed_flash = float(fixed)
        self._fixed_arena = float(ARENA_BYTES_PER_CHANNEL * fixed_channels + ARENA_FIXED_BYTES)
        self._plan_activations(graph)
        self._fixed_flash += FORMAT_BYTES_PER_LAYER * len(self._steps)
        floor = self.estimate(ops.zeros((1, self.counts.num_switches)))
        for name, used, available in (("mcu_flash_kb", floor["flash_bytes"], self.flash_bytes),
                                      ("mcu_ram_kb", floor["ram_bytes"], self.ram_bytes)):
            if float(ops.convert_to_numpy(used).max()) >= available:
                need = float(ops.convert_to_numpy(used).max()) / KIB
                raise ValueError(
                    f"{name} is below what the network needs with every switch off ({need:.1f} KiB: the layers no "
                    f"switch prunes, the heads and the streams kept whole). Expected {name} > {need:.1f}. "
                    f"Received: {name}={available / KIB:g}"
                )

    def _plan_activations(self, graph):
        """Which tensors are alive at each step: ``self._steps``, one list of tensors (named by
        the node that writes them) per node that writes one. A layer without weights that reads
        one tensor of its own shape (BatchNorm folded, an activation) fuses into the layer
        before it: it writes no tensor of its own."""
        writer, order, shapes, self._gathered = {}, [], {}, {}
        for node in graph.nodes:
            if node.name not in graph.spaces:
                continue
            inputs = [writer.get(name, name) for name in graph.inputs[node.name] if name in graph.spaces]
            shape = tuple(node.layer.output.shape[1:])
            fused = _folds(node.layer) or not node.layer.weights
            if fused and len(inputs) == 1 and shapes.get(inputs[0]) == shape:
                writer[node.name] = inputs[0]
                continue
            shapes[node.name] = shape
            if node.name in self._convs and self._gathers(graph, node.name):
                self._gathered[node.name] = (len(order), inputs[0])
            order.append((node.name, inputs))
        last_read = {}
        for index, (name, inputs) in enumerate(order):
            last_read[name] = index
            for source in inputs:
                last_read[source] = index
        self._steps = [[name for name, _ in order[: index + 1] if last_read[name] >= index]
                       for index in range(len(order))]
        self._pixels = {name: int(np.prod(shape[:-1])) for name, shape in shapes.items()}

    def _gathers(self, graph, conv):
        """Whether ``conv`` may read part of its stream: one that stays whole or that another
        conv reads too (``estimate`` decides per domain)."""
        return any(graph.groups[g].pinned or len(graph.groups[g].consumers) > 1 for g in graph.read_groups(conv))

    def estimate(self, gates):
        """``{"flash_bytes", "ram_bytes"}``, each ``(D,)``: the int8 file and the arena per domain."""
        groups = self.counts.group_counts(gates)
        flash = self._fixed_flash + ops.convert_to_tensor(self._head_bytes[: gates.shape[0]])
        persistent = self._fixed_arena + ARENA_BYTES_PER_LAYER * len(self._steps)
        for name, (cin, cout) in self.counts.conv_counts(gates, groups).items():
            flash = flash + self._convs[name] * cin * cout + BYTES_PER_CHANNEL * cout
            persistent = persistent + ARENA_BYTES_PER_CHANNEL * cout
        sizes = {name: self._pixels[name] * self.counts.channels(gates, name, groups) for name in self._pixels}
        steps = [sum(sizes[name] for name in live) for live in self._steps]
        for conv, (step, source) in self._gathered.items():
            cin = self.counts.in_count(gates, conv)
            # 1 where the conv reads fewer channels than its stream keeps: a step, no gradient.
            gathers = ops.cast(cin < self.counts.channels(gates, source, groups) - 0.5, "float32")
            steps[step] = steps[step] + gathers * self._pixels[source] * cin
            flash = flash + gathers * (GATHER_INDEX_BYTES * cin + FORMAT_BYTES_PER_LAYER)
            persistent = persistent + gathers * ARENA_BYTES_PER_LAYER
        steps = [ops.broadcast_to(ops.convert_to_tensor(s, "float32"), (gates.shape[0],)) for s in steps]
        ram = ops.max(ops.stack(steps), axis=0) + persistent
        return {"flash_bytes": flash, "ram_bytes": ram}

    def kept_fractions(self, gates, rounded=False):
        estimate = self.estimate(gates)
        return ops.maximum(estimate["flash_bytes"] / self.flash_bytes, estimate["ram_bytes"] / self.ram_bytes)

    def minimum_fraction(self):
        return 0.0  # checked in __init__, naming the flag

    def summary(self):
        return {"flash_kb": self.flash_bytes / KIB, "ram_kb": self.ram_bytes / KIB}


def _folds(layer):
    """A BatchNorm: the int8 file folds it into the conv before it (its bias)."""
    return isinstance(layer, (keras.layers.BatchNormalization, bap_layers.DomainBatchNormalization))
