"""What a budget measures: the cost of a domain's gates as a fraction of the backbone's.

Every budget metric is one class with the same small interface, so the model, its hard
projection and the report do not care which is used:

- ``kept_fractions(gates, rounded=False)``: ``(D,)`` fractions, differentiable in the gates
  (straight-through); the budget asks ``kept_d <= budget``. ``rounded``: as the rewrite will
  build it (the projection at the end of training uses it);
- ``minimum_fraction()``: the least any gates reach (a budget below it is refused);
- ``summary()``: what the report says about the metric's data.

``macs`` / ``params`` (``linear.LinearCost``) are sums over switches; ``latency``
(``latency.LatencyCost``) reads a measured latency table.
"""

from bap_tf.budgets.latency import LatencyCost
from bap_tf.budgets.linear import LinearCost

BUDGET_METRICS = ("macs", "params", "latency")


def budget_cost(metric, network, switched, latency_table=None):
    """The cost object of ``metric`` for ``network`` (its ``switched`` convs)."""
    if metric not in BUDGET_METRICS:
        raise ValueError(f"budget_metric must be one of {BUDGET_METRICS}. Received: budget_metric={metric!r}")
    if metric == "latency":
        if latency_table is None:
            raise ValueError("budget_metric='latency' needs a latency table (bap-latency-table's output). "
                             "Received: latency_table=None")
        return LatencyCost(network, latency_table)
    return LinearCost(switched, metric)
