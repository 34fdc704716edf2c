"""Pruning after training: channel dependency groups, then a rebuild into plain Keras models.

- ``dependency``: the channel groups (``DependencyGraph``), computed once from each layer's rule
  (``bap_tf.rules``, which ``describe_rules`` prints);
- ``rewrite``: ``Rewriter`` builds the union-pruned multi-domain model and per-domain models;
- ``costs_report``: their params / MACs next to the backbone's (from ``bap_tf.costs``);
- ``saving``: the union model as one joint Keras model / one ``.keras`` file;
- ``finetune``: optional ``fit`` of the reduced models.
"""

from bap_tf.prune.costs_report import prune_report
from bap_tf.prune.dependency import DependencyGraph, PrunePlan, UnsupportedLayerError, describe_rules
from bap_tf.prune.rewrite import Rewriter
from bap_tf.prune.saving import joint_model, load_union, save_union

__all__ = [
    "DependencyGraph",
    "PrunePlan",
    "Rewriter",
    "UnsupportedLayerError",
    "describe_rules",
    "joint_model",
    "load_union",
    "prune_report",
    "save_union",
]
