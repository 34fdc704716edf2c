"""The field's baselines, measured on the run's own data: what the multi-domain model must beat.

Per domain, test accuracy with the params and MACs of that domain's model:

- ``feature_extractor`` (Rebuffi et al. 2017): the frozen pre-trained backbone, unpruned and
  with its source BatchNorm statistics, and a linear classifier (multinomial logistic
  regression on the standardised pooled features, inverse regularisation ``C`` from
  ``FEATURE_EXTRACTOR_C``) fitted on at most ``MAX_TRAIN_IMAGES`` training images. One
  forward pass over the data: cheap.
- ``finetune``: the whole backbone and a new linear head trained per domain with ``fit``,
  the Visual Decathlon's reference (250 S-score points per domain): Adam with the run's
  fine-tuning schedule, ``config.epochs`` passes over the domain's training data (the run's
  epochs), batch ``config.batch_size``, the run's seed, at each (learning rate, augmentation)
  of ``FINETUNE_GRID``, each keeping its best epoch on the held-back data. D such models
  replace one multi-domain model.

Both are tuned the way the method is: each domain takes the setting that scores best on the
run's held-back share of its training split (``--validation_fraction``), never on the test
split, and only the chosen model is tested. Without held-back data each takes the first
setting. The entry of each domain names what it chose (``settings``) and its held-back score.
"""

from pathlib import Path

import keras
import numpy as np
from absl import logging
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from bap_tf import costs
from bap_tf.atomic import atomic_path
from bap_tf.data import train_dataset
from bap_tf.data.pipeline import default_steps_per_epoch
from bap_tf.prune.finetune import KeepBestEpoch, accuracy, optimizer
from bap_tf.run import sources as data_sources
from bap_tf.run.backbone import load_backbone

MAX_TRAIN_IMAGES = 10_000
# What each domain's baseline chooses from on the held-back data (the first without it).
FEATURE_EXTRACTOR_C = (1.0, 0.1, 10.0)
FINETUNE_GRID = tuple({"learning_rate": rate, "augment": augment} for rate in (1e-3, 2e-3) for augment in (True, False))
KINDS = ("feature_extractor", "finetune")
DESCRIPTIONS = {
    "feature_extractor": (
        "feature_extractor: the unpruned pre-trained backbone, frozen with its source BatchNorm statistics, "
        "with a linear classifier per domain (logistic regression on its pooled features, C chosen on held-back data)"
    ),
    "finetune": (
        "finetune: per domain, the whole backbone and a linear head fine-tuned with Adam for the run's epochs on "
        "the domain's training data, learning rate and augmentation chosen on held-back data "
        "(the Visual Decathlon reference: 250 S-score points per domain)"
    ),
}
# The config fields a measured baseline depends on: a saved one is reused while they match.
DEPENDS_ON = ("dataset", "domains", "data_dir", "folders_root", "test_fraction", "image_size", "backbone", "width",
              "pretrained", "epochs", "steps_per_epoch", "batch_size", "seed", "validation_fraction",
              "finetune_schedule")


def key(config):
    """What the baselines of ``config`` depend on: its settings and the settings they choose from."""
    values = {name: getattr(config, name) for name in DEPENDS_ON}
    values = {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}
    return {**values, "feature_extractor_c": list(FEATURE_EXTRACTOR_C), "finetune_grid": list(FINETUNE_GRID)}


def _with_head(backbone, num_classes, name):
    inputs = keras.Input(backbone.input_shape[1:])
    outputs = keras.layers.Dense(num_classes, name="head")(backbone(inputs))
    return keras.Model(inputs, outputs, name=name)


def _entry(model, accuracy_value):
    cost = costs.count_model(model)
    return {"accuracy": float(accuracy_value), "params": int(cost.params), "macs": int(cost.macs)}


def _held_back(config, workdir):
    """Each domain's held-back share of its training split, or ``None`` when there is none."""
    return data_sources.domain_sources(config, "validation", workdir) if config.validation_fraction else None


def _features(backbone, images):
    return backbone.predict(images, batch_size=256, verbose=0)


def feature_extractor(config, workdir=None):
    """``{domain: {"accuracy", "params", "macs", "settings", "held_back"}}`` of the
    feature-extractor baseline, ``C`` chosen per domain on the held-back data."""
    backbone = load_backbone(config)
    validation = _held_back(config, workdir)
    result = {}
    splits = (data_sources.domain_sources(config, split, workdir) for split in ("train", "test"))
    for index, (train, test) in enumerate(zip(*splits)):
        logging.info("Measuring the feature-extractor baseline on %s.", train.name)
        x_train, y_train = data_sources.sample_images(train, config.image_size, MAX_TRAIN_IMAGES, config.seed)
        scaler = StandardScaler()
        f_train = scaler.fit_transform(_features(backbone, x_train))
        held = None
        if validation is not None:
            x_held, y_held = data_sources.labelled_images(validation[index], config.image_size)
            held = scaler.transform(_features(backbone, x_held)), y_held
        best = None
        for c in FEATURE_EXTRACTOR_C if held is not None else FEATURE_EXTRACTOR_C[:1]:
            classifier = LogisticRegression(max_iter=2000, C=c, random_state=config.seed).fit(f_train, y_train)
            score = None if held is None else float(np.mean(classifier.predict(held[0]) == held[1]))
            if best is None or (score is not None and score > best[0]):
                best = (score, c, classifier)
        score, c, classifier = best
        x_test, y_test = data_sources.labelled_images(test, config.image_size)
        correct = float(np.mean(classifier.predict(scaler.transform(_features(backbone, x_test))) == y_test))
        result[train.name] = {**_entry(_with_head(backbone, train.num_classes, f"{train.name}_linear"), correct),
                              "settings": {"C": c}, "held_back": score}
    return result


def _finetuned(config, train, held, setting):
    """One domain's backbone and head fine-tuned with ``setting``; ``(model, held-back score,
    epoch kept)`` (score ``None`` without held-back data, and the last epoch kept)."""
    keras.utils.set_random_seed(config.seed)
    model = _with_head(load_backbone(config), train.num_classes, f"{train.name}_finetuned")
    for layer in costs.unique_layers(model):
        layer.trainable = True
    steps = config.steps_per_epoch or default_steps_per_epoch([train], config.batch_size)
    model.compile(optimizer=optimizer(setting["learning_rate"], config.finetune_schedule, steps * config.epochs),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = train_dataset([train], batch_size=config.batch_size, image_size=config.image_size, seed=config.seed,
                         augment=setting["augment"], steps_per_epoch=steps * config.epochs)
    keep = [] if held is None else [KeepBestEpoch(lambda: accuracy(model, held), model)]
    model.fit(data.map(lambda x, y: (x["image"], y)), epochs=config.epochs, steps_per_epoch=steps,
              shuffle=False, verbose=0, callbacks=keep)
    return (model, keep[0].best_score, keep[0].best_epoch) if keep else (model, None, config.epochs)


def finetune(config, workdir=None, models_dir=None):
    """``{domain: {"accuracy", "params", "macs", "epoch", "settings", "held_back"}}`` of
    per-domain fine-tuning, each domain's setting chosen among ``FINETUNE_GRID`` on the
    held-back data; the chosen models are saved as ``models_dir/<domain>.keras`` when given
    (the teachers of ``bap_tf.prune.distill``)."""
    splits = {split: data_sources.domain_sources(config, split, workdir) for split in ("train", "test")}
    validation = _held_back(config, workdir)
    grid = FINETUNE_GRID if validation is not None else FINETUNE_GRID[:1]
    result = {}
    for index, (train, test) in enumerate(zip(splits["train"], splits["test"])):
        held = None if validation is None else data_sources.image_label_dataset(validation[index], config.image_size)
        best = None
        for setting in grid:
            logging.info("Measuring the fine-tuning baseline on %s (%d epochs, %s).", train.name, config.epochs,
                         setting)
            model, score, epoch = _finetuned(config, train, held, setting)
            if best is None or (score is not None and score > best[1]):
                best = (model, score, epoch, setting)
        model, score, epoch, setting = best
        test_accuracy = accuracy(model, data_sources.image_label_dataset(test, config.image_size))
        if models_dir is not None:
            Path(models_dir).mkdir(parents=True, exist_ok=True)
            with atomic_path(Path(models_dir) / f"{train.name}.keras") as temporary:
                model.save(temporary)
        result[train.name] = {**_entry(model, test_accuracy), "epoch": epoch, "settings": dict(setting),
                              "held_back": score}
    return result
