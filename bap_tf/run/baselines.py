"""The field's baselines, measured on the run's own data: what the multi-domain model must beat.

Per domain, test accuracy with the params and MACs of that domain's model:

- ``feature_extractor`` (Rebuffi et al. 2017): the frozen pre-trained backbone, unpruned and
  with its source BatchNorm statistics, and a linear classifier (multinomial logistic
  regression on the standardised pooled features) fitted on at most ``MAX_TRAIN_IMAGES``
  training images. One forward pass over the data: cheap.
- ``finetune``: the whole backbone and a new linear head trained per domain with ``fit``,
  the Visual Decathlon's reference (250 S-score points per domain): Adam at
  ``FINETUNE_LEARNING_RATE``, ``config.epochs`` passes over the domain's training data (the run's
  epochs), batch ``config.batch_size``, the run's augmentation and seed, and, when the run holds
  back a validation split, the best epoch on it. D such models replace one multi-domain model.

Both use the run's splits (training data minus the validation split; the same test split).
"""

import keras
import numpy as np
from absl import logging
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from bap_tf import costs
from bap_tf.data import train_dataset
from bap_tf.data.pipeline import default_steps_per_epoch
from bap_tf.prune.finetune import KeepBestEpoch, accuracy
from bap_tf.run import sources as data_sources
from bap_tf.run.backbone import load_backbone

MAX_TRAIN_IMAGES = 10_000
FINETUNE_LEARNING_RATE = 1e-3
KINDS = ("feature_extractor", "finetune")
DESCRIPTIONS = {
    "feature_extractor": (
        "feature_extractor: the unpruned pre-trained backbone, frozen with its source BatchNorm statistics, "
        "with a linear classifier per domain (logistic regression on its pooled features)"
    ),
    "finetune": (
        "finetune: per domain, the whole backbone and a linear head fine-tuned with Adam "
        f"(learning rate {FINETUNE_LEARNING_RATE:g}) for the run's epochs on the domain's training data "
        "(the Visual Decathlon reference: 250 S-score points per domain)"
    ),
}
# The config fields a measured baseline depends on: a saved one is reused while they match.
DEPENDS_ON = ("dataset", "domains", "data_dir", "folders_root", "test_fraction", "image_size", "augment", "backbone", "width",
              "pretrained", "epochs", "steps_per_epoch", "batch_size", "seed", "validation_fraction")


def key(config):
    return {name: getattr(config, name) if not isinstance(getattr(config, name), tuple) else list(getattr(config, name))
            for name in DEPENDS_ON}


def _with_head(backbone, num_classes, name):
    inputs = keras.Input(backbone.input_shape[1:])
    outputs = keras.layers.Dense(num_classes, name="head")(backbone(inputs))
    return keras.Model(inputs, outputs, name=name)


def _entry(model, accuracy_value):
    cost = costs.count_model(model)
    return {"accuracy": float(accuracy_value), "params": int(cost.params), "macs": int(cost.macs)}


def feature_extractor(config, workdir=None):
    """``{domain: {"accuracy", "params", "macs"}}`` of the feature-extractor baseline."""
    backbone = load_backbone(config)
    result = {}
    splits = (data_sources.domain_sources(config, split, workdir) for split in ("train", "test"))
    for train, test in zip(*splits):
        logging.info("Measuring the feature-extractor baseline on %s.", train.name)
        x_train, y_train = data_sources.sample_images(train, config.image_size, MAX_TRAIN_IMAGES, config.seed)
        x_test, y_test = data_sources.labelled_images(test, config.image_size)
        scaler = StandardScaler()
        f_train = scaler.fit_transform(backbone.predict(x_train, batch_size=256, verbose=0))
        f_test = scaler.transform(backbone.predict(x_test, batch_size=256, verbose=0))
        classifier = LogisticRegression(max_iter=2000, C=1.0, random_state=config.seed)
        classifier.fit(f_train, y_train)
        correct = float(np.mean(classifier.predict(f_test) == y_test))
        result[train.name] = _entry(_with_head(backbone, train.num_classes, f"{train.name}_linear"), correct)
    return result


def finetune(config, workdir=None):
    """``{domain: {"accuracy", "params", "macs", "epoch"}}`` of per-domain fine-tuning."""
    splits = {split: data_sources.domain_sources(config, split, workdir) for split in ("train", "test")}
    validation = data_sources.domain_sources(config, "validation", workdir) if config.validation_fraction else None
    result = {}
    for index, (train, test) in enumerate(zip(splits["train"], splits["test"])):
        logging.info("Measuring the fine-tuning baseline on %s (%d epochs).", train.name, config.epochs)
        keras.utils.set_random_seed(config.seed)
        model = _with_head(load_backbone(config), train.num_classes, f"{train.name}_finetuned")
        for layer in costs.unique_layers(model):
            layer.trainable = True
        model.compile(optimizer=keras.optimizers.Adam(FINETUNE_LEARNING_RATE),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        steps = config.steps_per_epoch or default_steps_per_epoch([train], config.batch_size)
        data = train_dataset([train], batch_size=config.batch_size, image_size=config.image_size, seed=config.seed,
                             augment=config.augment, steps_per_epoch=steps * config.epochs)
        keep = []
        if validation is not None:
            held = data_sources.image_label_dataset(validation[index], config.image_size)
            keep = [KeepBestEpoch(lambda model=model, held=held: accuracy(model, held), model)]
        model.fit(data.map(lambda x, y: (x["image"], y)), epochs=config.epochs, steps_per_epoch=steps,
                  shuffle=False, verbose=0, callbacks=keep)
        test_accuracy = accuracy(model, data_sources.image_label_dataset(test, config.image_size))
        result[train.name] = {**_entry(model, test_accuracy),
                              "epoch": keep[0].best_epoch if keep else config.epochs}
    return result
