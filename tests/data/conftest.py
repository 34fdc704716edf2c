"""Shared fixtures of the data tests."""

import pytest

from bap_tf.data import pocket


@pytest.fixture(scope="session")
def pocket_cache_dir(tmp_path_factory):
    """A pocket cache with every domain, built once per test session (a few seconds)."""
    directory = tmp_path_factory.mktemp("pocket")
    pocket.build_pocket(directory)
    return directory
