"""Inputs, gathers and masks: free, and refused in a network to switch or prune."""

import keras
import pytest

import prune_nets
from bap_tf import costs, switching
from bap_tf.layers import ChannelGather, ChannelMask
from bap_tf.rules import UnsupportedLayerError


@pytest.mark.parametrize("layer",
                         [ChannelGather([0, 2], name="picked"), ChannelMask([1.0, 0.0, 1.0, 1.0], name="picked")],
                         ids=["gather", "mask"])
def test_gathers_and_masks_are_refused_in_a_backbone_and_cost_nothing(layer):
    image = keras.Input((8, 8, 3), name="image")
    x = layer(keras.layers.Conv2D(4, 3, name="stem")(image))
    backbone = keras.Model(image, keras.layers.GlobalAveragePooling2D(name="pool")(x))
    assert costs.layer_cost(layer) == costs.Cost() and costs.layer_cost(backbone.layers[0]) == costs.Cost()
    with pytest.raises(UnsupportedLayerError, match=r"'picked' \(Channel(Gather|Mask)\).*a layer the rewriter adds "
                                                    r"to reduced models. Switch and prune the original backbone"):
        switching.build_switched_network(backbone, prune_nets.DOMAINS[:2])
