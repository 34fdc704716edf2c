"""A Visual-Decathlon-shaped run on synthetic data: step time and rewriter time, to size real jobs.

ResNet-26 at full width (64/128/256 channels), 64 px inputs, the ten Decathlon domains with their
real class counts (so the heads have their real size), random backbone weights (speed does not
depend on them) and synthetic images from ``bap_tf.data.synthetic`` (never a real dataset).
``BudgetAwareModel`` (budget 0.5, union sharing loss, the library's optimizers) trains with
``fit``; a callback times every step and the figure is the median after warm-up steps, as
s/step and images/s. Then, after ``project_to_budget`` gives every domain a budget-0.5 set of
switches, the rewriter is timed: dependency graph, union-pruned multi-domain model, the ten
per-domain models, and the cost report. Peak memory: ``getrusage`` max RSS of this process.

    python -m benchmarks.decathlon_shape           # 8 images per domain (global batch 80), 3 + 10 steps: ~15 min
    python -m benchmarks.decathlon_shape --quick   # 2 images per domain (global batch 20), 2 + 3 steps: ~4 min
"""

import time

from bap_tf.export import timing
from benchmarks import common

NAME = "decathlon_shape"
# Classes of each Visual Decathlon domain (tfds visual_domain_decathlon), in the library's order.
DECATHLON_CLASSES = {
    "aircraft": 100, "cifar100": 100, "daimlerpedcls": 2, "dtd": 47, "gtsrb": 43,
    "imagenet12": 1000, "omniglot": 1623, "svhn": 10, "ucf101": 101, "vgg-flowers": 102,
}
WIDTH, IMAGE_SIZE, BUDGET = 64, 64, 0.5


def measure(settings):
    import keras
    import tensorflow as tf

    from bap_tf.backbones import resnet26
    from bap_tf.config import DECATHLON_DOMAINS
    from bap_tf.data.synthetic import interleave, template_domains
    from bap_tf.model import BudgetAwareModel
    from bap_tf.prune import Rewriter
    from bap_tf.prune.costs_report import prune_report
    from bap_tf.switching import build_switched_network

    keras.utils.set_random_seed(0)
    domains = [(name, DECATHLON_CLASSES[name]) for name in DECATHLON_DOMAINS]
    batch = settings["batch_size"]
    held = settings["held_batches"]
    x, y = interleave(template_domains([c for _, c in domains], batch * held, IMAGE_SIZE, seed=0))
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch * len(domains), drop_remainder=True).repeat()
    rss_before_model = common.peak_rss_mib()

    start = time.perf_counter()
    network = build_switched_network(resnet26((IMAGE_SIZE, IMAGE_SIZE, 3), width=WIDTH), domains)
    model = BudgetAwareModel(network, domains, budget=BUDGET, sharing_loss="union")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    build_s = time.perf_counter() - start

    timer = common.step_timer()
    steps = settings["warmup_steps"] + settings["timed_steps"]
    model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=[timer], shuffle=False, verbose=0)
    step = timing.summarize(timer.times[settings["warmup_steps"]:])
    global_batch = batch * len(domains)
    training = {
        "global_batch": global_batch, "first_step_s": timer.times[0], "step_s": step,
        "images_per_s": global_batch / step["median_s"], "build_s": build_s,
        "peak_rss_mib": common.peak_rss_mib(), "rss_before_model_mib": rss_before_model,
        "jit_compile": bool(model.jit_compile),
    }

    turned_off = model.project_to_budget()
    rewrite = {"switches_turned_off_by_projection": turned_off}
    start = time.perf_counter()
    rewriter = Rewriter.from_model(model)
    rewrite["dependency_s"] = time.perf_counter() - start
    start = time.perf_counter()
    union = rewriter.union_models()
    rewrite["union_s"] = time.perf_counter() - start
    start = time.perf_counter()
    own = rewriter.domain_models()
    rewrite["domain_models_s"] = time.perf_counter() - start
    start = time.perf_counter()
    costs = prune_report(rewriter, union, own)
    rewrite["report_s"] = time.perf_counter() - start
    rewrite["total_s"] = rewrite["dependency_s"] + rewrite["union_s"] + rewrite["domain_models_s"] + rewrite["report_s"]
    rewrite["kept_fractions"] = dict(zip(model.domain_names, map(float, model.kept_fractions())))
    rewrite["union_fraction"] = model.union_fraction()
    rewrite["union_ratio"] = costs["union_ratio"]
    rewrite["backbone"] = costs["backbone"]
    rewrite["peak_rss_mib"] = common.peak_rss_mib()
    return training, rewrite


def markdown(record):
    t, r = record["training"], record["rewrite"]
    s = record["settings"]
    step = t["step_s"]
    return "\n".join([
        f"## Decathlon-shaped run (ResNet-26 width {WIDTH}, {IMAGE_SIZE} px, 10 domains, synthetic data)",
        "",
        common.markdown_table(
            ["what", "value"],
            [
                ["global batch (images per domain × 10)", f"{t['global_batch']} ({s['batch_size']} × 10)"],
                ["training step, median (p10–p90)",
                 f"{step['median_s']:.2f} s ({step['p10_s']:.2f}–{step['p90_s']:.2f})"],
                ["images / s", f"{t['images_per_s']:.1f}"],
                ["first step (tracing)", f"{t['first_step_s']:.1f} s"],
                ["build switched network + model", f"{t['build_s']:.1f} s"],
                ["peak RSS in training", f"{t['peak_rss_mib']:.0f} MiB"],
                ["rewriter: dependency graph", f"{r['dependency_s']:.2f} s"],
                ["rewriter: union-pruned model (10 domains)", f"{r['union_s']:.1f} s"],
                ["rewriter: 10 per-domain models", f"{r['domain_models_s']:.1f} s"],
                ["cost report", f"{r['report_s']:.2f} s"],
                ["rewriter total", f"{r['total_s']:.1f} s"],
                ["union model: params / MACs vs backbone",
                 f"{r['union_ratio']['params']:.3f} / {r['union_ratio']['macs']:.3f}"],
            ],
            align="lr",
        ),
        "",
        f"Backbone: {r['backbone']['params'] / 1e6:.2f}M params, {r['backbone']['macs'] / 1e9:.2f} GMACs per image. "
        f"Median over {s['timed_steps']} steps after {s['warmup_steps']} warm-up steps. The rewrite runs on the "
        f"switches after {s['warmup_steps'] + s['timed_steps']} steps and `project_to_budget` (each domain at "
        f"budget {BUDGET:g}; after so few steps the union keeps {r['union_fraction']:.2f} of the switchable MACs). "
        "Sizing a real job: seconds per epoch ≈ steps × s/step at the batch measured; for another batch, "
        "measure it with `--batch_size`.",
    ])


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--batch_size", type=int, default=0, help="images per domain per step (default 8, quick 2)")
    args = parser.parse_args()
    batch = args.batch_size or (2 if args.quick else 8)
    warmup, timed = (2, 3) if args.quick else (3, 10)
    settings = {"backbone": "resnet26", "width": WIDTH, "image_size": IMAGE_SIZE, "domains": DECATHLON_CLASSES,
                "batch_size": batch, "warmup_steps": warmup, "timed_steps": timed, "held_batches": 2,
                "data": "bap_tf.data.synthetic.template_domains (seed 0)", "weights": "random",
                "budget": BUDGET, "sharing_loss": "union", "optimizer": "Adam(1e-3) + default switch optimizer"}
    record = common.start_record(NAME, args.quick, settings)
    record["training"], record["rewrite"] = measure(settings)
    record["machine"]["gpu"] = common.gpus()
    text = markdown(record)
    common.write_results(record, text, args.results_dir)
    print(text)


if __name__ == "__main__":
    main()
