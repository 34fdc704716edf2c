"""Training state that survives a kill at any instant, and a stop on a non-finite loss.

Keras' ``BackupAndRestore`` overwrites ``latest.weights.h5`` in place and then its metadata, so
a kill during or between the two writes leaves a corrupt file or a pair from two different
epochs. ``AtomicBackupAndRestore`` writes each epoch's state to a new file and then atomically
replaces the small ``state.json`` that names it: whatever instant the process dies, the
``state.json`` on disk names a complete file of the epoch it states.
"""

import json
import math
from pathlib import Path

import keras

from bap_tf.atomic import atomic_path, write_json

STATE_FILE = "state.json"


class CheckpointError(ValueError):
    """A backup that cannot be read, or that belongs to another model."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good backup is kept."""


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """Restores the last completed epoch at the start of ``fit``; saves after every epoch.

    Saved: every variable of the model (weights, switches, budget multipliers, sharing weight,
    BN statistics) and of its optimizers, through ``model.save_weights``. Restored, ``fit``
    continues at the next epoch (``initial_epoch``), so a killed run ends after the same total
    number of steps as one that was never interrupted. Put it first among the callbacks.
    """

    def __init__(self, directory, delete_on_success=True):
        super().__init__()
        self.directory = Path(directory)
        self.delete_on_success = delete_on_success

    @property
    def state_path(self):
        return self.directory / STATE_FILE

    def saved_epochs(self):
        """Epochs completed in the backup (0 if there is none)."""
        return self._read_state()["epochs"] if self.state_path.exists() else 0

    def _read_state(self):
        try:
            state = json.loads(self.state_path.read_text())
            return {"epochs": int(state["epochs"]), "weights": str(state["weights"])}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"The training backup cannot be read; delete it to start over. "
                f"Received: {self.state_path} ({type(error).__name__}: {error})"
            ) from None

    def on_train_begin(self, logs=None):
        if not self.state_path.exists():
            return
        state = self._read_state()
        weights = self.directory / state["weights"]
        try:
            self.model.load_weights(weights)
        except Exception as error:  # h5py and Keras raise many types for a bad file
            raise CheckpointError(
                "The training backup does not fit this model (corrupt, or from another run); "
                f"delete it to start over. Received: {weights} ({type(error).__name__}: {error})"
            ) from None
        self.model._initial_epoch = state["epochs"]

    def on_epoch_end(self, epoch, logs=None):
        previous = self._read_state()["weights"] if self.state_path.exists() else None
        name = f"epoch{epoch + 1:04d}.weights.h5"
        with atomic_path(self.directory / name) as temporary:
            self.model.save_weights(temporary)
        write_json(self.state_path, {"epochs": epoch + 1, "weights": name})
        if previous and previous != name:
            (self.directory / previous).unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        if self.delete_on_success and self.state_path.exists():
            (self.directory / self._read_state()["weights"]).unlink(missing_ok=True)
            self.state_path.unlink()


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training with an error naming the step where the loss became NaN or infinite.

    It raises instead of setting ``stop_training``: the epoch never ends, so the backup of the
    last good epoch is not overwritten, and nothing after ``fit`` (the budget projection, the
    final save) runs on broken weights.
    """

    def __init__(self, backup=None):
        super().__init__()
        self.backup = backup
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        kept = ""
        if self.backup is not None and self.backup.state_path.exists():
            kept = f"; the last good state (epoch {self.backup.saved_epochs()}) is kept in {self.backup.directory}"
        raise NonFiniteLossError(
            f"The loss became {float(loss)} at epoch {self._epoch + 1}, step {batch + 1}{kept}. "
            "Lower --learning_rate or check the data for NaN/Inf values."
        )
