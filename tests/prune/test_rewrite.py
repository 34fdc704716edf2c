"""The rewriter's products: their names, domains and where they come from. (What each layer
type becomes is its rule's: tests/rules.)"""

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf import backbones
from bap_tf.model import BudgetAwareModel
from bap_tf.prune import Rewriter


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
