"""The models of a finished pocket run, loaded in-process, and the unpruned baselines beside them.

The baseline of the export and latency benchmarks is the *unpruned backbone*: the same trained
network rewritten with every switch on (``Rewriter(..., gates=all ones)``), i.e. the frozen
backbone with a domain's own BatchNorms and head and nothing removed. It is what serving that
domain costs without BAP, built by the same rewriter and counted by the same cost model
(``bap_tf.prune.costs_report.model_cost``) as the pruned models, so every ratio compares like with like.
"""

import numpy as np

from bap_tf.prune import Rewriter
from bap_tf.prune.costs_report import model_cost
from bap_tf.run.workdir import Workdir
from bap_tf.switching import gate_values, switched_layers


def load_run(workdir):
    """``(config, masked BudgetAwareModel, union {domain: model}, {domain: own model})``."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # no retracing warnings from predicting several models
    workdir = Workdir(workdir)
    config = workdir.saved_config()
    masked = workdir.load_masked_model(config)
    union, domain_models = workdir.load_union(config), workdir.load_domain_models(config)
    return config, masked, union, domain_models


def unpruned_rewriter(masked):
    """A ``Rewriter`` of the trained network with every switch on: nothing is pruned."""
    gates = {name: np.ones_like(value, dtype=bool) for name, value in gate_values(masked.network).items()}
    return Rewriter.from_model(masked, gates=gates)


def switched_names(masked):
    return {layer.name for layer in switched_layers(masked.network)}


def cost(models, masked):
    """``{"params", "macs"}`` of a model or of a dict of models sharing layers (each layer once)."""
    c = model_cost(models, switched_names(masked))
    return {"params": c.params_with_masks, "macs": c.total.macs}
