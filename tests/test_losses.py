import numpy as np
import pytest

from bap_tf import losses

# Three domains, four switches; costs 1, 2, 3, 4 (T = 10).
GATES = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], dtype="float32")
COSTS = np.array([1, 2, 3, 4], dtype="float32")


def test_kept_fractions_weight_each_switch_by_its_cost():
    np.testing.assert_allclose(losses.kept_fractions(GATES, COSTS), [0.3, 0.4, 0.3])


def test_union_and_intersection_fractions():
    np.testing.assert_array_equal(losses.union_gates(GATES), [1, 1, 1, 0])
    np.testing.assert_array_equal(losses.intersection_gates(GATES), [1, 0, 0, 0])
    assert float(losses.union_fraction(GATES, COSTS)) == pytest.approx(0.6)


@pytest.mark.parametrize(
    "name, expected",
    [("none", 0.0), ("union", 0.6), ("intersection", 1 - 1 / 4), ("jaccard", 1 - 1 / 6)],
)
def test_sharing_losses_by_hand(name, expected):
    assert float(losses.sharing_loss(name, GATES, COSTS)) == pytest.approx(expected)


def test_sharing_losses_vanish_when_all_domains_use_the_same_channels():
    same = np.array([[1, 0, 1, 0]] * 3, dtype="float32")
    assert float(losses.sharing_loss("intersection", same, COSTS)) == pytest.approx(0.0)
    assert float(losses.sharing_loss("jaccard", same, COSTS)) == pytest.approx(0.0)


def test_unknown_sharing_loss_is_named():
    with pytest.raises(ValueError, match="Received: sharing_loss='dice'"):
        losses.sharing_loss("dice", GATES, COSTS)
