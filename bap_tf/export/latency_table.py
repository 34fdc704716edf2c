"""Latency tables: what each switched convolution costs on a target, by kept channel counts.

A table holds, for every prunable (switched) convolution of a network, the measured latency
of that convolution alone over a grid of kept input counts ``cin`` and kept output counts
``cout``: both in multiples of the target's tile (``TILES``: the float32 XNNPACK
output-channel tile; latency moves in steps of it, not channel by channel), plus the full
counts when they are not multiples, and ``cin`` also at quarters of the first step
(``in_grid_counts``: the GEMM's reduction runs channel by channel, so latency falls with
``cin`` below a tile too, and linear interpolation above it loses little). ``interpolate``
reads it back bilinearly, with ``keras.ops``, so that a budget term can be differentiated with
respect to (soft) kept counts.

How a table is measured here (``measure_table``):

1. ``plan_cells``: the grid of each switched conv. A cell is a one-conv Keras model with the
   layer's kernel size, strides, dilation, padding, bias and input spatial size, and ``cin``
   -> ``cout`` channels (random weights; the activation is left out: it is not the conv's
   cost). Layers of the same shape share their cells, so each distinct cell is measured once.
2. ``write_cells``: all cells are converted together, a few ``.tflite`` files of up to
   ``MAX_SIGNATURES_PER_FILE`` signatures each (``export_android``: one signature per cell,
   ``image`` -> ``logits``), because a conversion costs ~10 s whatever its size. With a
   ``cache_dir`` the files stay there, named by their cells, and are reused by the next run;
   ``cells.json`` beside them says which signature is which cell (a phone measures them
   through it, ``docs/latency_table.md``).
3. ``time_cells``: LiteRT, batch 1, XNNPACK, ``threads`` threads; every cell in turn, round
   after round (``timing.interleaved_medians``, one round per call so that progress can be
   shown), each for about ``round_s`` per round; a cell's latency is the median of its
   per-round medians, so machine load that drifts during the measurement hits all cells alike.
4. ``assemble_table``: the ms of each layer's grid, in the JSON format ``FORMAT`` (below and
   ``docs/latency_table.md``); ``save_table`` / ``load_table`` write and check it.

The table format, ``bap_tf.latency_table/1``::

    {"format": "bap_tf.latency_table/1",
     "target": "avx512",            # TILES key, or "custom" for a step given directly
     "step": 32,                    # the grid step in channels
     "threads": 1,                  # LiteRT threads of the measurement
     "machine": "...",              # where it was measured (CPU model, or the phone)
     "date": "2025-...+00:00",      # UTC, ISO 8601
     "layers": {"stage1_block1_1_conv": {
         "in_counts": [16], "out_counts": [16],   # strictly increasing kept counts
         "ms": [[0.0123]],                        # len(in_counts) x len(out_counts) medians
         "conv": {"input_size": [32, 32], "kernel_size": [3, 3], ...}}, ...},
     # optional: "network" (its name), "litert" (version), "reference": {"name", "ms"}: the
     # whole unpruned backbone timed in the same rounds (the convs are part of it)}
"""

import dataclasses
import datetime
import hashlib
import importlib.metadata
import math
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from bap_tf.atomic import read_json, write_json

FORMAT = "bap_tf.latency_table/1"
CELLS_FORMAT = "bap_tf.latency_cells/1"
CELLS_FILE = "cells.json"
# float32 XNNPACK GEMM output-channel tiles (the microkernels' NR) of the usual CPUs.
TILES = {"avx512": 32, "avx2": 16, "neon": 8}
CUSTOM_TARGET = "custom"
MAX_SIGNATURES_PER_FILE = 96
DEFAULT_ROUNDS = 6
DEFAULT_ROUND_S = 0.05
REFERENCE_SIGNATURE = "reference"
_TABLE_FIELDS = ("format", "target", "step", "threads", "machine", "date", "layers")
_LAYER_FIELDS = ("in_counts", "out_counts", "ms")


# -- the grid ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Conv:
    """The shape of one convolution, all that its latency depends on besides channel counts."""

    input_size: tuple
    kernel_size: tuple
    strides: tuple
    dilation_rate: tuple
    padding: str
    use_bias: bool
    in_channels: int
    filters: int

    @classmethod
    def of(cls, layer):
        """The ``Conv`` of a called ``SwitchedConv2D`` (or ``Conv2D``)."""
        inputs = layer.input[0] if isinstance(layer.input, (list, tuple)) else layer.input
        height, width, in_channels = inputs.shape[1:]
        return cls((int(height), int(width)), tuple(layer.kernel_size), tuple(layer.strides),
                   tuple(layer.dilation_rate), str(layer.padding), bool(layer.use_bias),
                   int(in_channels), int(layer.filters))

    @classmethod
    def from_dict(cls, values):
        fields = {f.name: values[f.name] for f in dataclasses.fields(cls)}
        return cls(**{name: tuple(v) if isinstance(v, list) else v for name, v in fields.items()})

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def cell_name(self, cin, cout):
        """The signature key of this conv with ``cin`` -> ``cout`` channels (an identifier
        that spells out the whole shape, so equal names are equal cells)."""
        pair = lambda values: "x".join(map(str, values))  # noqa: E731
        name = (f"k{pair(self.kernel_size)}_s{pair(self.strides)}_{self.padding}"
                f"_h{self.input_size[0]}w{self.input_size[1]}_i{cin}_o{cout}")
        if self.dilation_rate != (1, 1):
            name += f"_d{pair(self.dilation_rate)}"
        return name + ("_bias" if self.use_bias else "")

    def cell_model(self, cin, cout, seed=0):
        """One-conv Keras model ``image (None, H, W, cin) -> (None, H', W', cout)``."""
        import keras

        image = keras.Input((*self.input_size, cin), name="image")
        conv = keras.layers.Conv2D(
            cout, self.kernel_size, strides=self.strides, padding=self.padding,
            dilation_rate=self.dilation_rate, use_bias=self.use_bias,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed),
            bias_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + 1),
            name="conv",
        )
        return keras.Model(image, conv(image), name=self.cell_name(cin, cout))


def grid_counts(channels, step):
    """Kept counts of a grid: ``step, 2*step, ...`` up to ``channels``, and ``channels``
    itself when it is not a multiple (``[channels]`` when it is below ``step``)."""
    counts = list(range(step, channels + 1, step))
    if not counts or counts[-1] != channels:
        counts.append(channels)
    return counts


def in_grid_counts(channels, step):
    """Kept input counts of a grid: ``grid_counts`` and the quarters of its first step below it."""
    counts = grid_counts(channels, step)
    quarters = sorted({max(1, step * k // 4) for k in (1, 2, 3)})
    return [c for c in quarters if c < counts[0]] + counts


def resolve_step(step=None, target=None):
    """``(target, step)`` from a ``TILES`` key, a step in channels, or both when they agree."""
    if target is not None and target not in TILES:
        raise ValueError(f"target must be one of {sorted(TILES)}. Received: target={target!r}")
    if step is None:
        if target is None:
            raise ValueError(f"Expected a target ({sorted(TILES)}) or a step. Received: neither")
        return target, TILES[target]
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step must be a positive integer (channels). Received: step={step!r}")
    if target is not None and TILES[target] != step:
        raise ValueError(f"step {step} contradicts target {target!r} (tile {TILES[target]}). "
                         f"Received: step={step}, target={target!r}")
    return (target or CUSTOM_TARGET), int(step)


def prunable_layers(network):
    """The switched convs of ``network``: a switched network, or a backbone (whose switched
    network is built here with one domain, so the rules decide which convs are switched)."""
    from bap_tf.switching import build_switched_network, switched_layers

    layers = switched_layers(network)
    if not layers:
        layers = switched_layers(build_switched_network(network, [("latency", 2)]))
    if not layers:
        raise ValueError(f"Network {network.name!r} has no prunable (switched) convolution. "
                         f"Received: layers {[layer.name for layer in network.layers]}")
    return layers


def plan_cells(network, step, target=None):
    """The grid of every switched conv of ``network`` and the names of its cells.

    Returns ``{"format": CELLS_FORMAT, "network", "target", "step", "layers": {name: {"conv",
    "in_counts", "out_counts", "cells": [[signature per cout] per cin]}}}``.
    """
    target, step = resolve_step(step, target)
    layers = {}
    for layer in prunable_layers(network):
        conv = Conv.of(layer)
        in_counts, out_counts = in_grid_counts(conv.in_channels, step), grid_counts(conv.filters, step)
        layers[layer.name] = {
            "conv": conv.to_dict(), "in_counts": in_counts, "out_counts": out_counts,
            "cells": [[conv.cell_name(cin, cout) for cout in out_counts] for cin in in_counts],
        }
    return {"format": CELLS_FORMAT, "network": network.name, "target": target, "step": step, "layers": layers}


def unique_cells(plan):
    """``{signature: (Conv, cin, cout)}`` of the plan's distinct cells, in first-seen order."""
    cells = {}
    for entry in plan["layers"].values():
        conv = Conv.from_dict(entry["conv"])
        for cin, row in zip(entry["in_counts"], entry["cells"]):
            for cout, name in zip(entry["out_counts"], row):
                cells.setdefault(name, (conv, cin, cout))
    return cells


# -- conversion and timing ----------------------------------------------------------------
def write_cells(plan, directory, *, reference=None, progress=False, max_per_file=MAX_SIGNATURES_PER_FILE):
    """Converts the plan's cells into ``.tflite`` files in ``directory``; returns
    ``{signature: (path, signature)}`` (what ``time_cells`` and ``timing`` take).

    Files are named by a hash of their cells, and one that already exists is reused (the cells'
    names spell out their whole shape). ``reference``: a Keras model (one image input, one
    output) converted too, never reused, under the signature ``REFERENCE_SIGNATURE``.
    ``cells.json`` (the plan plus ``"files": {file name: [signatures]}``) is written beside.
    """
    from tqdm import tqdm

    from bap_tf.export.convert import export_android

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cells = unique_cells(plan)
    names = list(cells)
    chunks = [names[i:i + max_per_file] for i in range(0, len(names), max_per_file)]
    files, listing = {}, {}
    jobs = [(f"cells_{_digest(chunk)}.tflite", chunk) for chunk in chunks]
    if reference is not None:
        jobs.append(("reference.tflite", [REFERENCE_SIGNATURE]))
    for file_name, chunk in tqdm(jobs, desc="converting", unit="file", disable=not progress, file=sys.stderr):
        path = directory / file_name
        if chunk == [REFERENCE_SIGNATURE]:
            export_android({REFERENCE_SIGNATURE: reference}, path)
        elif not path.exists():
            export_android({name: cells[name][0].cell_model(*cells[name][1:]) for name in chunk}, path)
        listing[file_name] = chunk
        files.update({name: (path, name) for name in chunk})
    write_json(directory / CELLS_FILE, {**plan, "files": listing})
    return files


def _digest(names):
    return hashlib.sha1("\n".join([FORMAT, *names]).encode()).hexdigest()[:12]


def time_cells(files, threads=1, rounds=DEFAULT_ROUNDS, round_s=DEFAULT_ROUND_S, warmup=5, progress=False):
    """``{signature: median ms}`` of ``files`` (``{key: (path, signature)}``), timed together
    in LiteRT as ``timing.signature_latencies`` does, one round per ``interleaved_medians``
    call (so that a progress bar can follow); the result is the median of the round medians."""
    from ai_edge_litert.interpreter import Interpreter
    from tqdm import tqdm

    from bap_tf.export.timing import interleaved_medians, signature_invoker

    interpreters, candidates = {}, {}
    for key, (path, signature) in files.items():
        if str(path) not in interpreters:
            interpreters[str(path)] = Interpreter(model_path=str(path), num_threads=threads)
        candidates[key] = signature_invoker(interpreters[str(path)], signature)
    per_round = {key: [] for key in candidates}
    for index in tqdm(range(rounds), desc="timing", unit="round", disable=not progress, file=sys.stderr):
        # A warm-up call per round also re-estimates each cell's calls per round.
        medians = interleaved_medians(candidates, 1, None, warmup=warmup if index == 0 else 1, round_s=round_s)
        for key, timing in medians.items():
            per_round[key].append(timing["median_s"])
    return {key: statistics.median(values) * 1e3 for key, values in per_round.items()}


def assemble_table(plan, cell_ms, *, threads, machine, date=None, reference_ms=None):
    """The table (``FORMAT``) of ``plan`` from ``{signature: ms}``; checked before returned.

    Raises ``ValueError`` naming the plan's signatures that ``cell_ms`` lacks.
    """
    missing = [name for name in unique_cells(plan) if name not in cell_ms]
    if missing:
        raise ValueError(
            f"The cell latencies lack {len(missing)} of the plan's {len(unique_cells(plan))} cells. "
            f"Expected an ms value for every signature of {CELLS_FILE}. Received: none for {missing[:5]}"
            + (" ..." if len(missing) > 5 else "")
        )
    layers = {
        name: {"in_counts": list(entry["in_counts"]), "out_counts": list(entry["out_counts"]),
               "ms": [[float(cell_ms[cell]) for cell in row] for row in entry["cells"]], "conv": entry["conv"]}
        for name, entry in plan["layers"].items()
    }
    table = {
        "format": FORMAT, "target": plan["target"], "step": int(plan["step"]), "threads": int(threads),
        "machine": str(machine),
        "date": date or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "layers": layers, "network": plan.get("network"), "litert": _litert_version(),
    }
    if reference_ms is not None:
        table["reference"] = {"name": plan.get("network"), "ms": float(reference_ms)}
    return check_table(table)


def measure_table(network, step=None, threads=1, rounds=DEFAULT_ROUNDS, round_s=DEFAULT_ROUND_S,
                  cache_dir=None, *, target=None, reference=None, progress=False):
    """Measures the latency table of ``network``'s switched convs on this machine.

    Args:
      network: a switched network (``switching.build_switched_network``) or its backbone.
      step: grid step in channels; or ``target``, a ``TILES`` key (``step`` may also be one).
      threads: LiteRT threads (1: a phone's big core; batch is 1 always).
      rounds, round_s: timing rounds and seconds per cell per round (see ``time_cells``).
      cache_dir: where the cells' ``.tflite`` files and ``cells.json`` stay (and are reused
        from); None: a temporary folder.
      reference: a Keras model (the unpruned backbone) timed in the same rounds, stored as the
        table's ``"reference"``.
      progress: tqdm bars on stderr.

    Returns the table dict (``FORMAT``); ``save_table`` writes it.
    """
    if isinstance(step, str):
        step, target = None, step
    plan = plan_cells(network, step, target)
    with tempfile.TemporaryDirectory(prefix="bap_tf_latency_") as work:
        files = write_cells(plan, cache_dir or work, reference=reference, progress=progress)
        ms = time_cells(files, threads, rounds, round_s, progress=progress)
    return assemble_table(plan, ms, threads=threads, machine=machine_description(),
                          reference_ms=ms.get(REFERENCE_SIGNATURE))


def machine_description():
    """This machine's CPU model, architecture, cores and OS, for the table's ``machine``."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model or 'unknown CPU'} ({platform.machine()}, {os.cpu_count()} cores, {platform.system()})"


def _litert_version():
    try:
        return importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        return None


# -- the file ------------------------------------------------------------------------------
def save_table(table, path):
    """Writes ``table`` (checked first) to ``path`` as JSON, atomically; returns the ``Path``."""
    return write_json(path, check_table(table, f"latency table for {path}"))


def load_table(path, network=None):
    """The table in ``path``, checked (``check_table``); with ``network``, also checked to
    cover each of its switched convs at their full channel counts (``check_covers``)."""
    try:
        table = read_json(path)
    except ValueError as error:
        raise ValueError(f"The latency table {path} is not JSON. Expected a file written by "
                         f"bap-latency-table. Received: {error}") from None
    check_table(table, f"latency table {path}")
    if network is not None:
        check_covers(table, network, f"latency table {path}")
    return table


def check_table(table, where="latency table"):
    """Returns ``table`` if it follows ``FORMAT``; else raises ``ValueError`` naming the bad
    field and value."""
    if not isinstance(table, dict):
        raise ValueError(f"The {where} must be a JSON object. Received: {type(table).__name__}")
    missing = [field for field in _TABLE_FIELDS if field not in table]
    if missing:
        raise ValueError(f"The {where} lacks the fields {missing}. Expected {list(_TABLE_FIELDS)}. "
                         f"Received: fields {sorted(table)}")
    if table["format"] != FORMAT:
        raise ValueError(f"The {where} is not a bap-tf latency table. Expected format {FORMAT!r}. "
                         f"Received: format={table['format']!r}")
    for field in ("step", "threads"):
        if not _is_count(table[field]):
            raise ValueError(f"The {where}'s {field} must be a positive integer. Received: {field}={table[field]!r}")
    for field in ("target", "machine", "date"):
        if not isinstance(table[field], str):
            raise ValueError(f"The {where}'s {field} must be a string. Received: {field}={table[field]!r}")
    layers = table["layers"]
    if not isinstance(layers, dict) or not layers:
        raise ValueError(f"The {where}'s layers must be a non-empty object. Received: layers={layers!r}")
    for name, entry in layers.items():
        _check_layer(entry, f"Layer {name!r} of the {where}")
    return table


def _check_layer(entry, where):
    if not isinstance(entry, dict) or any(field not in entry for field in _LAYER_FIELDS):
        raise ValueError(f"{where} must have the fields {list(_LAYER_FIELDS)}. "
                         f"Received: {sorted(entry) if isinstance(entry, dict) else entry!r}")
    for field in ("in_counts", "out_counts"):
        counts = entry[field]
        if (not isinstance(counts, list) or not counts or not all(map(_is_count, counts))
                or any(a >= b for a, b in zip(counts, counts[1:]))):
            raise ValueError(f"{where}: {field} must be a non-empty list of strictly increasing "
                             f"positive integers. Received: {field}={counts!r}")
    rows, columns = len(entry["in_counts"]), len(entry["out_counts"])
    ms = entry["ms"]
    if not isinstance(ms, list) or len(ms) != rows or any(not isinstance(r, list) or len(r) != columns for r in ms):
        shape = [len(r) if isinstance(r, list) else None for r in ms] if isinstance(ms, list) else ms
        raise ValueError(f"{where}: ms must be {rows} rows (in_counts) of {columns} values (out_counts). "
                         f"Received: ms row lengths {shape!r}")
    for row in ms:
        for value in row:
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise ValueError(f"{where}: every ms must be a finite number >= 0. Received: ms value {value!r}")


def _is_count(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def check_covers(table, network, where="latency table"):
    """Raises ``ValueError`` unless ``table`` has every switched conv of ``network``, each
    with the conv's full input and output channel counts as its last grid counts and, where the
    table records it, the conv's input size (a table made at another image size prices other
    convs)."""
    for layer in prunable_layers(network):
        entry = table["layers"].get(layer.name)
        if entry is None:
            raise ValueError(f"The {where} has no layer {layer.name!r} of network {network.name!r}. "
                             f"Expected one entry per switched conv (remake it for this network). "
                             f"Received: layers {sorted(table['layers'])}")
        conv = Conv.of(layer)
        measured_size = (entry.get("conv") or {}).get("input_size")
        if measured_size is not None and tuple(measured_size) != conv.input_size:
            raise ValueError(f"Layer {layer.name!r} of the {where} was measured at input size "
                             f"{tuple(measured_size)}, but the network's conv reads {conv.input_size} (make the "
                             f"table at the network's image size). Received: input_size={list(measured_size)}")
        full = (entry["in_counts"][-1], entry["out_counts"][-1])
        if full != (conv.in_channels, conv.filters):
            raise ValueError(f"Layer {layer.name!r} of the {where} ends at {full[0]} -> {full[1]} channels, "
                             f"but the network's conv has {conv.in_channels} -> {conv.filters}. "
                             f"Received: in_counts={entry['in_counts']}, out_counts={entry['out_counts']}")


# -- reading it ----------------------------------------------------------------------------
def interpolate(table_layer, cin, cout):
    """Bilinear interpolation of a layer's ms at kept counts ``cin``, ``cout``.

    Counts may be fractional and are clamped to the grid's range (below the first count the
    first row's ms, above the last the last's). Written with ``keras.ops``: with tensor counts
    the result is a tensor differentiable with respect to both (the slope of the grid interval
    the count lies in; at a grid point, the interval above it; zero where clamped). With Python
    or numpy counts it returns numpy. ``cin`` and ``cout`` broadcast against each other.
    """
    from keras import ops

    as_numpy = all(isinstance(c, (int, float, np.integer, np.floating, np.ndarray)) for c in (cin, cout))
    ins, outs, ms = _grid(table_layer)
    cin = ops.cast(ops.convert_to_tensor(cin), "float32")
    cout = ops.cast(ops.convert_to_tensor(cout), "float32")
    i, u = _segment(ins, cin)
    j, v = _segment(outs, cout)
    flat, columns = ops.convert_to_tensor(ms.reshape(-1)), ms.shape[1]
    corner = lambda di, dj: ops.take(flat, (i + di) * columns + (j + dj))  # noqa: E731
    result = ((1 - u) * (1 - v) * corner(0, 0) + (1 - u) * v * corner(0, 1)
              + u * (1 - v) * corner(1, 0) + u * v * corner(1, 1))
    return ops.convert_to_numpy(result) if as_numpy else result


def _grid(table_layer):
    """Counts and ms as float32 arrays, an axis of one count widened to two equal rows (so
    every axis has an interval; the value is then constant along it)."""
    ins = np.asarray(table_layer["in_counts"], np.float32)
    outs = np.asarray(table_layer["out_counts"], np.float32)
    ms = np.asarray(table_layer["ms"], np.float32).reshape(len(ins), len(outs))
    if len(ins) == 1:
        ins, ms = np.append(ins, ins[0] + 1), np.concatenate([ms, ms], axis=0)
    if len(outs) == 1:
        outs, ms = np.append(outs, outs[0] + 1), np.concatenate([ms, ms], axis=1)
    return ins, outs, ms


def _segment(grid, count):
    """``(k, t)``: the interval ``[grid[k], grid[k+1]]`` that holds ``count`` (the upper one at
    an inner grid point) and the clamped fraction ``t`` in it; ``k`` carries no gradient."""
    from keras import ops

    inner = ops.convert_to_tensor(grid[1:-1])
    k = ops.sum(ops.cast(ops.expand_dims(count, -1) >= inner, "int32"), axis=-1)
    low, high = ops.take(ops.convert_to_tensor(grid), k), ops.take(ops.convert_to_tensor(grid), k + 1)
    return k, ops.clip((count - low) / (high - low), 0.0, 1.0)


def table_latency(table, counts):
    """Sum of ``interpolate`` over ``counts``: ``{layer name: (cin, cout)}`` (the layers not
    named are not counted). Raises ``ValueError`` for a name the table lacks."""
    total = 0.0
    for name, (cin, cout) in counts.items():
        if name not in table["layers"]:
            raise ValueError(f"The latency table has no layer {name!r}. Expected one of "
                             f"{sorted(table['layers'])}. Received: counts for {name!r}")
        total = total + interpolate(table["layers"][name], cin, cout)
    return total
