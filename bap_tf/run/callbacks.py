"""The callbacks every training run of bap-tf uses: backups, TensorBoard, progress, history."""

import importlib.util
import sys
import time

import keras
from absl import logging

from bap_tf.run.workdir import read_json, write_json


def standard_callbacks(workdir, keep_backup):
    """Resumable backup (first, so the state is restored before the others see the model),
    TensorBoard logs in ``WORKDIR/tensorboard`` and a progress bar.

    ``keep_backup``: keep ``WORKDIR/backup`` after training, so that a later run with more
    epochs trains on from there.
    """
    callbacks = [keras.callbacks.BackupAndRestore(str(workdir.backup), delete_checkpoint=not keep_backup)]
    if importlib.util.find_spec("tensorboard") is None:
        logging.warning("TensorBoard is not installed: no logs in %s (pip install tensorboard).", workdir.tensorboard)
    else:
        callbacks.append(keras.callbacks.TensorBoard(str(workdir.tensorboard)))
    callbacks.append(keras.callbacks.ProgbarLogger())
    return callbacks


def progress_verbosity(verbose="auto"):
    """Keras ``verbose``: a live progress bar on a terminal, one line per epoch in a log file."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


class JsonHistory(keras.callbacks.Callback):
    """Writes every epoch's logs to a JSON file, atomically, keeping earlier epochs on resume.

    ``{"epochs": n, "logs": {name: [value per epoch]}, "epoch_seconds": [...]}``. An epoch that
    is trained again after a resume overwrites its own entry.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.history = {"epochs": 0, "logs": {}, "epoch_seconds": []}
        self._start = None

    def on_train_begin(self, logs=None):
        try:
            self.history = read_json(self.path)
        except FileNotFoundError:
            pass

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        for key in set(self.history["logs"]) | set(logs):
            values = self.history["logs"].setdefault(key, [])[:epoch]
            values += [None] * (epoch - len(values))
            self.history["logs"][key] = values + [logs.get(key)]
        self.history["epoch_seconds"] = self.history["epoch_seconds"][:epoch] + [time.perf_counter() - self._start]
        self.history["epochs"] = epoch + 1
        write_json(self.path, self.history)
