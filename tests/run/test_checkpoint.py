"""Atomic backups: resume equals an uninterrupted run; bad backups and NaN losses are named."""

import json

import keras
import numpy as np
import pytest

from bap_tf.backbones import resnet26
from bap_tf.data.synthetic import interleave, template_domains
from bap_tf.model import BudgetAwareModel
from bap_tf.run.checkpoint import AtomicBackupAndRestore, CheckpointError, NonFiniteLossError, StopOnNonFiniteLoss
from bap_tf.switching import build_switched_network

DOMAINS = [("a", 3), ("b", 4)]
X, Y = interleave(template_domains([3, 4], 24, 16, seed=2))  # 48 samples: 2 steps of 24 per epoch


def make_model(width=4):
    keras.utils.set_random_seed(0)
    network = build_switched_network(resnet26((16, 16, 3), width=width, blocks_per_stage=1), DOMAINS)
    model = BudgetAwareModel(network, DOMAINS, budget=0.5, sharing_loss="union", name="bap")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def fit(model, epochs, callbacks):
    return model.fit(X, Y, batch_size=24, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)


def test_resumed_training_ends_where_an_uninterrupted_one_does(tmp_path):
    straight = make_model()
    fit(straight, 4, [])

    first = make_model()
    fit(first, 2, [AtomicBackupAndRestore(tmp_path, delete_on_success=False)])
    assert json.loads((tmp_path / "state.json").read_text()) == {"epochs": 2, "weights": "epoch0002.weights.h5"}
    (tmp_path / ".epoch0003.123.abcd.tmp.weights.h5").write_bytes(b"half-written by a killed run")

    resumed = make_model()  # a new process would start from scratch like this
    history = fit(resumed, 4, [AtomicBackupAndRestore(tmp_path)])
    assert len(history.history["loss"]) == 2  # only epochs 3 and 4 ran
    assert int(resumed.optimizer.iterations.numpy()) == int(straight.optimizer.iterations.numpy()) == 8
    for ours, theirs in zip(resumed.weights, straight.weights):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5, err_msg=ours.path)
    assert not (tmp_path / "state.json").exists()  # deleted once training completed


def test_corrupt_backup_is_named(tmp_path):
    fit(make_model(), 1, [AtomicBackupAndRestore(tmp_path, delete_on_success=False)])
    (tmp_path / "epoch0001.weights.h5").write_bytes(b"not an h5 file")
    with pytest.raises(CheckpointError, match=r"corrupt, or from another run.*epoch0001.weights.h5"):
        fit(make_model(), 2, [AtomicBackupAndRestore(tmp_path)])
    (tmp_path / "state.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"cannot be read.*state.json"):
        fit(make_model(), 2, [AtomicBackupAndRestore(tmp_path)])


def test_backup_of_another_model_is_refused(tmp_path):
    fit(make_model(width=4), 1, [AtomicBackupAndRestore(tmp_path, delete_on_success=False)])
    with pytest.raises(CheckpointError, match="corrupt, or from another run"):
        fit(make_model(width=8), 2, [AtomicBackupAndRestore(tmp_path)])


class PoisonAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            gamma = self.model.network.get_layer("stem_bn").gamma
            gamma.assign(np.full(gamma.shape, np.nan, "float32"))


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_state(tmp_path):
    model = make_model()
    backup = AtomicBackupAndRestore(tmp_path)
    callbacks = [backup, PoisonAfterFirstEpoch(), StopOnNonFiniteLoss(backup)]
    with pytest.raises(NonFiniteLossError,
                       match=r"became nan at epoch 2, step 1; the last good state \(epoch 1\) is kept"):
        fit(model, 3, callbacks)
    restored = make_model()
    restored.load_weights(tmp_path / "epoch0001.weights.h5")
    assert all(np.all(np.isfinite(v.numpy())) for v in restored.weights)
