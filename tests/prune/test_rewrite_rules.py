"""Layers the rewriter supports beyond the three backbones, and the ones it refuses by name."""

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf import backbones, switching
from bap_tf.layers import ChannelGather, DomainBatchNormalization, SwitchedConv2D
from bap_tf.model import BudgetAwareModel
from bap_tf.prune import Rewriter, UnsupportedLayerError


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


def _refused(middle, message):
    network = prune_nets.tiny_network(middle)
    with pytest.raises(UnsupportedLayerError, match=message):
        Rewriter(network, prune_nets.domains_of(network))


def test_dense_in_the_middle_is_refused_by_name():
    _refused(
        lambda x, domain: keras.layers.Dense(4, name="mixer")(x),
        r"Layer 'mixer' \(Dense\) is not supported by bap_tf: a Dense layer inside the network",
    )


def test_grouped_conv_is_refused_by_name():
    _refused(
        lambda x, domain: keras.layers.Conv2D(4, 1, groups=2, name="grouped")(x),
        r"Layer 'grouped' \(Conv2D\) is not supported by bap_tf: grouped convolution \(groups=2\)",
    )


def test_unknown_layer_and_channel_mixing_activation_are_refused_by_name():
    _refused(
        lambda x, domain: keras.layers.LayerNormalization(name="ln")(x),
        r"Layer 'ln' \(LayerNormalization\) is not supported by bap_tf: it normalizes over the channels",
    )
    _refused(
        lambda x, domain: keras.layers.Activation("softmax", name="probs")(x),
        r"Layer 'probs' \(Activation\) is not supported by bap_tf: activation 'softmax' mixes channels",
    )


def test_depthwise_multiplier_is_refused_before_the_switched_network_is_built():
    image = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="stem")(image)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw_x2")(x)
    x = keras.layers.Conv2D(5, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    with pytest.raises(UnsupportedLayerError, match=r"Layer 'dw_x2' \(DepthwiseConv2D\).*depth_multiplier=2"):
        switching.build_switched_network(keras.Model(image, x), [("birds", 3)])


def test_domains_must_match_the_heads(networks):
    network = networks("resnet26")
    with pytest.raises(ValueError, match=r"must match the network's heads \[3, 5, 2\]. Received: \[3, 5\]"):
        Rewriter(network, prune_nets.DOMAINS[:2])
    rewriter = Rewriter(network, prune_nets.DOMAINS)
    with pytest.raises(ValueError, match="Unknown domain"):
        rewriter.domain_model("dogs")


def test_names_are_the_backbones_with_domain_prefixes(networks):
    network = networks("resnet26")
    prune_nets.set_switches(network, 0.5, np.random.default_rng(3))
    rewriter = Rewriter(network, prune_nets.DOMAINS)
    union = rewriter.union_models()
    names = {layer.name for layer in union["cars"].layers}
    assert {"stem_conv", "stage2_block1_1_conv", "cars_stage2_block1_1_bn", "cars_head", "pool"} <= names
    # The union's domain models call one conv object; each has its own BN and head.
    assert union["cars"].get_layer("stem_conv") is union["birds"].get_layer("stem_conv")
    assert union["cars"].get_layer("cars_head").units == 5
    own = rewriter.domain_model("flowers")
    assert own.name == "flowers_pruned" and own.output.shape == (None, 2)
    assert backbones.resnet26  # the network came from the Decathlon ResNet-26


def test_rewriter_from_a_budget_aware_model():
    network = prune_nets.residual_network()
    prune_nets.set_switches(network, 0.5, np.random.default_rng(4))
    model = BudgetAwareModel(network, prune_nets.domains_of(network), budget=0.5)
    rewriter = Rewriter.from_model(model)
    assert rewriter.domain_names == ["birds", "cars"]
    assert set(rewriter.union_models()) == {"birds", "cars"}


def test_a_network_without_image_and_domain_inputs_is_refused():
    image = keras.Input((8, 8, 3), name="image")
    plain = keras.Model(image, keras.layers.Conv2D(2, 1, name="conv")(image))
    with pytest.raises(ValueError, match=r"inputs \{'image', 'domain'\}.*Received: inputs=KerasTensor"):
        Rewriter(plain, [("birds", 3)])
