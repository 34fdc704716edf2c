import keras
import numpy as np
import pytest

from bap_tf import layers as bap_layers
from bap_tf.backbones import mobilenet_v2, resnet26
from bap_tf.switching import build_switched_network, gate_values, switched_layers

DOMAINS = [("a", 3), ("b", 5)]


def _randomize_batchnorms(model, rng):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable in (layer.gamma, layer.beta, layer.moving_mean):
                variable.assign(rng.normal(size=variable.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=layer.moving_variance.shape))


@pytest.mark.parametrize(
    "make_backbone",
    [
        lambda: resnet26((16, 16, 3), width=4, blocks_per_stage=2),
        lambda: mobilenet_v2((32, 32, 3), alpha=0.35),
    ],
    ids=["resnet26", "mobilenet_v2"],
)
def test_all_switches_on_reproduces_the_backbone_features(make_backbone):
    rng = np.random.default_rng(0)
    backbone = make_backbone()
    _randomize_batchnorms(backbone, rng)
    network = build_switched_network(backbone, DOMAINS)
    features = keras.Model(network.inputs, network.get_layer(network.layers[-1].name).input[0])
    images = rng.uniform(size=(4,) + backbone.input_shape[1:]).astype("float32")
    for domain in range(len(DOMAINS)):
        got = features({"image": images, "domain": np.full(4, domain, "int32")}, training=False)
        np.testing.assert_allclose(got, backbone(images, training=False), atol=1e-4, rtol=1e-4)


def test_stem_is_unswitched_and_every_other_conv_is_switched():
    backbone = resnet26((16, 16, 3), width=4, blocks_per_stage=1)
    network = build_switched_network(backbone, DOMAINS)
    assert type(network.get_layer("stem_conv")) is keras.layers.Conv2D
    assert not network.get_layer("stem_conv").trainable
    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(switched_layers(network)) == len(convs) - 1
    gates = gate_values(network)
    assert all(g.shape == (2, network.get_layer(name).switches.shape[1]) and g.all() for name, g in gates.items())
    assert isinstance(network.get_layer("stem_bn"), bap_layers.DomainBatchNormalization)


def test_unsupported_layers_are_refused_by_name():
    image = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, name="stem")(image)
    x = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(x)
    backbone = keras.Model(image, keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ValueError, match=r"Layer 'grouped' \(Conv2D\) is not supported.*groups=2"):
        build_switched_network(backbone, DOMAINS)

    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="stem")(image)
    x = keras.layers.LayerNormalization(name="ln")(x)
    backbone = keras.Model(image, keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ValueError, match=r"Layer 'ln' \(LayerNormalization\) is not supported"):
        build_switched_network(backbone, DOMAINS)


def test_backbone_must_end_in_a_feature_vector():
    image = keras.Input((8, 8, 3))
    backbone = keras.Model(image, keras.layers.Conv2D(4, 3, name="stem")(image))
    with pytest.raises(ValueError, match="pooling='avg'"):
        build_switched_network(backbone, DOMAINS)


def test_domains_are_validated():
    backbone = resnet26((16, 16, 3), width=4, blocks_per_stage=1)
    with pytest.raises(ValueError,
                       match="Domain 'b' needs a positive integer number of classes. Received: num_classes=0"):
        build_switched_network(backbone, [("a", 2), ("b", 0)])
    with pytest.raises(ValueError, match=r"unique. Received duplicates: \['a'\]"):
        build_switched_network(backbone, [("a", 2), ("a", 3)])
