"""Model selection on held-back training data: the best epoch, not the last, is the one kept.

Test accuracy on the pocket benchmark moves by several points between epochs, and not the
same way on every domain (more epochs help ``letters`` and cost ``textures``), so the train
stage scores every epoch's model, as the run would end with it, on the validation split carved
from the training data (``bap_tf.data.pipeline.split_validation``; never the test split) and
keeps the best.
"""

import json

import keras
import numpy as np

from bap_tf import metrics
from bap_tf.atomic import atomic_path, write_json


def mean_domain_accuracy(model, datasets):
    """``(mean over domains, {domain: accuracy})``: top-1 accuracy of a ``BudgetAwareModel``
    on ``{domain: eval dataset}`` (``eval_datasets``, in the model's domain order)."""
    scores = {}
    for name, dataset in datasets.items():
        classes = model.domains[model.domain_index(name)].num_classes
        labels = np.concatenate([y.numpy() for _, y in dataset])
        scores[name] = metrics.accuracy(model.predict(dataset, verbose=0)[:, :classes], labels)
    return float(np.mean(list(scores.values()))), scores


class SelectBestEpoch(keras.callbacks.Callback):
    """Ends ``fit`` with the epoch whose finished model scores best on validation data.

    At the end of each epoch from ``first_epoch`` on, the model is finished as ``fit`` would end
    it (the ``finish`` callbacks' ``on_train_end``: switches projected to the budget, BatchNorm
    statistics re-estimated) and scored: mean validation accuracy over domains (also logged as
    ``val_mean_accuracy``). The best finished state is saved to ``path`` (and ``path``.json:
    epoch and scores, so a resumed run remembers it), then the training state is put back. At
    the end of ``fit`` the best state is loaded (the finishing callbacks run when no epoch was
    a candidate).

    Args:
      datasets: ``{domain: eval dataset}`` of the validation split (``eval_datasets``).
      finish: the end-of-fit callbacks, in order (``ProjectToBudget``, ``RecalibrateBatchNorm``);
        this callback replaces them in the list given to ``fit``.
      path: where the best weights go (``*.weights.h5``).
      first_epoch: epochs before it are not candidates (the warm-up: every switch still on).
    """

    def __init__(self, datasets, finish, path, first_epoch=0):
        super().__init__()
        self.datasets = datasets
        self.finish = list(finish)
        self.path = path
        self.first_epoch = int(first_epoch)
        self.best = None  # {"epoch", "score", "scores"}

    @property
    def record_path(self):
        return f"{self.path}.json"

    def set_model(self, model):
        super().set_model(model)
        for callback in self.finish:
            callback.set_model(model)

    def on_train_begin(self, logs=None):
        try:
            with open(self.record_path) as f:
                self.best = json.load(f)
        except FileNotFoundError:
            self.best = None

    def _finish(self):
        for callback in self.finish:
            callback.on_train_end()

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first_epoch:
            return
        training_state = [np.copy(v) for v in self.model.get_weights()]
        self._finish()
        score, scores = mean_domain_accuracy(self.model, self.datasets)
        if logs is not None:
            logs["val_mean_accuracy"] = score
        if self.best is None or score > self.best["score"]:
            with atomic_path(self.path) as temporary:
                self.model.save_weights(temporary)
            self.best = {"epoch": epoch, "score": score, "scores": scores}
            write_json(self.record_path, self.best)
        self.model.set_weights(training_state)

    def on_train_end(self, logs=None):
        if self.best is None:
            self._finish()
        else:
            self.model.load_weights(self.path)
