"""Pre-training a backbone on a source domain, the starting point of every bap-tf run.

The backbone (``build_backbone``) gets a ``classifier`` Dense head for the source's classes and
trains end to end with Adam (cosine decay to 0), cross-entropy, the same input pipeline as
multi-domain training (one domain) and the same callbacks (TensorBoard, progress bar,
resumable backup). What is kept is the feature extractor (``features_of``): its weights go to
``output`` (``WORKDIR/backbone.weights.h5`` by default), loadable with
``build_backbone(..., weights=path)`` or ``bap-train --pretrained=path``; ``pretrain.json``
records the source's test accuracy and the config.

Sources: ``fashion_mnist`` (the pocket benchmark's source, offline) or ``imagenet`` (tfds
``imagenet2012``; its archives go in ``manual_dir``).
"""

import dataclasses
import math

import keras
from absl import logging

from bap_tf.atomic import atomic_path, write_json
from bap_tf.backbones import build_backbone, features_of
from bap_tf.backbones.resnet26 import FEATURES_LAYER, resnet26
from bap_tf.data import DomainSource, eval_datasets, load_tfds, train_dataset
from bap_tf.data.pipeline import default_steps_per_epoch
from bap_tf.data.pocket import pocket_sources
from bap_tf.run.callbacks import progress_verbosity, standard_callbacks
from bap_tf.run.sources import pocket_cache_dir
from bap_tf.run.strategy import check_batch_size, get_strategy, lost_workers_reported


@dataclasses.dataclass(frozen=True)
class PretrainResult:
    weights_path: str
    test_accuracy: float
    summary_path: str


def source_domains(config):
    """``(train DomainSource, test DomainSource)`` of the config's source domain."""
    if config.source == "fashion_mnist":
        cache = pocket_cache_dir(config.data_dir)
        return pocket_sources("train", cache, ["fashion_mnist"])[0], pocket_sources("test", cache, ["fashion_mnist"])[0]
    kwargs = dict(image_size=config.image_size, data_dir=config.data_dir or None, manual_dir=config.manual_dir or None)
    train, classes = load_tfds("imagenet2012", "train", **kwargs)
    test, _ = load_tfds("imagenet2012", "validation", **kwargs)
    return DomainSource("imagenet", train, classes), DomainSource("imagenet", test, classes)


def build_classifier(config, num_classes):
    """The backbone with a ``classifier`` head; ``features_of`` recovers the backbone."""
    shape = (config.image_size, config.image_size, 3)
    if config.backbone == "resnet26":
        return resnet26(shape, width=config.width, num_classes=num_classes)
    backbone = build_backbone(config.backbone, shape)
    features = keras.layers.Identity(name=FEATURES_LAYER)(backbone.output)
    logits = keras.layers.Dense(num_classes, name="classifier")(features)
    return keras.Model(backbone.input, logits, name=config.backbone)


def _images_only(dataset):
    return dataset.map(lambda x, y: (x["image"], y))


def pretrain(config, workdir, verbose="auto"):
    """Trains the config's backbone on its source in ``workdir``; returns a ``PretrainResult``."""
    keras.utils.set_random_seed(config.seed)
    strategy = get_strategy(config.strategy, config.tpu)
    check_batch_size(strategy, config.batch_size, 1)
    train, test = source_domains(config)
    steps = config.steps_per_epoch or default_steps_per_epoch([train], config.batch_size)
    data = _images_only(train_dataset([train], batch_size=config.batch_size, image_size=config.image_size,
                                      seed=config.seed, augment=config.augment, steps_per_epoch=steps))
    test_data = _images_only(eval_datasets([test], batch_size=256, image_size=config.image_size)[test.name])
    with strategy.scope():
        classifier = build_classifier(config, train.num_classes)
        schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps * config.epochs)
        classifier.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    logging.info("Pre-training %s (%d parameters) on %s for %d epochs of %d steps.",
                 config.backbone, classifier.count_params(), config.source, config.epochs, steps)
    with lost_workers_reported(strategy):
        history = classifier.fit(
            data, epochs=config.epochs, validation_data=test_data, shuffle=False,
            callbacks=standard_callbacks(workdir, keep_backup=False, name="pretrain"),
            verbose=progress_verbosity(verbose),
        )
    _, accuracy = classifier.evaluate(test_data, verbose=0)
    output = config.output or str(workdir.root / "backbone.weights.h5")
    with atomic_path(output) as temporary:
        features_of(classifier).save_weights(temporary)
    summary = workdir.root / "pretrain.json"
    write_json(summary, {
        "weights": output, "source": config.source, "test_accuracy": float(accuracy),
        "parameters": int(features_of(classifier).count_params()),
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "config": config.to_dict(),
    })
    if not math.isfinite(accuracy):
        raise ValueError(f"Pre-training diverged. Expected a finite test accuracy. Received: {accuracy}")
    return PretrainResult(output, float(accuracy), str(summary))
