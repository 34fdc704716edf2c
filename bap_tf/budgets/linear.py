"""The MACs and parameter budgets: each switch costs its kernel slice, so a domain's kept
cost is a weighted sum of its gates (``costs.switch_cost_vector``)."""

from bap_tf import costs, losses


class LinearCost:
    """Kept fraction of the switchable MACs or parameters.

    Args:
      switched: the network's switched convs (``switching.switched_layers``).
      metric: ``"macs"`` or ``"params"``.
    """

    def __init__(self, switched, metric):
        self.metric = metric
        self.vector = costs.switch_cost_vector(switched, metric).astype("float32")

    def kept_fractions(self, gates, rounded=False):
        return losses.kept_fractions(gates, self.vector)

    def minimum_fraction(self):
        return 0.0

    def summary(self):
        return {}
