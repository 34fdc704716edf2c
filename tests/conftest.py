"""Shared test setup: quiet TensorFlow, deterministic seeds, two logical CPUs for tf.distribute."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow initialises its devices, i.e. before any test runs an op.
_cpus = tf.config.list_physical_devices("CPU")
if len(tf.config.get_logical_device_configuration(_cpus[0]) or []) == 0:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(autouse=True)
def _baseline_cache(tmp_path_factory, monkeypatch):
    """Each test its own cross-run baseline cache: none reuses another's (or the user's) baselines."""
    monkeypatch.setenv("BAP_TF_BASELINE_CACHE", str(tmp_path_factory.mktemp("baseline_cache")))
