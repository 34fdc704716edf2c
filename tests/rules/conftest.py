"""The rule tests build the tiny switched networks of the pruning tests (``tests/prune/prune_nets``)."""

import sys
from pathlib import Path

# prune_nets sits in tests/prune; make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parents[1] / "prune"))
