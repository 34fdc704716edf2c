"""Shared fixtures of the pruning tests: one tiny switched network per architecture."""

import sys
from pathlib import Path

import pytest

# prune_nets sits beside this file; make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent))

import prune_nets  # noqa: E402


@pytest.fixture(scope="session")
def networks():
    """Builds each architecture's switched network on first use, then reuses it."""
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = prune_nets.build(arch)
        return cache[arch]

    return get
