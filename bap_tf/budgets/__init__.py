"""What a budget measures: the cost of a domain's gates as a fraction of the backbone's.

Every budget metric is one class with the same small interface, so the model, its hard
projection and the report do not care which is used:

- ``kept_fractions(gates, rounded=False)``: ``(D,)`` fractions, differentiable in the gates
  (straight-through); the budget asks ``kept_d <= budget``. ``rounded``: as the rewrite will
  build it (the projection at the end of training uses it);
- ``minimum_fraction()``: the least any gates reach (a budget below it is refused);
- ``summary()``: what the report says about the metric's data.

``macs`` / ``params`` (``linear.LinearCost``) are sums over switches; ``latency``
(``latency.LatencyCost``) reads a measured latency table; ``mcu`` (``mcu.McuCost``) estimates
each domain's int8 file and TFLM arena against a board's flash and RAM (its budget is 1: all
of them).
"""

from bap_tf.budgets.latency import LatencyCost
from bap_tf.budgets.linear import LinearCost
from bap_tf.budgets.mcu import McuCost

BUDGET_METRICS = ("macs", "params", "latency", "mcu")


def budget_cost(metric, network, switched, latency_table=None, mcu_budget=None):
    """The cost object of ``metric`` for ``network`` (its ``switched`` convs); ``latency_table``
    (a table dict) for ``"latency"``, ``mcu_budget`` (flash KiB, RAM KiB) for ``"mcu"``."""
    if metric not in BUDGET_METRICS:
        raise ValueError(f"budget_metric must be one of {BUDGET_METRICS}. Received: budget_metric={metric!r}")
    if metric == "latency":
        if latency_table is None:
            raise ValueError("budget_metric='latency' needs a latency table (bap-latency-table's output). "
                             "Received: latency_table=None")
        return LatencyCost(network, latency_table)
    if metric == "mcu":
        if mcu_budget is None:
            raise ValueError("budget_metric='mcu' needs the board's (flash KiB, RAM KiB). Received: mcu_budget=None")
        return McuCost(network, *mcu_budget)
    return LinearCost(switched, metric)
