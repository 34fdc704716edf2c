"""Params and MACs of the reduced models, from ``bap_tf.costs``, checked by hand and by Keras."""

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf import costs, switching
from bap_tf.layers import ChannelGather, ChannelMask
from bap_tf.prune import Rewriter, costs_report

TOY_DOMAINS = [("birds", 2), ("cars", 3)]


def toy_network():
    """image 8x8x3 -> stem 3x3 conv (4, no bias) -> BN -> ReLU -> 1x1 conv (6) -> pooling."""
    image = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="stem")(image)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.Conv2D(6, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return switching.build_switched_network(keras.Model(image, x), TOY_DOMAINS)


def test_toy_costs_by_hand():
    network = toy_network()
    # Backbone: stem 3*3*3*4 = 108 weights, 8*8 positions -> 6912 MACs; BN folds to 4 biases;
    # pointwise 4*6 + 6 = 30 params, 8*8*24 = 1536 MACs.
    backbone = costs_report.backbone_cost(network)
    assert backbone.parts["unswitched"] == costs.Cost(108 + 4, 6912)
    assert backbone.parts["switched"] == costs.Cost(30, 1536)
    assert backbone.parts["heads"] == costs.Cost(0, 0)

    # No domain reads channel 0 of the stem; birds does not read channel 1 either.
    gates = {"pointwise": np.array([[False, False, True, True], [False, True, True, True]])}
    rewriter = Rewriter(network, TOY_DOMAINS, gates)
    union = rewriter.union_models()
    cost = costs_report.model_cost(union, rewriter.dependency.switched)
    # Stem keeps 3 filters: 3*3*3*3 = 81, 64*81 = 5184 MACs; pointwise reads 3: 3*6 + 6 = 24,
    # 64*18 = 1152 MACs; a 3-channel BN per domain; heads 6*2 + 2 = 14 and 6*3 + 3 = 21.
    assert cost.parts["unswitched"] == costs.Cost(81 + 2 * 3, 5184)
    assert cost.parts["switched"] == costs.Cost(24, 1152)
    assert cost.parts["heads"] == costs.Cost(14 + 21, 12 + 18)
    assert cost.total == costs.Cost(146, 6366)
    # birds masks channel 1 of the three the shared conv reads: 3 bits; cars needs no mask.
    assert cost.mask_bits == 3
    assert cost.params_with_masks == pytest.approx(146 + 3 / 32)

    summary = costs_report.prune_report(rewriter, union, {"birds": rewriter.domain_model("birds")})
    assert summary["backbone"]["params"] == 142 and summary["backbone"]["macs"] == 8448
    assert summary["union"]["params"] == 146 and summary["union"]["mask_bits"] == 3
    assert summary["union_ratio"]["switched_macs"] == pytest.approx(1152 / 1536)

    birds = costs_report.model_cost(rewriter.domain_model("birds"), rewriter.dependency.switched)
    # Stem 2 filters: 54 params, 3456 MACs; BN 2; pointwise reads 2: 18 params, 768 MACs; head 14.
    assert birds.total == costs.Cost(54 + 2 + 18 + 14, 3456 + 768 + 12)
    assert birds.mask_bits == 0


@pytest.mark.parametrize("arch", ["resnet26", "mobilenet_v2"])
def test_counts_equal_keras_count_params(networks, arch):
    network = networks(arch)
    prune_nets.set_switches(network, 0.5, np.random.default_rng(11))
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    union = rewriter.union_models()
    for models in (union, *rewriter.domain_models().values()):
        layers = costs.unique_layers(models)
        weighted = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
        # Conv, depthwise and dense layers count exactly their Keras parameters (shared ones
        # once); a BN folds into its conv: one vector of C, not its 4C stored parameters.
        expected = sum(layer.count_params() for layer in layers if isinstance(layer, weighted))
        norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert all(layer.count_params() == 4 * layer.moving_mean.shape[0] for layer in norms)
        expected += sum(layer.count_params() // 4 for layer in norms)
        assert costs.count_models(models).params == expected
        # Masks and gathers hold no weights; masks count as bits.
        assert all(layer.count_params() == 0 for layer in layers if isinstance(layer, (ChannelMask, ChannelGather)))
        mask_bits = sum(len(layer.mask) for layer in layers if isinstance(layer, ChannelMask))
        assert costs_report.model_cost(models, rewriter.dependency.switched).mask_bits == mask_bits
    assert costs.mask_bits(union) > 0  # random per-domain switches need masks in the union
    for model in rewriter.domain_models().values():  # a lone model: the usual count_model
        assert costs_report.model_cost(model, rewriter.dependency.switched).total == costs.count_model(model)


def _random_halves(network, rng):
    """The same random half of every switched conv's inputs on, in every domain."""
    gates = {}
    for layer in switching.switched_layers(network):
        domains, channels = layer.switches.shape
        row = np.zeros(channels, bool)
        row[rng.permutation(channels)[: channels // 2]] = True
        gates[layer.name] = np.tile(row, (domains, 1))
    return gates


@pytest.mark.parametrize("arch", prune_nets.ARCHITECTURES)
def test_half_budget_halves_the_switched_macs(networks, arch):
    network = networks(arch)
    rewriter = Rewriter(network, prune_nets.domains_of(network), _random_halves(network, np.random.default_rng(12)))
    union = rewriter.union_models()
    backbone = costs_report.backbone_cost(network)
    cost = costs_report.model_cost(union, rewriter.dependency.switched)
    ratio = cost.parts["switched"].macs / backbone.parts["switched"].macs
    for part in costs.PARTS:
        print(f"{arch} {part} MACs: union {cost.parts[part].macs}, backbone {backbone.parts[part].macs}")
    assert ratio <= 0.55
    assert cost.mask_bits == 0  # identical switches: the union is every domain's own model
    assert cost.parts["unswitched"].macs <= backbone.parts["unswitched"].macs


def test_rounding_is_paid_for_and_the_budget_check_says_by_how_much():
    """Birds reads 1 of the stem's 4 channels: 0.25 of the switched MACs. Rounded to 4 it reads
    all 4 (3 with zero kernel rows): 1.0, over a budget of 0.5 by 0.5."""
    network = toy_network()
    gates = {"pointwise": np.array([[1, 0, 0, 0], [1, 1, 0, 0]], bool)}
    checks = {}
    for multiple in (1, 4):
        rewriter = Rewriter(network, TOY_DOMAINS, gates=gates, channel_multiple=multiple, dense_reads=multiple > 1)
        result = costs_report.prune_report(rewriter, rewriter.union_models(), rewriter.domain_models(),
                                           budget=(0.5, "macs"))
        checks[multiple] = result["budget_check"]["birds"]
        assert result["domains"]["birds"]["switched_macs"] == 8 * 8 * 6 * (1 if multiple == 1 else 4)
    assert checks[1]["met"] and checks[1]["ratio"] == pytest.approx(0.25) and checks[1]["exceeded_by"] == 0.0
    assert not checks[4]["met"] and checks[4]["ratio"] == pytest.approx(1.0)
    assert checks[4]["exceeded_by"] == pytest.approx(0.5)
