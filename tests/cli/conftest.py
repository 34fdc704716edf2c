"""Shared fixtures of the command tests."""

import pytest

from bap_tf.data import pocket


@pytest.fixture(scope="session")
def pocket_cache(tmp_path_factory):
    """The pocket domains the command tests use, built once per session (a few seconds)."""
    directory = tmp_path_factory.mktemp("pocket")
    pocket.build_pocket(directory, names=["fashion_mnist", "digits", "letters"])
    return directory
