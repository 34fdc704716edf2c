"""The export stage: ``.tflite`` files of the reduced models, under ``WORKDIR/export/``.

``--quantize`` picks the variants:

- ``float32`` / ``dynamic``: ``android_<variant>.tflite``, one signature per domain (keyed by
  ``domains.identifier``: the name, '-' written '_'), in the ``android_layout`` chosen:
  ``per_domain`` (default), each domain's own pruned model with its channel gathers absorbed
  into the convs (``export.absorb``: BatchNorms folded, no masks, no GATHER: fast on XNNPACK, a
  model per domain), ``shared``, the union-pruned multi-domain model (shared weights stored once,
  masks and BatchNorms as extra ops), or ``shared_filters``, the union model the prune stage
  built with shared BatchNorm scales (every filter stored once, gathers absorbed, each domain its
  biases and head); ``dynamic`` has int8 weights and float activations; the manifest gives each
  signature's MACs;
- ``int8``: ``int8/<domain>.tflite``, each domain's own pruned model in full integer int8
  (post-training quantization calibrated on its training images), for microcontrollers;
- ``qat``: ``qat/<domain>.tflite``, the same after quantization-aware fine-tuning (needs the
  ``[qat]`` extra).

The unpruned backbone (every switch on; the first domain's BatchNorms and head) is written too,
as ``backbone/float32.tflite`` and ``backbone/int8.tflite`` when those variants are: the eval
stage measures the files' parameters, bytes and latency against it (``export.promise``).

Beside each int8 file go the firmware sources (``export.firmware``): ``<domain>_model_data.cc``
/ ``.h`` and ``<domain>_op_resolver.h``, whose arena constant comes from the smallest arena the
file ran in, measured here with TFLM (``micro.find_arena_bytes``, a few child processes of a
fraction of a second each); bap-eval runs TFLM in that arena rather than searching again.

``manifest.json`` lists what was written; bap-eval reads it.
"""

import dataclasses
import os

from absl import logging
from tqdm import tqdm

from bap_tf import costs
from bap_tf.atomic import write_json
from bap_tf.domains import identifier
from bap_tf.export.absorb import android_models
from bap_tf.export.convert import export_android, export_micro
from bap_tf.export.firmware import write_firmware_sources
from bap_tf.export.micro import find_arena_bytes
from bap_tf.export.qat import quantization_aware_int8
from bap_tf.run import sources as data_sources

ANDROID_VARIANTS = ("float32", "dynamic")
# Training images per domain handed to quantization-aware fine-tuning.
QAT_MAX_TRAIN_IMAGES = 10_000


@dataclasses.dataclass(frozen=True)
class ExportResult:
    manifest_path: str
    manifest: dict  # {"android": {variant: entry}, "int8": {domain: entry}, "qat": {domain: entry}}


def export(config, workdir):
    """Writes the variants of ``config.quantize`` and manifest.json; returns an ``ExportResult``."""
    union, domain_models = workdir.load_union(config), workdir.load_domain_models(config)
    manifest = {"android": {}, "int8": {}, "qat": {}}
    android_variants = [v for v in ANDROID_VARIANTS if v in config.quantize]
    models = android_models(config.android_layout, union, domain_models) if android_variants else {}
    for variant in android_variants:
        logging.info("Converting the %s layout to %s TFLite for Android.", config.android_layout, variant)
        path = export_android({identifier(n): m for n, m in models.items()}, workdir.android(variant), variant=variant)
        manifest["android"][variant] = {**_entry(workdir, path), "layout": config.android_layout,
                                        "macs": {name: int(costs.count_model(m).macs) for name, m in models.items()}}
    micro_variants = [v for v in ("int8", "qat") if v in config.quantize]
    if micro_variants:
        train_sources = {s.name: s for s in data_sources.domain_sources(config, "train", workdir)}
        test_sources = {s.name: s for s in data_sources.domain_sources(config, "test", workdir)}
        for name in tqdm(config.domains, desc="int8 export", unit="domain"):
            if "int8" in config.quantize:
                images, _ = data_sources.sample_images(train_sources[name], config.image_size,
                                                       4 * config.calibration_examples, config.seed)
                path = export_micro(domain_models[name], workdir.int8(name), images,
                                    max_samples=config.calibration_examples, seed=config.seed)
                manifest["int8"][name] = _micro_entry(workdir, path)
            if "qat" in config.quantize:
                train_images, train_labels = data_sources.sample_images(
                    train_sources[name], config.image_size, QAT_MAX_TRAIN_IMAGES, config.seed)
                eval_images, eval_labels = data_sources.sample_images(
                    test_sources[name], config.image_size, config.eval_examples or QAT_MAX_TRAIN_IMAGES, config.seed)
                result = quantization_aware_int8(
                    domain_models[name], workdir.int8(name, "qat"), train_images, train_labels,
                    eval_images, eval_labels, epochs=config.qat_epochs, batch_size=config.batch_size,
                    seed=config.seed,
                )
                manifest["qat"][name] = {**result, **_micro_entry(workdir, workdir.int8(name, "qat"))}
    manifest["backbone"] = _backbone_files(config, workdir, {v for v in ("float32", "int8") if v in config.quantize})
    write_json(workdir.manifest, manifest)
    return ExportResult(str(workdir.manifest), manifest)


def _backbone_files(config, workdir, variants):
    """``{"domain": first domain, variant: entry}`` of the unpruned backbone's files."""
    if not variants:
        return {}
    import numpy as np

    from bap_tf.prune import Rewriter
    from bap_tf.switching import gate_values

    masked = workdir.load_masked_model(config)
    every_channel = {name: np.ones_like(gates) for name, gates in gate_values(masked.network).items()}
    first = config.domains[0]
    backbone = Rewriter.from_model(masked, gates=every_channel).domain_model(first)
    files = {"domain": first}
    if "float32" in variants:
        path = export_android({identifier(first): backbone}, workdir.backbone_file("float32"), variant="float32")
        files["float32"] = {**_entry(workdir, path), "macs": int(costs.count_model(backbone).macs)}
    if "int8" in variants:
        source = data_sources.domain_sources(config, "train", workdir)[0]
        images, _ = data_sources.sample_images(source, config.image_size, 4 * config.calibration_examples, config.seed)
        path = export_micro(backbone, workdir.backbone_file("int8"), images,
                            max_samples=config.calibration_examples, seed=config.seed)
        files["int8"] = _entry(workdir, path)
    return files


def _entry(workdir, path):
    return {"path": os.path.relpath(path, workdir.root), "bytes": os.path.getsize(path)}


def _micro_entry(workdir, path):
    """An int8 file's entry, with its measured arena and the firmware sources written beside it."""
    arena = find_arena_bytes(path)
    sources = write_firmware_sources(path, arena["arena_bytes"])
    return {**_entry(workdir, path), "arena_bytes": arena["arena_bytes"],
            "arena_reported_bytes": arena["reported_bytes"],
            "firmware": {kind: os.path.relpath(p, workdir.root) for kind, p in sources.items()}}
