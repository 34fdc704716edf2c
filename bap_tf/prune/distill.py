"""Distillation from per-domain teachers while the reduced models are fine-tuned.

The teachers are the per-domain fine-tuning baselines (``bap_tf.run.baseline_models``): one whole
backbone per domain, the reference the pruned model is scored against. Their logits on the
fine-tuning images are computed once, before any augmentation (``bap_tf.prune.finetune``), and
travel with the labels: ``y_true`` is ``[label, teacher logits...]``, which lets
plain ``compile``/``fit`` train with ``DistillationLoss``, the joint union model included.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

TEMPERATURE = 2.0  # softens the teachers' logits (Hinton et al. 2015); the usual range is 1-4


@keras.saving.register_keras_serializable(package="bap_tf")
class DistillationLoss(keras.losses.Loss):
    """``(1 - weight) * CE(label, student) + weight * T^2 * CE(softmax(teacher / T), softmax(student / T))``.

    Args:
        weight: share of the teacher's term, in [0, 1]; 0 is plain cross-entropy.
        temperature: T > 0; the T^2 factor keeps the soft term's gradients at the hard term's scale.

    ``y_true`` is ``(batch, 1 + classes)``: the label, then the teacher's logits; ``y_pred`` the
    student's logits ``(batch, classes)``.
    """

    def __init__(self, weight, temperature=TEMPERATURE, name="distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1]. Received: weight={weight!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0. Received: temperature={temperature!r}")
        self.weight = float(weight)
        self.temperature = float(temperature)

    def call(self, y_true, y_pred):
        labels = ops.cast(y_true[:, 0], "int32")
        teacher = y_true[:, 1:]
        hard = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        soft_targets = ops.softmax(teacher / self.temperature, axis=-1)
        soft = -ops.sum(soft_targets * ops.log_softmax(y_pred / self.temperature, axis=-1), axis=-1)
        return (1.0 - self.weight) * hard + self.weight * self.temperature**2 * soft

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "temperature": self.temperature}


def with_teacher_logits(dataset, teacher, batch_size=256):
    """``dataset`` of ``(image, label)`` as ``(image, [label, teacher logits...])`` (float32)."""
    logits = teacher.predict(dataset.batch(batch_size).map(lambda images, _: images), verbose=0)
    logits = tf.data.Dataset.from_tensor_slices(np.asarray(logits, "float32"))
    return tf.data.Dataset.zip((dataset, logits)).map(
        lambda example, teacher_logits: (example[0], tf.concat([[tf.cast(example[1], "float32")], teacher_logits], 0))
    )
