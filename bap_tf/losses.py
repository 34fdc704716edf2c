"""Budget and parameter-sharing terms on the domains' binary gates.

All functions take ``gates``, the STE-binarized switches of every switched conv concatenated
along the channel axis, shape ``(num_domains, num_switches)``, and ``costs``, the cost of each
switch from ``costs.switch_cost_vector``, shape ``(num_switches,)``. Products of binary gates
stay binary in the forward pass while the straight-through gradient flows through them.
"""

from keras import ops

SHARING_LOSSES = ("none", "union", "intersection", "jaccard")

# Guards the ratios when every gate of a domain is off; far below one switch's cost.
_EPSILON = 1e-12


def _weighted_sum(values, costs):
    return ops.sum(values * costs, axis=-1)


def kept_fractions(gates, costs):
    """Per-domain fraction of the switchable cost that is kept: ``b_d``, shape ``(D,)``."""
    return _weighted_sum(gates, costs) / ops.sum(costs)


def union_gates(gates):
    """1 where at least one domain uses the channel: ``1 - prod_d (1 - s_d)``."""
    return 1.0 - ops.prod(1.0 - gates, axis=0)


def intersection_gates(gates):
    """1 where every domain uses the channel: ``prod_d s_d``."""
    return ops.prod(gates, axis=0)


def union_fraction(gates, costs):
    """Fraction of the switchable cost that survives union pruning: ``|U|_w / T``."""
    return _weighted_sum(union_gates(gates), costs) / ops.sum(costs)


def sharing_loss(name, gates, costs):
    """The parameter-sharing loss ``L_PS`` named ``name`` (see ``SHARING_LOSSES``)."""
    if name == "none":
        return ops.zeros((), dtype=gates.dtype)
    if name == "union":
        return union_fraction(gates, costs)
    intersection = _weighted_sum(intersection_gates(gates), costs)
    if name == "intersection":
        largest = ops.max(_weighted_sum(gates, costs))
        return 1.0 - intersection / (largest + _EPSILON)
    if name == "jaccard":
        return 1.0 - intersection / (_weighted_sum(union_gates(gates), costs) + _EPSILON)
    raise ValueError(f"sharing_loss must be one of {SHARING_LOSSES}. Received: sharing_loss={name!r}")
