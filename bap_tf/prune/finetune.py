"""Optional fine-tuning of the reduced models: they are plain Keras models, so this is ``fit``.

Every layer is unfrozen (the frozen backbone convs too). A per-domain model trains on its
domain's ``(image, label)`` data; the union model trains jointly through ``joint_model`` (one
image input and one logits output per domain, one cross-entropy per output, summed), so the
shared convs get every domain's gradient and each domain's BatchNorms and head only its own.
The domains' fixed ``ChannelMask``s stay, so each domain keeps using only its own channels.

Data: per domain, ``(images, labels)`` numpy arrays or an unbatched ``tf.data.Dataset`` of
``(image, label)`` with images already at the model's input size, float in [0, 1].
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from bap_tf import costs
from bap_tf.prune.saving import joint_model


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    """Accuracy per domain before and after fine-tuning, and the ``fit`` history."""

    before: dict
    after: dict
    history: dict


def unfreeze(models):
    """Makes every layer of ``models`` (a model or a dict of models) trainable."""
    for layer in costs.unique_layers(models):
        layer.trainable = True


def accuracy(model, data, batch_size=64):
    """Top-1 accuracy of an ``image -> logits`` model on ``data`` (see module docstring)."""
    correct = total = 0
    for images, labels in _dataset(data).batch(batch_size):
        predicted = np.argmax(model(images, training=False), axis=-1)
        correct += int(np.sum(predicted == labels.numpy()))
        total += int(labels.shape[0])
    if total == 0:
        raise ValueError("accuracy needs at least one example. Received: an empty data set")
    return correct / total


def finetune_domain(model, train, validation=None, *, epochs=1, batch_size=32, learning_rate=1e-3, seed=0,
                    steps_per_epoch=0):
    """Fine-tunes one domain's model in place; accuracies are on ``validation`` (or ``train``).

    An epoch is one pass over ``train``, or ``steps_per_epoch`` batches when that is > 0.
    """
    name = model.name
    evaluation = train if validation is None else validation
    before = {name: accuracy(model, evaluation)}
    unfreeze(model)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    dataset = _dataset(train).shuffle(_buffer(train), seed=seed)
    if steps_per_epoch:
        dataset = dataset.repeat()
    history = model.fit(dataset.batch(batch_size), epochs=epochs, steps_per_epoch=steps_per_epoch or None,
                        shuffle=False, verbose=0)
    return FinetuneResult(before, {name: accuracy(model, evaluation)}, history.history)


def finetune_union(models, train, validation=None, *, epochs=1, batch_size=32, learning_rate=1e-3, seed=0,
                   steps_per_epoch=0):
    """Fine-tunes the union model ``{domain: keras.Model}`` jointly, in place.

    ``train`` (and ``validation``) map each domain to its data. One epoch is
    ``steps_per_epoch`` steps (when > 0, else ``ceil(max_d N_d / batch_size)``), each with one
    batch of every domain (smaller domains repeat), as in the training pipeline.
    """
    if set(train) != set(models):
        raise ValueError(f"train must hold data for every domain {sorted(models)}. Received: {sorted(train)}")
    evaluation = train if validation is None else validation
    before = {domain: accuracy(model, evaluation[domain]) for domain, model in models.items()}
    joint = joint_model(models)
    unfreeze(models)
    joint.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss={domain: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for domain in models},
    )
    per_domain = {
        domain: _dataset(train[domain]).shuffle(_buffer(train[domain]), seed=seed).repeat().batch(batch_size)
        for domain in models
    }
    zipped = tf.data.Dataset.zip(per_domain).map(
        lambda batches: ({d: b[0] for d, b in batches.items()}, {d: b[1] for d, b in batches.items()})
    )
    steps = steps_per_epoch or math.ceil(max(_size(train[domain]) for domain in models) / batch_size)
    history = joint.fit(zipped, epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=0)
    after = {domain: accuracy(model, evaluation[domain]) for domain, model in models.items()}
    return FinetuneResult(before, after, history.history)


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
