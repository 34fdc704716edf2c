"""The eval stage: accuracy of every model and file on the test split, scores, and the report.

Reads the masked model, the reduced models and the export manifest from the workdir (a stage
that did not run leaves its entries ``null``), then measures per domain:

- Keras accuracy of the masked model, of the union-pruned model and of each domain's own
  pruned model (what the int8 files and the default Android layout hold) on the whole test split;
- on ``eval_examples`` test images (a seeded sample; all by default), the exported files run
  where they will run: the Android file in LiteRT (one signature per domain), each int8 file in
  LiteRT and in TensorFlow Lite Micro, with the smallest TFLM arena it runs in;
- the microcontroller budget check (``--mcu_flash_kb``, ``--mcu_ram_kb``);
- the promise (``export.promise``): the Android file's stored parameters, bytes and each
  signature's latency, and the int8 files' flash, against the unpruned backbone's files;
- the baselines (``bap_tf.run.baseline_models``: feature extractor, per-domain fine-tuning);
- the S-score against the reference errors (``bap_tf.run.s_score_reference``) and the efficiency.

Writes ``report.json``, ``report.md`` and ``plots/`` (``bap_tf.run.report``). With
``enforce_mcu_budget`` a domain over budget raises ``McuBudgetError`` once the report is written.
"""

import dataclasses

import numpy as np
from absl import logging
from tqdm import tqdm

from bap_tf import metrics
from bap_tf.atomic import read_json
from bap_tf.data import eval_datasets
from bap_tf.domains import identifier
from bap_tf.export import promise as promise_lib
from bap_tf.export.litert import LiteRTModel
from bap_tf.export.mcu import McuBudgetError, check_mcu_budget, describe_failures, footprints_from_checks
from bap_tf.export.runtime_checks import run_checks
from bap_tf.export.timing import signature_latencies
from bap_tf.run import report as report_lib
from bap_tf.run import sources as data_sources
from bap_tf.run.baseline_cache import measured_baselines
from bap_tf.run.s_score_reference import reference_errors
from bap_tf.switching import gate_values


@dataclasses.dataclass(frozen=True)
class EvalResult:
    report: dict
    paths: dict  # "json", "md", plots by name


def evaluate(config, workdir):
    """Measures everything listed in the module docstring and writes the report."""
    masked = workdir.load_masked_model(config)
    union = workdir.load_union(config)
    domain_models = workdir.load_domain_models(config)
    costs = read_json(workdir.require(workdir.costs, "prune"))
    manifest = workdir.read_manifest()
    test_sources = data_sources.domain_sources(config, "test", workdir)

    accuracy = {"masked": {}, "pruned": {}, "own": {}}
    num_test = {}
    datasets = eval_datasets(test_sources, batch_size=max(config.batch_size, 64), image_size=config.image_size)
    for index, (name, dataset) in enumerate(tqdm(datasets.items(), desc="Keras accuracy", unit="domain")):
        labels = np.concatenate([y.numpy() for _, y in dataset])
        logits = masked.predict(dataset, verbose=0)[:, : masked.domains[index].num_classes]
        accuracy["masked"][name] = metrics.accuracy(logits, labels)
        images = dataset.map(lambda x, y: x["image"])
        accuracy["pruned"][name] = metrics.accuracy(union[name].predict(images, verbose=0), labels)
        accuracy["own"][name] = metrics.accuracy(domain_models[name].predict(images, verbose=0), labels)
        num_test[name] = int(labels.shape[0])

    eval_sets = {s.name: device_eval_set(s, config) for s in test_sources}
    android = manifest["android"].get("float32") or manifest["android"].get("dynamic")
    micro_paths = {d: workdir.root / e["path"] for d, e in manifest["int8"].items()}
    logging.info("Running the exported files in LiteRT and TFLM on %d test images per domain.",
                 min(len(v[1]) for v in eval_sets.values()))
    # The arena bap-export measured for each file (the one its firmware sources reserve).
    arenas = {d: {"arena_bytes": e["arena_bytes"], "reported_bytes": e.get("arena_reported_bytes")}
              for d, e in manifest["int8"].items() if "arena_bytes" in e}
    # Each file is compared with the Keras models it was converted from: the int8 files with each
    # domain's own model, the Android file with those too or, in the shared layouts, the union's.
    shared_layout = android and android.get("layout", "shared") in ("shared", "shared_filters")
    android_sources = union if shared_layout else domain_models
    checks = run_checks(
        android_sources, eval_sets, android_path=workdir.root / android["path"] if android else None,
        micro_paths=micro_paths or None, micro_models=domain_models, arenas=arenas,
    )
    extra = {}
    if manifest["android"].get("dynamic") and manifest["android"].get("float32"):
        extra["dynamic"] = _file_accuracy(workdir.root / manifest["android"]["dynamic"]["path"], eval_sets, signed=True)
    if manifest.get("qat"):
        extra["qat"] = {d: _file_accuracy(workdir.root / e["path"], {d: eval_sets[d]})[d]
                        for d, e in manifest["qat"].items()}

    promise = _promise(config, workdir, manifest, android_sources)
    footprints = footprints_from_checks(checks)
    mcu = check_mcu_budget(config.mcu_flash_kb, config.mcu_ram_kb, footprints) if footprints else None
    baselines = measured_baselines(config, workdir)
    errors, reference = reference_errors(config, baselines)
    report = report_lib.build_report(
        config=config, costs=costs, accuracy=accuracy, num_test=num_test, checks=checks,
        extra_accuracy=extra, manifest=manifest, mcu=mcu,
        kept_fractions=dict(zip(masked.domain_names, masked.kept_fractions().tolist())),
        union_fraction=masked.union_fraction(), layers=_layer_gates(masked),
        reference_errors=errors, reference=reference,
        history=read_json(workdir.history) if workdir.history.exists() else None,
        timings=read_json(workdir.timings) if workdir.timings.exists() else {}, baselines=baselines,
        promise=promise,
    )
    paths = report_lib.write_report(report, workdir.root)
    if config.enforce_mcu_budget and mcu is not None and not mcu["fits"]:
        raise McuBudgetError(describe_failures(mcu), mcu)
    return EvalResult(report, paths)


def _promise(config, workdir, manifest, android_sources):
    """``export.promise``'s comparisons for the files the export stage wrote (``{}`` without a
    float32 Android file and the backbone's)."""
    backbone = manifest.get("backbone", {})
    result = {}
    android = manifest["android"].get("float32")
    if android and "float32" in backbone:
        logging.info("Timing the Android file's signatures against the unpruned backbone (LiteRT, 1 thread).")
        path = workdir.root / android["path"]
        files = {d: (path, identifier(d)) for d in config.domains}
        files["backbone"] = (workdir.root / backbone["float32"]["path"], identifier(backbone["domain"]))
        latency = signature_latencies(files)
        macs_ratio = {d: android["macs"][d] / backbone["float32"]["macs"] for d in config.domains}
        heads = {d: promise_lib.head_parameters(model) for d, model in android_sources.items()}
        result["layout"] = android["layout"]
        result["android"] = promise_lib.android_promise(path, files["backbone"][0], backbone["domain"], heads,
                                                        latency, macs_ratio)
    if manifest["int8"] and "int8" in backbone:
        result["micro"] = promise_lib.micro_promise({d: workdir.root / e["path"] for d, e in manifest["int8"].items()},
                                                    workdir.root / backbone["int8"]["path"])
    return result


def device_eval_set(source, config):
    """The test images the exported files run on: all, or a seeded sample of ``eval_examples``
    (a sample, not the first ones: a split may be sorted by class)."""
    if config.eval_examples:
        return data_sources.sample_images(source, config.image_size, config.eval_examples, config.seed)
    return data_sources.labelled_images(source, config.image_size)


def _file_accuracy(path, eval_sets, signed=False):
    """Accuracy per domain of a ``.tflite`` in LiteRT (one signature per domain when ``signed``)."""
    model = LiteRTModel(path)
    return {
        d: metrics.accuracy(model.logits(images, identifier(d) if signed else None), labels)
        for d, (images, labels) in eval_sets.items()
    }


def _layer_gates(masked):
    """Per switched conv: input channels, and how many each domain and the union keep."""
    layers = []
    for name, gates in gate_values(masked.network).items():
        layers.append({
            "name": name,
            "in_channels": int(gates.shape[1]),
            "kept": {d: int(gates[i].sum()) for i, d in enumerate(masked.domain_names)},
            "union": int(gates.any(axis=0).sum()),
        })
    return layers
