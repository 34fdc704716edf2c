"""Gathers absorbed into the convs that read them: same logits, no ChannelGather, the zero rows
counted, on every backbone the rewriter prunes (tiny sizes, random switches)."""

import keras
import numpy as np
import pytest

from bap_tf import backbones, costs, switching
from bap_tf.export.absorb import absorb_gathers, android_models
from bap_tf.graph import keras_histories
from bap_tf.layers import ChannelGather
from bap_tf.prune import Rewriter

DOMAINS = (("birds", 3), ("cars", 5))
# Smallest inputs each backbone takes; resnet50 and efficientnet_b0 cost the most to build.
SHAPES = {"resnet26": 16, "mobilenet_v2": 32, "mobilenet_v3_small": 32, "efficientnet_b0": 32, "resnet50": 32}


def _domain_models(backbone, fraction=0.5, seed=0):
    size = SHAPES[backbone]
    network = switching.build_switched_network(
        backbones.build_backbone(backbone, (size, size, 3), width=6), DOMAINS)
    rng = np.random.default_rng(seed)
    for layer in switching.switched_layers(network):
        shape = layer.switches.shape
        layer.switches.assign(np.where(rng.uniform(size=shape) < fraction, 0.5, -0.5).astype("float32"))
    return network, Rewriter(network, DOMAINS)


def _gathers(model):
    return [layer for layer in model.layers if isinstance(layer, ChannelGather)]


@pytest.mark.parametrize("backbone", ["resnet26", "mobilenet_v2", "mobilenet_v3_small",
                                      pytest.param("efficientnet_b0", marks=pytest.mark.slow)])
def test_absorbed_models_keep_the_logits_and_drop_every_gather_a_conv_reads(backbone):
    network, rewriter = _domain_models(backbone)
    images = np.random.default_rng(1).uniform(size=(4, SHAPES[backbone], SHAPES[backbone], 3)).astype("float32")
    for name, model in rewriter.domain_models().items():
        before = [g.name for g in _gathers(model)]
        assert all(_readers(model, g) for g in before)
        absorbed = absorb_gathers(model)
        left = [g.name for g in _gathers(absorbed)]
        assert all(type(reader) is not keras.layers.Conv2D for g in left
                   for reader in _readers(absorbed, g)), f"{name}: gathers left before convs: {left}"
        np.testing.assert_allclose(absorbed.predict(images, verbose=0), model.predict(images, verbose=0),
                                   atol=1e-5, err_msg=f"{backbone} {name}")
        assert costs.count_model(absorbed).macs >= costs.count_model(model).macs


def _readers(model, name):
    """The layers whose call reads layer ``name``'s output (from the model's config)."""
    return [model.get_layer(entry["name"]) for entry in model.get_config()["layers"]
            if any(history[0] == name for node in entry["inbound_nodes"] for history in keras_histories(node))]


def test_absorbing_is_reading_densely_at_the_rewrite():
    """The export-time rewrite equals ``--dense_reads`` at prune time: same MACs, same logits."""
    network, rewriter = _domain_models("resnet26", fraction=0.4, seed=3)
    dense = Rewriter(network, DOMAINS, dense_reads=True).domain_models()
    images = np.random.default_rng(2).uniform(size=(4, 16, 16, 3)).astype("float32")
    for name, model in rewriter.domain_models().items():
        assert _gathers(model), "the plain rewrite of these switches gathers"
        absorbed = absorb_gathers(model)
        assert not _gathers(absorbed)
        assert costs.count_model(absorbed).macs == costs.count_model(dense[name]).macs
        assert costs.count_model(absorbed).macs > costs.count_model(model).macs
        np.testing.assert_allclose(absorbed.predict(images, verbose=0), dense[name].predict(images, verbose=0),
                                   atol=1e-5)


def test_a_model_without_gathers_comes_back_as_is():
    network, _ = _domain_models("resnet26")
    model = Rewriter(network, DOMAINS, dense_reads=True).domain_model("cars")
    assert absorb_gathers(model) is model


def test_android_models_per_layout():
    network, rewriter = _domain_models("resnet26")
    union, own = rewriter.union_models(), rewriter.domain_models()
    assert android_models("shared", union, own) is union
    per_domain = android_models("per_domain", union, own)
    assert sorted(per_domain) == sorted(own) and not any(_gathers(m) for m in per_domain.values())
    with pytest.raises(ValueError, match=r"layout must be .*Received: layout='fast'"):
        android_models("fast", union, own)
