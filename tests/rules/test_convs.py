"""Convolutions: refused configurations, and the part of the cost report a conv is in."""

import keras
import pytest

from bap_tf import rules, switching
from bap_tf.backbones import resnet26
from bap_tf.prune import Rewriter
from bap_tf.rules import UnsupportedLayerError


def test_depthwise_multiplier_is_refused_before_the_switched_network_is_built():
    image = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="stem")(image)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw_x2")(x)
    x = keras.layers.Conv2D(5, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    with pytest.raises(UnsupportedLayerError, match=r"Layer 'dw_x2' \(DepthwiseConv2D\).*depth_multiplier=2"):
        switching.build_switched_network(keras.Model(image, x), [("birds", 3)])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "layer"])
def test_a_softmax_is_refused_whether_fused_into_the_conv_or_a_layer_after_it(fused):
    image = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="stem")(image)
    if fused:
        x = keras.layers.Conv2D(5, 1, activation="softmax", name="probs")(x)
    else:
        x = keras.layers.Activation("softmax", name="probs")(keras.layers.Conv2D(5, 1, name="conv")(x))
    backbone = keras.Model(image, keras.layers.GlobalAveragePooling2D(name="pool")(x))
    with pytest.raises(UnsupportedLayerError, match=r"Layer 'probs' \(\w+\) is not supported by bap_tf: "
                                                    r"activation 'softmax' mixes channels. Leave it out"):
        switching.build_switched_network(backbone, [("birds", 3)])


def test_a_conv_is_switched_in_the_cost_report_where_the_network_switches_it():
    network = switching.build_switched_network(resnet26((16, 16, 3), width=4, blocks_per_stage=1), [("a", 2)])
    rewriter = Rewriter(network, [("a", 2)])
    model = rewriter.domain_model("a")
    parts = {layer.name: rules.find_rule(layer).part(layer, rewriter.dependency.switched)
             for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    assert parts["stem_conv"] == "unswitched" and parts["stage2_block1_1_conv"] == "switched"
    assert set(parts.values()) == {"switched", "unswitched"}
