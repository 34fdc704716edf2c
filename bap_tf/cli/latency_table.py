"""bap-latency-table: each switched conv's LiteRT latency by kept channel counts, as JSON.

    bap-latency-table --backbone=resnet26 --width=16 --image_size=32 --target=avx512 \\
        --output=latency/avx512.json
    bap-latency-table --workdir=runs/pocket --target=neon --output=latency/neon_here.json

Measures on this machine (LiteRT, batch 1, XNNPACK, --threads); see
``bap_tf.export.latency_table`` and docs/latency_table.md for the format. For a phone:
``--cells_only --cells_dir=DIR`` writes the per-cell ``.tflite`` files and ``cells.json``
without timing; after timing them there with ``benchmark_model``, ``--cells_dir=DIR
--cell_ms=ms.json --machine=...`` writes the table from those ms.
"""

import os
import time

from absl import flags

from bap_tf.cli import app
from bap_tf.config import BACKBONES
from bap_tf.export import latency_table as lt

COMMAND = "bap-latency-table"
FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "A run's folder: its config.json gives --backbone, --width and --image_size.")
flags.DEFINE_enum("backbone", "resnet26", BACKBONES, "The backbone whose switched convs are measured.")
flags.DEFINE_integer("width", 16, "resnet26 only: channels of the first stage.", lower_bound=1)
flags.DEFINE_integer("image_size", 32, "Square input size in pixels.", lower_bound=8)
flags.DEFINE_enum("target", None, sorted(lt.TILES),
                  "CPU whose float32 XNNPACK output-channel tile is the grid step "
                  + ", ".join(f"{k}: {v}" for k, v in lt.TILES.items()) + ". Or give --step.")
flags.DEFINE_integer("step", None, "Grid step in channels (instead of --target).", lower_bound=1)
flags.DEFINE_string("output", None, "Where to write the table (JSON). Required unless --cells_only.")
flags.DEFINE_integer("threads", 1, "LiteRT threads (batch is 1).", lower_bound=1)
flags.DEFINE_integer("rounds", lt.DEFAULT_ROUNDS, "Timing rounds; a cell's ms is the median of its round medians.",
                     lower_bound=1)
flags.DEFINE_float("round_s", lt.DEFAULT_ROUND_S, "Seconds each cell runs per round.", lower_bound=0.0)
flags.DEFINE_string("cells_dir", None, "Keep the cells' .tflite files and cells.json here, and reuse them "
                    "(default: a temporary folder).")
flags.DEFINE_boolean("cells_only", False, "Only write the cells' files in --cells_dir (to time them elsewhere).")
flags.DEFINE_string("cell_ms", None, "JSON {signature: ms} measured elsewhere for the cells in --cells_dir: "
                    "the table is made from it instead of timing here.")
flags.DEFINE_string("machine", None, "Where the ms were measured (default: this machine's CPU). "
                    "Required with --cell_ms.")
flags.DEFINE_boolean("reference", True, "Also time the whole unpruned backbone in the same rounds (one more "
                     "conversion), stored as the table's 'reference'.")


def network_shape():
    """``(backbone, width, image_size)`` from --workdir's config, or from the flags."""
    given = (FLAGS.backbone, FLAGS.width, FLAGS.image_size)
    if FLAGS.workdir is None:
        return given
    from bap_tf.run.workdir import Workdir

    config = Workdir(os.path.abspath(FLAGS.workdir)).saved_config()
    if config is None:
        raise FileNotFoundError(f"--workdir has no config.json. Expected the folder of a run. "
                                f"Received: workdir={FLAGS.workdir!r}")
    saved = (config.backbone, config.width, config.image_size)
    for name, flag_value, value in zip(("backbone", "width", "image_size"), given, saved):
        if FLAGS[name].present and flag_value != value:
            raise ValueError(f"--{name} contradicts the run in --workdir ({value!r}). Expected it left out. "
                             f"Received: --{name}={flag_value!r}")
    return saved


def check_flags():
    if (FLAGS.target is None) == (FLAGS.step is None):
        raise ValueError(f"Expected one of --target ({','.join(sorted(lt.TILES))}) or --step. "
                         f"Received: target={FLAGS.target!r}, step={FLAGS.step!r}")
    if not FLAGS.cells_only and not FLAGS.output:
        raise ValueError("Expected --output=PATH for the table (or --cells_only). Received: no --output")
    if (FLAGS.cells_only or FLAGS.cell_ms) and not FLAGS.cells_dir:
        raise ValueError("--cells_only and --cell_ms need --cells_dir. Received: no --cells_dir")
    if FLAGS.cell_ms and not FLAGS.machine:
        raise ValueError("--cell_ms needs --machine, the device that measured it. Received: no --machine")


def main(argv):
    check_flags()
    app.quiet_tensorflow()
    started = time.perf_counter()
    if FLAGS.cell_ms:
        table = from_cell_ms()
    else:
        table = measure()
        if table is None:
            return
    path = lt.save_table(table, FLAGS.output)
    report(table, path, time.perf_counter() - started)


def from_cell_ms():
    from bap_tf.atomic import read_json

    listing = read_json(os.path.join(FLAGS.cells_dir, lt.CELLS_FILE))
    if listing.get("format") != lt.CELLS_FORMAT:
        raise ValueError(f"{lt.CELLS_FILE} in --cells_dir is not a cells listing. Expected format "
                         f"{lt.CELLS_FORMAT!r}. Received: format={listing.get('format')!r}")
    _, step = lt.resolve_step(FLAGS.step, FLAGS.target)
    if listing["step"] != step:
        raise ValueError(f"The cells in --cells_dir were made for step {listing['step']} (target "
                         f"{listing['target']!r}). Received: step={step}")
    ms = read_json(FLAGS.cell_ms)
    return lt.assemble_table(listing, ms, threads=FLAGS.threads, machine=FLAGS.machine,
                             reference_ms=ms.get(lt.REFERENCE_SIGNATURE))


def measure():
    from bap_tf.backbones import build_backbone

    backbone_name, width, image_size = network_shape()
    backbone = build_backbone(backbone_name, (image_size, image_size, 3), width=width)
    reference = backbone if FLAGS.reference else None
    if FLAGS.cells_only:
        plan = lt.plan_cells(backbone, FLAGS.step, FLAGS.target)
        files = lt.write_cells(plan, FLAGS.cells_dir, reference=reference, progress=True)
        app.say(COMMAND, f"wrote {len(files)} cells' signatures and {lt.CELLS_FILE} in {FLAGS.cells_dir}")
        return None
    return lt.measure_table(backbone, FLAGS.step, FLAGS.threads, FLAGS.rounds, FLAGS.round_s, FLAGS.cells_dir,
                            target=FLAGS.target, reference=reference, progress=True)


def report(table, path, seconds):
    layers = table["layers"]
    cells = sum(len(e["in_counts"]) * len(e["out_counts"]) for e in layers.values())
    distinct = len({(str(e["conv"]), i, o) for e in layers.values() for i in e["in_counts"] for o in e["out_counts"]})
    full = sum(e["ms"][-1][-1] for e in layers.values())
    smallest = sum(e["ms"][0][0] for e in layers.values())
    reference = table.get("reference")
    app.say(COMMAND, f"wrote {path} in {seconds:.0f} s: {len(layers)} layers, {cells} cells ({distinct} distinct), "
                     f"target {table['target']} (step {table['step']}), {table['threads']} thread(s)")
    line = f"  switched convs at full counts {full:.3f} ms, at the smallest counts {smallest:.3f} ms"
    if reference:
        line += f"; the whole unpruned backbone {reference['ms']:.3f} ms"
    print(line, flush=True)


def run():
    app.run_app(COMMAND, main)


if __name__ == "__main__":
    run()
