"""Optional fine-tuning of the reduced models: they are plain Keras models, so this is ``fit``.

Every layer is unfrozen (the frozen backbone convs too), or only the BatchNorms and heads
(``layers="batchnorm_heads"``). A per-domain model trains on its
domain's ``(image, label)`` data; the union model trains jointly through ``joint_model`` (one
image input and one logits output per domain, one cross-entropy per output, summed), so the
shared convs get every domain's gradient and each domain's BatchNorms and head only its own.
The domains' fixed ``ChannelMask``s stay, so each domain keeps using only its own channels.

With ``select_on`` (held-back training data, never the test split), the weights kept are
those of the epoch, or of the model before fine-tuning, that score best on it.

With teachers (``teacher``/``teachers`` and ``distill_weight`` > 0) the loss is
``distill.DistillationLoss``: each domain also learns its teacher's softened logits.

With ``augment`` (e.g. ``bap_tf.data.pipeline.augment_pairs``), the training images are
augmented after shuffling and repeating, so each epoch draws anew; the data to evaluate and
select on are not. A teacher's logits are those of the image before augmentation: the
augmentation is taken to keep what the image shows, as it keeps its label.

Data: per domain, ``(images, labels)`` numpy arrays or an unbatched ``tf.data.Dataset`` of
``(image, label)`` with images already at the model's input size, float in [0, 1].
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from bap_tf import costs, metrics, rules
from bap_tf.prune.distill import DistillationLoss, with_teacher_logits
from bap_tf.prune.saving import joint_model


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    """Accuracy per domain before and after fine-tuning, the ``fit`` history, and the epoch
    kept (0: the model before fine-tuning; ``epochs``: the last) with its selection score."""

    before: dict
    after: dict
    history: dict
    selected_epoch: int = None
    selection_score: float = None


class KeepBestEpoch(keras.callbacks.Callback):
    """Restores, at the end of ``fit``, the weights that scored best (``score() -> float``),
    the weights before the first epoch included (epoch 0)."""

    def __init__(self, score, models):
        super().__init__()
        self.score = score
        self.models = models  # what to snapshot: a model, or a dict of models sharing layers
        self.best_epoch = self.best_score = self.best_weights = None

    def _consider(self, epoch):
        score = self.score()
        if self.best_score is None or score > self.best_score:
            self.best_epoch, self.best_score = epoch, score
            self.best_weights = [np.copy(v.numpy()) for v in self._variables()]

    def _variables(self):
        return [v for layer in costs.unique_layers(self.models) for v in layer.weights]

    def on_train_begin(self, logs=None):
        self._consider(0)

    def on_epoch_end(self, epoch, logs=None):
        self._consider(epoch + 1)

    def on_train_end(self, logs=None):
        for variable, value in zip(self._variables(), self.best_weights):
            variable.assign(value)


FINETUNE_LAYERS = ("all", "batchnorm_heads")
FINETUNE_SCHEDULES = ("constant", "cosine")


def optimizer(learning_rate, schedule, total_steps):
    """Adam at ``learning_rate``, held (``"constant"``) or decayed to 0 over ``total_steps``
    (``"cosine"``): a decayed rate ends on a settled model rather than wherever the last steps
    of a constant one happened to leave it."""
    if schedule not in FINETUNE_SCHEDULES:
        raise ValueError(f"schedule must be one of {FINETUNE_SCHEDULES}. Received: schedule={schedule!r}")
    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps))
    return keras.optimizers.Adam(learning_rate)


def unfreeze(models, layers="all"):
    """Makes the layers of ``models`` (a model or a dict of models) trainable: every layer
    (``"all"``), or only the BatchNorms and the dense heads (``"batchnorm_heads"``, the
    convolutions stay as pre-trained); which layers those are is their rules' answer
    (``Rule.fine_tuned``), and a layer without a rule is refused by name."""
    if layers not in FINETUNE_LAYERS:
        raise ValueError(f"layers must be one of {FINETUNE_LAYERS}. Received: layers={layers!r}")
    for layer in costs.unique_layers(models):
        layer.trainable = rules.rule_of(layer).fine_tuned(layer, layers)


def accuracy(model, data, batch_size=64):
    """Top-1 accuracy of an ``image -> logits`` model on ``data`` (see module docstring)."""
    dataset = _dataset(data).batch(batch_size)
    labels = np.concatenate([y.numpy() for _, y in dataset] or [np.zeros(0, "int32")])
    if labels.size == 0:
        raise ValueError("accuracy needs at least one example. Received: an empty data set")
    return metrics.accuracy(model.predict(dataset.map(lambda images, _: images), verbose=0), labels)


def finetune_domain(model, train, validation=None, *, epochs, batch_size, learning_rate, seed=0,
                    steps_per_epoch=0, select_on=None, layers="all", schedule="constant", teacher=None,
                    distill_weight=0.0, augment=None):
    """Fine-tunes one domain's model in place; accuracies are on ``validation`` (or ``train``).
    ``epochs``, ``batch_size`` and ``learning_rate`` have no default here: the experiment's
    (``ExperimentConfig.finetune_*``) are the ones measured.

    An epoch is ``steps_per_epoch`` batches when that is > 0, else ``ceil(N / batch_size)``
    (about one pass over ``train``; every batch is full, the data repeat).
    ``select_on``: data to keep the best epoch on (see the module docstring); ``layers``:
    what trains (``unfreeze``); ``schedule``: the learning rate's (``optimizer``); ``teacher``
    and ``distill_weight``, ``augment`` (``dataset -> dataset`` of ``(image, target)`` pairs):
    see the module docstring.
    """
    name = model.name
    evaluation = train if validation is None else validation
    before = {name: accuracy(model, evaluation)}
    unfreeze(model, layers)
    steps = steps_per_epoch or math.ceil(_size(train) / batch_size)
    model.compile(
        optimizer=optimizer(learning_rate, schedule, epochs * steps),
        loss=_loss(teacher, distill_weight),
    )
    # Full batches only, as in finetune_union: a smaller last batch retraces the step, and on the
    # pruned per-domain models TensorFlow 2.21 then aborts the process (double free).
    dataset = _augmented(_pairs(train, teacher, distill_weight).shuffle(_buffer(train), seed=seed).repeat(), augment)
    dataset = dataset.batch(batch_size)
    keep = [] if select_on is None else [KeepBestEpoch(lambda: accuracy(model, select_on), model)]
    history = model.fit(dataset, epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=keep)
    return FinetuneResult(before, {name: accuracy(model, evaluation)}, history.history, *_selected(keep))


def finetune_union(models, train, validation=None, *, epochs, batch_size, learning_rate, seed=0,
                   steps_per_epoch=0, select_on=None, layers="all", schedule="constant", teachers=None,
                   distill_weight=0.0, augment=None):
    """Fine-tunes the union model ``{domain: keras.Model}`` jointly, in place.

    ``train`` (and ``validation``) map each domain to its data. One epoch is
    ``steps_per_epoch`` steps (when > 0, else ``ceil(max_d N_d / batch_size)``), each with one
    batch of every domain (smaller domains repeat), as in the training pipeline. ``select_on``
    ({domain: data}): the epoch kept is the best in mean accuracy over domains on it.
    ``teachers``: ``{domain: keras.Model}`` to distil from with ``distill_weight``; ``augment``:
    ``{domain: dataset -> dataset}`` (see ``finetune_domain``).
    """
    if set(train) != set(models):
        raise ValueError(f"train must hold data for every domain {sorted(models)}. Received: {sorted(train)}")
    evaluation = train if validation is None else validation
    before = {domain: accuracy(model, evaluation[domain]) for domain, model in models.items()}
    joint = joint_model(models)
    unfreeze(models, layers)
    steps = steps_per_epoch or math.ceil(max(_size(train[domain]) for domain in models) / batch_size)
    joint.compile(
        optimizer=optimizer(learning_rate, schedule, epochs * steps),
        loss={domain: _loss((teachers or {}).get(domain), distill_weight) for domain in models},
    )
    per_domain = {
        domain: _augmented(_pairs(train[domain], (teachers or {}).get(domain), distill_weight)
                           .shuffle(_buffer(train[domain]), seed=seed).repeat(), (augment or {}).get(domain))
        .batch(batch_size)
        for domain in models
    }
    zipped = tf.data.Dataset.zip(per_domain).map(
        lambda batches: ({d: b[0] for d, b in batches.items()}, {d: b[1] for d, b in batches.items()})
    )
    keep = [] if select_on is None else [KeepBestEpoch(
        lambda: float(np.mean([accuracy(model, select_on[domain]) for domain, model in models.items()])), models)]
    history = joint.fit(zipped, epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=keep)
    after = {domain: accuracy(model, evaluation[domain]) for domain, model in models.items()}
    return FinetuneResult(before, after, history.history, *_selected(keep))


def _distilling(teacher, distill_weight):
    return teacher is not None and distill_weight > 0


def _loss(teacher, distill_weight):
    if _distilling(teacher, distill_weight):
        return DistillationLoss(distill_weight)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _pairs(data, teacher, distill_weight):
    """The ``(image, target)`` pairs ``fit`` trains on: the label, or the label and the teacher's logits."""
    dataset = _dataset(data)
    return with_teacher_logits(dataset, teacher) if _distilling(teacher, distill_weight) else dataset


def _augmented(dataset, augment):
    return dataset if augment is None else augment(dataset)


def _selected(keep):
    """``(selected_epoch, selection_score)`` of a ``KeepBestEpoch`` list (``(None, None)`` if empty)."""
    return (keep[0].best_epoch, keep[0].best_score) if keep else (None, None)


def _dataset(data):
    if isinstance(data, tf.data.Dataset):
        return data
    images, labels = data
    return tf.data.Dataset.from_tensor_slices((np.asarray(images, "float32"), np.asarray(labels, "int32")))


def _size(data):
    if isinstance(data, tf.data.Dataset):
        size = int(data.cardinality())
        if size < 0:
            raise ValueError(
                "Fine-tuning needs a data set of known, finite size. Received: cardinality unknown or infinite"
            )
        return size
    return len(data[1])


def _buffer(data):
    return max(1, min(_size(data), 10_000))
