"""A bap-train killed with SIGKILL mid-run and started again ends like an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import bap_tf.model  # noqa: F401  (registers the classes load_model reads)
from bap_tf.data import pocket

EPOCHS, STEPS = 3, 12


@pytest.fixture(scope="module")
def pocket_cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pocket")
    pocket.build_pocket(directory, names=["digits", "letters"])
    return directory


def command(workdir, cache):
    return [
        str(Path(sys.executable).with_name("bap-train")), f"--workdir={workdir}", "--stages=train",
        "--dataset=pocket", "--domains=digits,letters", f"--data_dir={cache}", "--pretrained=none",
        "--width=4", f"--epochs={EPOCHS}", f"--steps_per_epoch={STEPS}", "--batch_size=4", "--seed=3",
    ]


def switches(workdir):
    model = keras.saving.load_model(workdir / "model.keras")
    return model, np.concatenate([layer.switches.numpy().ravel() for layer in model.switched])


@pytest.mark.slow
def test_sigkill_then_rerun_matches_an_uninterrupted_run(tmp_path, pocket_cache):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed, pocket_cache), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    state = killed / "backup" / "state.json"
    deadline = time.time() + 300
    while not state.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = json.loads(state.read_text())["epochs"]
    assert 1 <= saved < EPOCHS, "the kill came after the run had finished"
    assert not (killed / "model.keras").exists()

    subprocess.run(command(killed, pocket_cache), env=env, check=True, capture_output=True)
    straight = tmp_path / "straight"
    subprocess.run(command(straight, pocket_cache), env=env, check=True, capture_output=True)

    resumed_model, resumed = switches(killed)
    straight_model, uninterrupted = switches(straight)
    assert int(resumed_model.optimizer.iterations.numpy()) == EPOCHS * STEPS
    assert int(straight_model.optimizer.iterations.numpy()) == EPOCHS * STEPS
    assert json.loads((killed / "history.json").read_text())["epochs"] == EPOCHS
    # Same flags and seed: the same switches, bit for bit, killed or not.
    np.testing.assert_array_equal(resumed, uninterrupted)
    np.testing.assert_array_equal(resumed_model.multipliers.numpy(), straight_model.multipliers.numpy())
