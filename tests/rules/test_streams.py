"""Layers that pass channels through or join them: each follows its stream through the rewrite,
and a mask moves before the ones that keep zeros."""

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf import rules, switching
from bap_tf.layers import ChannelGather, DomainBatchNormalization, SwitchedConv2D
from bap_tf.prune import Rewriter


def test_concat_operands_shrink_on_their_own_and_match():
    def middle(x, domain):
        a = SwitchedConv2D(4, 1, 2, name="a")(x, domain)
        b = SwitchedConv2D(3, 1, 2, name="b")(x, domain)
        return keras.layers.Concatenate(name="cat")([a, b])

    network = prune_nets.tiny_network(middle)
    rng = np.random.default_rng(0)
    prune_nets.set_switches(network, 0.5, rng)
    gates = switching.gate_values(network)
    gates["a"][:] = gates["b"][:] = True
    gates["last"][:, 1] = False  # no domain reads channel 1 of the concatenation
    gates["last"][:, [0, 4]] = True
    prune_nets.set_gates(network, gates)
    prune_nets.randomize(network, rng)
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    union = rewriter.union_models()
    # Channel 1 of the concatenation is filter 1 of "a": it goes from "a" and from the concat.
    plan = rewriter.union_plan()
    assert union["birds"].get_layer("a").filters == 3 and 1 not in plan.channels("cat")
    assert union["birds"].get_layer("b").filters == len(plan.channels("b"))
    assert not prune_nets.layers_of_type(union, ChannelGather)  # "last" reads all that is left
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=1))
    assert max(worst.values()) <= prune_nets.TOLERANCE


def test_other_channelwise_layers_follow_their_stream():
    def middle(x, domain):
        y = SwitchedConv2D(5, 3, 2, padding="same", name="conv")(x, domain)
        y = DomainBatchNormalization(2, name="conv_bn")(y, domain)
        y = keras.layers.Activation("swish", name="swish")(y)
        y = keras.layers.Dropout(0.3, name="drop")(y)
        y = keras.layers.AveragePooling2D(2, name="avg")(y)
        y = keras.layers.BatchNormalization(name="plain_bn")(y)
        return keras.layers.MaxPooling2D(1, name="max")(y)

    network = prune_nets.tiny_network(middle)
    rng = np.random.default_rng(5)
    prune_nets.set_switches(network, 1.0, rng)
    gates = switching.gate_values(network)
    gates["last"][:, 2] = False  # channel 2 of "conv" goes from every layer on its way
    prune_nets.set_gates(network, gates)
    prune_nets.randomize(network, rng)
    bn = network.get_layer("plain_bn")
    bn.set_weights([rng.uniform(0.5, 1.5, 5), rng.normal(0, 0.2, 5), rng.normal(0, 0.2, 5), rng.uniform(0.5, 2, 5)])
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    union = rewriter.union_models()
    assert union["birds"].get_layer("conv").filters == 4
    assert union["birds"].get_layer("plain_bn").moving_mean.shape == (4,)
    np.testing.assert_array_equal(
        union["birds"].get_layer("plain_bn").moving_mean.numpy(), bn.moving_mean.numpy()[[0, 1, 3, 4]]
    )
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=2))
    assert max(worst.values()) <= prune_nets.TOLERANCE


@pytest.mark.parametrize(
    "layer, keeps",
    [
        (keras.layers.ReLU(), True),
        (keras.layers.Activation("hard_swish"), True),
        (keras.layers.MaxPooling2D(2), True),
        (keras.layers.Dropout(0.5), True),
        (keras.layers.Activation("sigmoid"), False),  # sigmoid(0) = 0.5
        (keras.layers.ReLU(negative_slope=0.1, threshold=1.0), False),  # 0.1 * (0 - 1) at 0
    ],
    ids=["relu", "hard_swish", "max_pool", "dropout", "sigmoid", "relu_threshold"],
)
def test_a_channel_mask_moves_before_a_layer_only_if_it_keeps_zeros(layer, keeps):
    layer(keras.Input((4, 4, 3)))
    assert rules.find_rule(layer).keeps_zeros(layer) is keeps
    assert not rules.find_rule(keras.layers.Add()).keeps_zeros(keras.layers.Add())  # not channel-wise
