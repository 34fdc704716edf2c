"""Shared by the baseline tests: one pocket domain built once per module, and a tiny config on it."""

import pytest

from bap_tf.config import ExperimentConfig
from bap_tf.data import pocket


@pytest.fixture(scope="module")
def pocket_cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pocket")
    pocket.build_pocket(directory, names=["digits"])
    return directory


@pytest.fixture
def tiny_config(pocket_cache):
    """``tiny_config(**overrides)``: a resolved config on ``digits`` with tiny training."""
    def make(**overrides):
        values = dict(domains=("digits",), data_dir=str(pocket_cache), pretrained="none", width=4, epochs=2,
                      steps_per_epoch=2, batch_size=4, validation_fraction=0.1)
        return ExperimentConfig(**{**values, **overrides}).resolve()
    return make
