import keras
import numpy as np
import pytest

from bap_tf import costs, rules
from bap_tf.backbones import resnet26
from bap_tf.switching import build_switched_network, switched_layers


def _toy():
    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="a")(image)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.Conv2D(5, 1, use_bias=False, name="b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(image, keras.layers.Dense(2, name="fc")(x))


def test_count_model_by_hand():
    # a: 3*3*3*4 + 4 = 112 params, 108 * 64 positions = 6912 MACs
    # bn: folds into a, one bias per channel: 4 params
    # dw: 3*3*4 = 36 params, 36 * 16 positions = 576 MACs
    # b: 4*5 = 20 params, 20 * 16 = 320 MACs; fc: 5*2 + 2 = 12 params, 10 MACs
    assert costs.count_model(_toy()) == costs.Cost(params=112 + 4 + 36 + 20 + 12, macs=6912 + 576 + 320 + 10)


def test_switch_cost_is_the_kernel_slice_of_one_input_channel():
    network = build_switched_network(resnet26((16, 16, 3), width=4, blocks_per_stage=1), [("a", 2)])
    layer = network.get_layer("stage2_block1_1_conv")  # 3x3, 4 -> 8 channels, 4x4 output
    assert costs.switch_cost(layer, "params") == 8 * 3 * 3
    assert costs.switch_cost(layer, "macs") == 8 * 3 * 3 * 4 * 4
    vector = costs.switch_cost_vector(switched_layers(network), "params")
    assert vector.shape == (sum(layer.switches.shape[-1] for layer in switched_layers(network)),)
    with pytest.raises(ValueError, match="Received: metric='flops'"):
        costs.switch_cost(layer, "flops")


def test_switched_network_costs_the_same_as_its_backbone_plus_heads():
    backbone = resnet26((16, 16, 3), width=4, blocks_per_stage=1)
    network = build_switched_network(backbone, [("a", 2), ("b", 3)])
    heads = costs.Cost(params=16 * 5 + 5, macs=16 * 5)
    assert costs.count_model(network) == costs.count_model(backbone) + heads
    assert np.isclose(
        costs.switch_cost_vector(switched_layers(network), "macs").sum(),
        sum(costs.layer_cost(layer).macs for layer in switched_layers(network)),
    )


def test_a_layer_without_a_rule_is_refused_not_counted_as_free():
    signal = keras.Input((16, 3))
    model = keras.Model(signal, keras.layers.Conv1D(2, 3, name="mystery")(signal))
    with pytest.raises(rules.UnsupportedLayerError, match=r"Layer 'mystery' \(Conv1D\) is not supported by bap_tf: "
                                                          r"no rule for this layer type. .*bap_tf.rules.register"):
        costs.count_model(model)
