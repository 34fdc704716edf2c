"""Training overhead: the budget-aware multi-domain step vs plain Keras fine-tuning of the backbone.

Both train on the same interleaved pocket batches (``bap_tf.data.train_dataset``: 32 images per
domain, 4 domains, 32 px; a fixed set of batches held in memory so that the input pipeline is
not timed) with the same backbone and Adam:

- **BAP**: ``bap_tf.run.train_stage.build_model`` (the ``BudgetAwareModel`` ``bap-train`` builds:
  frozen switched convs, per-domain switches, BatchNorms and heads, budget and sharing terms,
  dual ascent) and its ``fit``;
- **plain**: the same backbone in plain Keras, convolutions frozen, its BatchNorms and a head per
  domain trainable: one functional model over the same interleaved batch, each sample scored by
  its domain's head (standard layers; the per-sample head pick is a gather) and
  ``SparseCategoricalCrossentropy``, ``compile`` + ``fit``.

Each runs in its own child process; the figure is the median step time after warm-up steps
(a callback stamps each batch), as images/s and as time per image. Memory: the child's peak
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and its growth from before
the model is built to the end of training; ``tf.config.experimental.get_memory_info("CPU:0")``
is tried too and recorded (TensorFlow offers it for GPUs only). Target: BAP's time per image
<= 1.5 x plain.

    python -m benchmarks.training_overhead           # 3 alternating repeats, 10 + 40 steps: ~8 min
    python -m benchmarks.training_overhead --quick   # 2 alternating repeats, 3 + 10 steps: ~4 min
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from bap_tf.export import timing
from benchmarks import common

NAME = "training_overhead"
KINDS = ("bap", "plain")
TARGET = 1.5


# -- child process ----------------------------------------------------------------------------
def plain_model(config, domains):
    """The backbone with frozen convs and trainable BatchNorms, plus one Dense head per domain."""
    import keras
    from keras import ops

    from bap_tf.run.backbone import load_backbone

    backbone = load_backbone(config)
    for layer in backbone.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            layer.trainable = False
    image = keras.Input((config.image_size, config.image_size, 3), name="image")
    domain = keras.Input((), dtype="int32", name="domain")
    features = backbone(image)
    heads = [keras.layers.Dense(classes, name=f"{name}_head")(features) for name, classes in domains]
    # Sample i is scored by its own domain's head: every head's logits side by side, then each
    # row keeps its domain's columns, padded to the widest head with a large negative logit.
    widest = max(classes for _, classes in domains)
    offsets = [sum(c for _, c in domains[:i]) for i in range(len(domains))]
    columns = [[offset + min(j, classes - 1) for j in range(widest)] for offset, (_, classes) in zip(offsets, domains)]
    valid = [[j < classes for j in range(widest)] for _, classes in domains]
    logits_all = keras.layers.Concatenate(name="all_heads")(heads)
    picked = ops.take_along_axis(logits_all, ops.take(ops.array(columns, "int32"), domain, axis=0), axis=1)
    logits = ops.where(ops.take(ops.array(valid), domain, axis=0), picked, -1e9)
    model = keras.Model({"image": image, "domain": domain}, logits, name="plain_finetuning")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def child(kind, settings, output):
    import keras
    import tensorflow as tf

    from bap_tf.config import ExperimentConfig
    from bap_tf.data import train_dataset
    from bap_tf.run import sources as data_sources
    from bap_tf.run.train_stage import build_model

    keras.utils.set_random_seed(0)
    config = ExperimentConfig(dataset="pocket", batch_size=settings["batch_size"],
                              pretrained=settings["pretrained"]).resolve()
    sources = data_sources.domain_sources(config, "train")
    domains = data_sources.domain_specs(sources)
    steps = settings["warmup_steps"] + settings["timed_steps"]
    batches = list(train_dataset(sources, batch_size=config.batch_size, image_size=config.image_size, seed=0,
                                 augment=True, steps_per_epoch=settings["held_batches"]))
    # The same batches over and over, from memory: the input pipeline is not what is timed.
    stacked = tf.nest.map_structure(lambda *parts: tf.stack(parts), *batches)
    data = tf.data.Dataset.from_tensor_slices(stacked).repeat()
    rss_before_model = common.peak_rss_mib()
    if kind == "bap":
        model = build_model(config, domains, tf.distribute.get_strategy())
    else:
        model = plain_model(config, domains)

    timer = common.step_timer()
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=[timer], shuffle=False, verbose=0)
    stamps = timer.times
    fit_s = time.perf_counter() - start
    try:
        memory_info = {k: int(v) for k, v in tf.config.experimental.get_memory_info("CPU:0").items()}
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        memory_info = f"unavailable: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
    timed = stamps[settings["warmup_steps"]:]
    result = {
        "kind": kind,
        "global_batch": config.batch_size * len(domains),
        "step_s": timing.summarize(timed),
        "first_step_s": stamps[0],
        "fit_s": fit_s,
        "trainable_weights": int(sum(int(w.numpy().size) for w in model.trainable_weights)),
        "jit_compile": bool(model.jit_compile),
        "peak_rss_mib": common.peak_rss_mib(),
        "rss_before_model_mib": rss_before_model,
        "tf_memory_info_cpu": memory_info,
    }
    result["training_rss_growth_mib"] = result["peak_rss_mib"] - rss_before_model
    with open(output, "w") as f:
        json.dump(result, f)


# -- parent -----------------------------------------------------------------------------------
def run_child(kind, settings):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        output = f.name
    try:
        command = [sys.executable, "-m", "benchmarks.training_overhead", "--child", kind,
                   "--child_settings", json.dumps(settings), "--child_output", output]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        process = subprocess.run(command, cwd=common.ROOT, env=env, capture_output=True, text=True)
        if process.returncode != 0:
            raise RuntimeError(f"The {kind} child failed (exit {process.returncode}):\n{process.stderr[-3000:]}")
        with open(output) as f:
            return json.load(f)
    finally:
        os.unlink(output)


def pretrained_setting():
    """The shipped pocket backbone when it is installed, else random weights (same speed)."""
    from bap_tf.run.backbone import find_shipped

    return "" if find_shipped("resnet26", 16, 32) is not None else "none"


def markdown(record):
    s = record["summary"]
    rows = []
    for kind, label in (("plain", "plain Keras fine-tuning (BN + heads)"), ("bap", "BAP `BudgetAwareModel.fit`")):
        k = s[kind]
        rows.append([
            label, f"{k['step_s'] * 1e3:.0f}", f"{k['images_per_s']:.0f}", f"{k['ms_per_image']:.2f}",
            f"{k['peak_rss_mib']:.0f}", f"{k['training_rss_growth_mib']:.0f}",
        ])
    settings = record["settings"]
    return "\n".join([
        "## Training overhead, pocket benchmark (ResNet-26 width 16, 32 px, 4 domains)",
        "",
        common.markdown_table(["training step", "ms / step", "images / s", "ms / image", "peak RSS (MiB)",
                               "RSS growth in training (MiB)"], rows),
        "",
        f"Time per image, BAP ÷ plain: **{s['time_ratio']:.2f}×** (target ≤ {TARGET}): {common.verdict(s['met'])}. "
        f"Peak memory ratio {s['peak_rss_ratio']:.2f}×, training growth ratio {s['rss_growth_ratio']:.2f}×.",
        "",
        f"Global batch {record['runs'][0]['global_batch']} ({settings['batch_size']} per domain), "
        "median step time over "
        f"{settings['timed_steps']} steps after {settings['warmup_steps']} warm-up steps, "
        f"{settings['repeats']} alternating child process{'es' if settings['repeats'] > 1 else ''} per model "
        "(median of their medians). Backbone weights: "
        + ("the shipped pocket backbone" if settings["pretrained"] == ""
           else "random (the shipped backbone was missing; speed is the same)")
        + f". XLA off in both (Keras' `jit_compile='auto'` on CPU). Memory: the child's peak RSS "
        "(`resource.getrusage` max RSS: TensorFlow, data and model); growth: from before the model is built to the "
        f"end of training. `tf.config.experimental.get_memory_info('CPU:0')`: {record['memory_info_note']}.",
    ])


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--batch_size", type=int, default=32, help="images per domain per step")
    parser.add_argument("--child", choices=KINDS, help=argparse_hidden())
    parser.add_argument("--child_settings", help=argparse_hidden())
    parser.add_argument("--child_output", help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        child(args.child, json.loads(args.child_settings), args.child_output)
        return
    warmup, timed, repeats = (3, 10, 2) if args.quick else (10, 40, 3)
    settings = {"dataset": "pocket", "backbone": "resnet26", "width": 16, "image_size": 32,
                "batch_size": args.batch_size, "warmup_steps": warmup, "timed_steps": timed, "repeats": repeats,
                "held_batches": 8, "augment": True, "optimizer": "Adam(1e-3) (+ switch Adam(1e-2, beta_1=0) for BAP)",
                "pretrained": pretrained_setting()}
    record = common.start_record(NAME, args.quick, settings)
    runs = []
    for repeat in range(repeats):
        for kind in KINDS:
            print(f"repeat {repeat + 1}/{repeats}: {kind}", flush=True)
            runs.append(run_child(kind, settings))
            print(f"  median step {runs[-1]['step_s']['median_s'] * 1e3:.0f} ms, "
                  f"peak RSS {runs[-1]['peak_rss_mib']:.0f} MiB", flush=True)
    record["runs"] = runs
    summary = {}
    for kind in KINDS:
        mine = [r for r in runs if r["kind"] == kind]
        step = timing.summarize([r["step_s"]["median_s"] for r in mine])["median_s"]
        batch = mine[0]["global_batch"]
        summary[kind] = {
            "step_s": step, "images_per_s": batch / step, "ms_per_image": step / batch * 1e3,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in mine),
            "training_rss_growth_mib": max(r["training_rss_growth_mib"] for r in mine),
        }
    summary["time_ratio"] = summary["bap"]["ms_per_image"] / summary["plain"]["ms_per_image"]
    summary["met"] = summary["time_ratio"] <= TARGET
    summary["peak_rss_ratio"] = summary["bap"]["peak_rss_mib"] / summary["plain"]["peak_rss_mib"]
    summary["rss_growth_ratio"] = (summary["bap"]["training_rss_growth_mib"]
                                   / max(summary["plain"]["training_rss_growth_mib"], 1e-9))
    record["summary"] = summary
    info = runs[0]["tf_memory_info_cpu"]
    record["memory_info_note"] = info if isinstance(info, str) else f"available: {info}"
    text = markdown(record)
    common.write_results(record, text, args.results_dir)
    print(text)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
