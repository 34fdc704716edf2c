"""Per-channel layers: input normalization copied with its statistics, heads and BatchNorms in
the cost report and in light fine-tuning."""

import keras
import numpy as np

import prune_nets
from bap_tf import rules, switching
from bap_tf.prune import Rewriter


def test_an_adapted_normalization_keeps_its_statistics_when_switched_and_rewritten():
    # Keras' Normalization computes with copies of its adapted statistics: a copy given the
    # weights with set_weights alone would normalize with zeros and ones.
    rng = np.random.default_rng(0)
    image = keras.Input((8, 8, 3), name="image")
    normalization = keras.layers.Normalization(name="norm")
    normalization.adapt(rng.normal([100.0, 50.0, -20.0], [30.0, 10.0, 5.0], (64, 8, 8, 3)).astype("float32"))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(normalization(image))
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv")(x)
    backbone = keras.Model(image, keras.layers.GlobalAveragePooling2D(name="pool")(x))
    network = switching.build_switched_network(backbone, prune_nets.DOMAINS[:2])
    images = rng.normal([100.0, 50.0, -20.0], [30.0, 10.0, 5.0], (4, 8, 8, 3)).astype("float32")
    features = keras.Model(network.input, network.get_layer("pool").output)
    np.testing.assert_allclose(features({"image": images, "domain": np.zeros(4, "int32")}), backbone(images),
                               atol=1e-5, rtol=1e-5)
    model = Rewriter(network, prune_nets.DOMAINS[:2]).domain_model("birds")
    np.testing.assert_allclose(model.get_layer("norm")(images), normalization(images), atol=1e-6)


def test_batchnorms_and_heads_train_in_light_fine_tuning_and_heads_are_their_own_part():
    network = prune_nets.residual_network()
    model = Rewriter(network, prune_nets.domains_of(network)).domain_model("birds")
    light = {layer.name for layer in model.layers if rules.find_rule(layer).fine_tuned(layer, "batchnorm_heads")}
    assert light == {"birds_stem_bn", "birds_block_bn", "birds_head"}
    assert all(rules.find_rule(layer).fine_tuned(layer, "all") for layer in model.layers)
    heads = {layer.name for layer in model.layers if rules.find_rule(layer).part(layer, ()) == "heads"}
    assert heads == {"birds_head"}
