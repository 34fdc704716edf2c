"""Pruning after training: channel dependency groups, then a rebuild into plain Keras models."""

from bap_tf.prune.dependency import DependencyGraph, PrunePlan, UnsupportedLayerError, describe_rules
from bap_tf.prune.rewrite import Rewriter, prune_domain, prune_union

__all__ = [
    "DependencyGraph",
    "PrunePlan",
    "Rewriter",
    "UnsupportedLayerError",
    "describe_rules",
    "prune_domain",
    "prune_union",
]
