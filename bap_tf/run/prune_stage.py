"""The prune stage: the trained masked model becomes plain, smaller Keras models.

Reads ``WORKDIR/model.keras``; writes under ``WORKDIR/pruned/``:

- ``union.keras``: the union-pruned multi-domain model (filters no domain uses removed; each
  domain applies its own channel masks inside it), shared weights stored once; for the
  ``shared_filters`` Android layout, every domain reads all the union's channels, through zero
  kernel rows rather than gathers, and the fine-tuning adapts each domain's BatchNorms and head;
- ``<domain>.keras``: each domain alone, physically pruned to its own switches;
- ``costs.json``: params and MACs of the backbone, the union model and each domain's model
  (``bap_tf.prune.costs_report``), and the largest logit difference between the reduced models and
  the masked model on a few test images (the rewrite's invariant: float tolerance; with
  ``whole_union`` or the ``shared_filters`` Android layout the union model computes another
  function, and only the domains' models are compared);
- ``finetune.json``: the fine-tuning's settings and accuracies before and after, when
  ``finetune_epochs`` > 0.
"""

import dataclasses
import functools

import keras
import numpy as np
from absl import logging

from bap_tf.atomic import atomic_path, write_json
from bap_tf.data.pipeline import augment_pairs
from bap_tf.prune import Rewriter
from bap_tf.prune.costs_report import prune_report
from bap_tf.prune.finetune import finetune_domain, finetune_union
from bap_tf.prune.saving import save_union
from bap_tf.run import sources as data_sources
from bap_tf.run.baseline_cache import teacher_models

# Test images per domain on which the reduced models are compared with the masked model.
EQUIVALENCE_IMAGES = 64
# Above this max |logit difference|, the rewrite is reported as broken (float32 noise is ~1e-5).
EQUIVALENCE_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class PruneResult:
    union_path: str
    domain_paths: dict
    costs_path: str
    costs: dict


def prune(config, workdir):
    """Builds, checks, optionally fine-tunes and saves the reduced models; returns ``PruneResult``."""
    keras.utils.set_random_seed(config.seed)
    masked = workdir.load_masked_model(config)
    multiple = channel_multiple(config, masked)
    rewriter = Rewriter.from_model(masked, channel_multiple=multiple, dense_reads=config.dense_reads,
                                   read_runs=config.read_runs and config.dense_reads)
    union = _union_models(rewriter, masked, config, multiple)
    domain_models = rewriter.domain_models()
    test_sources = data_sources.domain_sources(config, "test", workdir)
    costs = prune_report(rewriter, union, domain_models, budget=(masked.budget, config.budget_metric),
                         latency=masked.latency_cost(), mcu=masked.mcu_estimates())
    for name, check in costs["budget_check"].items():
        if not check["met"]:
            logging.warning("%s's reduced model exceeds the budget %.3f by %.3f (%s ratio %.3f of the switched convs; "
                            "channel_multiple=%d).", name, masked.budget, check["exceeded_by"], config.budget_metric,
                            check["ratio"], multiple)
    costs["max_abs_logit_diff"] = _equivalence(masked, union, domain_models, test_sources, config)
    worst = max(max(v.values(), default=0.0) for v in costs["max_abs_logit_diff"].values())
    if worst > EQUIVALENCE_TOLERANCE:
        logging.warning(
            "The reduced models differ from the masked model by up to %.3g in the logits "
            "(tolerance %.0e); see %s.", worst, EQUIVALENCE_TOLERANCE, workdir.costs,
        )
    if config.finetune_epochs:
        write_json(workdir.finetune, _finetune(config, union, domain_models, test_sources, workdir))
    workdir.pruned.mkdir(parents=True, exist_ok=True)
    with atomic_path(workdir.union_model) as temporary:
        save_union(union, temporary)
    paths = {}
    for name, model in domain_models.items():
        with atomic_path(workdir.domain_model(name)) as temporary:
            model.save(temporary)
        paths[name] = str(workdir.domain_model(name))
    write_json(workdir.costs, costs)
    return PruneResult(str(workdir.union_model), paths, str(workdir.costs), costs)


def channel_multiple(config, masked):
    """``--channel_multiple``; under a latency budget, 1 stands for the table's step (the tile
    its target computes whole, on which the training priced the kept counts)."""
    if config.channel_multiple == 1 and masked.latency_cost() is not None:
        return masked.latency_cost().step
    return config.channel_multiple


def _reads_all(config):
    """Whether every domain of the union model reads all the union's channels (no masks)."""
    return config.whole_union or config.android_layout == "shared_filters"


def _union_models(rewriter, masked, config, multiple):
    """The union model; for ``shared_filters``, read whole by every domain through zero kernel
    rows (a gather runs outside XNNPACK; zero rows cost MACs but keep the filters shared), each
    conv only a run of its input with ``read_runs``."""
    if config.android_layout == "shared_filters" and not config.dense_reads:
        rewriter = Rewriter.from_model(masked, channel_multiple=multiple, dense_reads=True, read_runs=config.read_runs)
    return rewriter.union_models(domain_masks=not _reads_all(config))


def _equivalence(masked, union, domain_models, test_sources, config):
    """``{"union": {domain: diff}, "domain": {domain: diff}}``: max |logit difference| to the
    masked model on the first ``EQUIVALENCE_IMAGES`` test images of each domain."""
    result = {"union": {}, "domain": {}}
    kinds = (("domain", domain_models),) if _reads_all(config) else (("union", union), ("domain", domain_models))
    for source in test_sources:
        images, _ = data_sources.labelled_images(source, config.image_size, limit=EQUIVALENCE_IMAGES)
        reference = masked.domain_logits(images, source.name)
        for kind, models in kinds:
            logits = models[source.name].predict(images, verbose=0)
            result[kind][source.name] = float(np.max(np.abs(logits - reference)))
    return result


def _finetune(config, union, domain_models, test_sources, workdir):
    """Fine-tunes the union model jointly and each domain's model alone, in place."""
    train_sources = data_sources.domain_sources(config, "train", workdir)
    train = {s.name: data_sources.image_label_dataset(s, config.image_size) for s in train_sources}
    test = {s.name: data_sources.image_label_dataset(s, config.image_size) for s in test_sources}
    select_on = None
    if config.validation_fraction:
        select_on = {s.name: data_sources.image_label_dataset(s, config.image_size)
                     for s in data_sources.domain_sources(config, "validation", workdir)}
    kwargs = dict(epochs=config.finetune_epochs, batch_size=config.finetune_batch_size or config.batch_size,
                  learning_rate=config.finetune_learning_rate, seed=config.seed,
                  steps_per_epoch=config.steps_per_epoch, layers=config.finetune_layers,
                  schedule=config.finetune_schedule, distill_weight=config.distill_weight)
    augment = augmentation(config, train_sources)
    teachers = teacher_models(config, workdir) if config.distill_weight else {}
    logging.info("Fine-tuning the union model for %d epoch(s).", config.finetune_epochs)
    result = {"settings": {**{name: kwargs[name] for name in ("epochs", "batch_size", "learning_rate", "layers",
                                                               "schedule", "distill_weight")},
                           "augment": config.finetune_augment},
              "union": dataclasses.asdict(finetune_union(union, train, test, select_on=select_on, teachers=teachers,
                                                         augment=augment, **kwargs)),
              "domain": {}}
    for name, model in domain_models.items():
        logging.info("Fine-tuning %s's model for %d epoch(s).", name, config.finetune_epochs)
        result["domain"][name] = dataclasses.asdict(finetune_domain(
            model, train[name], test[name], select_on=None if select_on is None else select_on[name],
            teacher=teachers.get(name), augment=augment.get(name), **kwargs))
    return result


def augmentation(config, sources):
    """``{domain: dataset -> dataset}``: the training stage's augmentation of each source's
    fine-tuning pairs, seeded by ``config.seed`` and the domain's index (``{}`` when
    ``config.finetune_augment`` is off)."""
    if not config.finetune_augment:
        return {}
    return {source.name: functools.partial(augment_pairs, image_size=config.image_size, flip=source.flip,
                                           seed=config.seed * 1009 + index)
            for index, source in enumerate(sources)}

