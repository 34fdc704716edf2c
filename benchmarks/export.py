"""Export on the pocket benchmark: accuracy through every runtime, and file and arena size vs the
unpruned backbone.

Runs (or reuses) the full chain ``bap-train --stages=all`` for the main job's sharing loss
(``--sharing_loss`` overrides) at budget 0.5, seed 0 (``benchmarks.pocket_runs``). Per domain, on
the same test images (the run's ``eval_examples``): Keras accuracy of the union-pruned model and
of the domain's own pruned model (measured here), then from ``report.json`` the Android float32
file in LiteRT, the domain's int8 file in LiteRT and the same file in TensorFlow Lite Micro. Then
the int8 file's bytes and its smallest TFLM arena against the baseline: the same domain's
BatchNorms and head on the *unpruned* backbone (``benchmarks.run_models``), converted to int8 by
the same ``export_micro`` with the same calibration images and measured by the same arena search.
Also the Android float32 file against the unpruned multi-domain file (every domain's BN and head
on the unpruned shared backbone).

    python -m benchmarks.export           # full chain, library defaults: ~15 min on 2 cores
    python -m benchmarks.export --quick   # quick run (2 epochs x 30 steps), 100 test images: ~8 min
"""

import tempfile
from pathlib import Path

from benchmarks import common, pocket_runs

NAME = "export"
BUDGET = 0.5
SEED = 0


def keras_accuracy(models, eval_sets):
    from bap_tf.metrics import accuracy

    return {
        d: accuracy(models[d].predict(images, batch_size=256, verbose=0), labels)
        for d, (images, labels) in eval_sets.items()
    }


def baselines(workdir, work):
    """int8 bytes and TFLM arena of every domain's unpruned model, and the unpruned Android file."""
    from bap_tf.export.convert import export_android, export_micro
    from bap_tf.export.micro import find_arena_bytes
    from bap_tf.run import sources as data_sources
    from bap_tf.run.eval_stage import device_eval_set  # Keras is scored on the eval stage's images
    from benchmarks import run_models

    config, masked, union, domain_models = run_models.load_run(workdir)
    rewriter = run_models.unpruned_rewriter(masked)
    test_sources = {s.name: s for s in data_sources.domain_sources(config, "test")}
    train_sources = {s.name: s for s in data_sources.domain_sources(config, "train")}
    eval_sets = {d: device_eval_set(test_sources[d], config) for d in config.domains}
    result = {
        "keras_union": keras_accuracy(union, eval_sets),
        "keras_domain": keras_accuracy(domain_models, eval_sets),
        "num_images": {d: int(len(v[1])) for d, v in eval_sets.items()},
        "baseline": {},
    }
    for name in config.domains:
        print(f"  unpruned int8 baseline of {name}", flush=True)
        model = rewriter.domain_model(name)
        # The export stage's calibration: the same seeded sample of the domain's training images.
        images, _ = data_sources.sample_images(train_sources[name], config.image_size,
                                               4 * config.calibration_examples, config.seed)
        path = export_micro(model, Path(work) / f"{name}_unpruned_int8.tflite", images,
                            max_samples=config.calibration_examples, seed=config.seed)
        arena = find_arena_bytes(path)
        result["baseline"][name] = {
            "int8_bytes": path.stat().st_size, "arena_bytes": arena["arena_bytes"],
            **{f"model_{k}": v for k, v in run_models.cost(model, masked).items()},
        }
    print("  unpruned Android float32 baseline", flush=True)
    android = export_android(rewriter.union_models(), Path(work) / "android_unpruned_float32.tflite", variant="float32")
    result["android_unpruned_float32_bytes"] = android.stat().st_size
    return result


def table(record):
    rows = []
    domains = record["domains"]
    for name, d in domains.items():
        rows.append([
            f"`{name}`", common.fmt(d["kept_fraction"], ".2f"),
            common.fmt(d["keras_union"]), common.fmt(d["keras_domain"]), common.fmt(d["tflite_float"]),
            common.fmt(d["tflite_int8"]), common.fmt(d["tflm"]),
            common.fmt_bytes(d["int8_bytes"]), common.fmt_bytes(d["baseline_int8_bytes"]),
            common.fmt(d["bytes_ratio"], ".2f"),
            common.fmt_bytes(d["arena_bytes"]), common.fmt_bytes(d["baseline_arena_bytes"]),
            common.fmt(d["arena_ratio"], ".2f"),
        ])
    android = record["android"]
    first = next(iter(domains.values()))
    return "\n".join([
        f"## Export, pocket benchmark, budget {BUDGET:g}, `{record['sharing_loss']}` sharing, seed {SEED}",
        "",
        common.markdown_table(
            ["domain", "kept", "Keras (union)", "Keras (own model)", "TFLite float32", "TFLite int8", "TFLM int8",
             "int8 file", "unpruned int8", "ratio", "TFLM arena", "unpruned arena", "ratio"],
            rows,
        ),
        "",
        f"Accuracies on {first['num_images']} test images of each domain (the eval stage's device set: a seeded "
        "sample of `eval_examples`, or the whole split), every runtime on the same images. *Keras (union)*: the "
        "union-pruned multi-domain model; *own model*: the domain's model pruned "
        "to its own switches, which the int8 file is converted from; *TFLite float32*: the Android "
        "multi-signature file in LiteRT; *int8*: the domain's full-int8 file in LiteRT and in TFLM (reference "
        "kernels). *unpruned*: the same domain's BatchNorms and head on the unpruned backbone, converted and "
        "measured the same way. Arena: the smallest TFLM tensor arena (256-byte steps) in which the file runs.",
        "",
        f"Android float32 file (all {len(domains)} domains, one signature each): "
        f"{common.fmt_bytes(android['union_float32_bytes'])} vs {common.fmt_bytes(android['unpruned_float32_bytes'])} "
        f"unpruned (ratio {common.fmt(android.get('bytes_ratio'), '.2f')}); dynamic-range: "
        f"{common.fmt_bytes(android.get('union_dynamic_bytes'))}.",
    ])


def main():
    parser = common.parser(__doc__)
    args, loss, reason = pocket_runs.parse_with_sharing_loss(parser)
    settings = {"dataset": "pocket", "budget": BUDGET, "seed": SEED, "sharing_loss": loss,
                "run_flags": pocket_runs.run_flags(loss, BUDGET, SEED, args.quick), "stages": "all",
                "runs_dir": str(pocket_runs.RUNS.relative_to(common.ROOT))}
    record = common.start_record(NAME, args.quick, settings)
    record["sharing_loss"], record["sharing_loss_reason"] = loss, reason
    print(f"{loss}, budget {BUDGET}, seed {SEED}, all stages:", flush=True)
    run = pocket_runs.run_pocket(loss, BUDGET, SEED, args.quick, stages=pocket_runs.STAGES)
    report = run["report"]
    record["workdir"] = str(run["workdir"].relative_to(common.ROOT))
    with tempfile.TemporaryDirectory(prefix="bap_bench_export_") as work:
        measured = baselines(run["workdir"], work)
    record["domains"] = {}
    for name, d in report["domains"].items():
        base = measured["baseline"][name]
        record["domains"][name] = {
            "kept_fraction": d["kept_fraction"],
            "num_images": measured["num_images"][name],
            "num_device_images": d["num_device_images"],
            "keras_union": measured["keras_union"][name],
            "keras_domain": measured["keras_domain"][name],
            "keras_union_whole_test_split": d["accuracy_pruned"],
            "tflite_float": d["accuracy_tflite"],
            "tflite_dynamic": d["accuracy_tflite_dynamic"],
            "tflite_int8": d["accuracy_tflite_int8"],
            "tflm": d["accuracy_tflm"],
            "tflm_vs_tflite_int8_argmax_agreement": d["tflm_vs_tflite_int8_argmax_agreement"],
            "tflite_vs_keras_max_abs_logit_diff": d["tflite_vs_keras_max_abs_logit_diff"],
            "int8_bytes": d["tflite_int8_bytes"],
            "baseline_int8_bytes": base["int8_bytes"],
            "bytes_ratio": d["tflite_int8_bytes"] / base["int8_bytes"],
            "arena_bytes": d["tflm_arena_bytes"],
            "baseline_arena_bytes": base["arena_bytes"],
            "arena_ratio": d["tflm_arena_bytes"] / base["arena_bytes"],
            "params_ratio": d["params_ratio"],
            "macs_ratio": d["macs_ratio"],
            "baseline_model_params": base["model_params"],
            "baseline_model_macs": base["model_macs"],
        }
    android = report["android"]
    record["android"] = {
        "union_float32_bytes": android.get("float32", {}).get("bytes"),
        "union_dynamic_bytes": android.get("dynamic", {}).get("bytes"),
        "unpruned_float32_bytes": measured["android_unpruned_float32_bytes"],
    }
    if record["android"]["union_float32_bytes"]:
        record["android"]["bytes_ratio"] = (record["android"]["union_float32_bytes"]
                                            / measured["android_unpruned_float32_bytes"])
    text = table(record)
    common.write_results(record, text, args.results_dir)
    print(text)


if __name__ == "__main__":
    main()
