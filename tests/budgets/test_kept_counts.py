"""Kept counts from the gates equal the channel counts the rewrite builds, on a residual
network (pinned streams), MobileNetV2 (depthwise, inverted residuals) and DenseNet
(concatenations); their gradient flows to every switch that a count depends on."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from bap_tf import backbones, switching
from bap_tf.budgets.kept_counts import KeptCounts
from bap_tf.prune import Rewriter
from bap_tf.prune.dependency import domain_keep

NETWORKS = {
    "resnet26": lambda: backbones.resnet26((16, 16, 3), width=4, blocks_per_stage=1),
    "mobilenet_v2": lambda: backbones.mobilenet_v2((32, 32, 3), alpha=0.35),
    "densenet121": lambda: keras.applications.DenseNet121(input_shape=(32, 32, 3), include_top=False, weights=None,
                                                          pooling="avg"),
}


def _network(name, rng):
    network = switching.build_switched_network(NETWORKS[name](), [("a", 2), ("b", 3)])
    for layer in switching.switched_layers(network):
        on = rng.uniform(size=layer.switches.shape) < 0.5
        layer.switches.assign(np.where(on, 0.5, -0.5).astype("float32"))
    return network


def _gates(network):
    return ops.concatenate([layer.gates() for layer in switching.switched_layers(network)], axis=-1)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_counts_equal_the_rewritten_models(name):
    network = _network(name, np.random.default_rng(0))
    counts = KeptCounts(network)
    conv_counts = {conv: tuple(np.broadcast_to(ops.convert_to_numpy(c), (2,)) for c in pair)
                   for conv, pair in counts.conv_counts(_gates(network)).items()}
    rewriter = Rewriter(network, [("a", 2), ("b", 3)])
    for domain in range(2):
        plan = rewriter.dependency.plan(domain_keep(rewriter.gates, domain))
        for conv, (cin, cout) in conv_counts.items():
            kept_filters = len(plan.kept[rewriter.dependency.group_of[conv]])
            # A conv with every gate off reads one channel through a zero kernel row in the
            # rewrite, and a stream no conv reads keeps one channel: 0 here. A latency table
            # reads both at its first grid count.
            assert cin[domain] == len(plan.reads[conv]) or (cin[domain] == 0 and conv in plan.zeroed), conv
            assert cout[domain] == kept_filters or (cout[domain] == 0 and kept_filters == 1), conv


def test_gradient_reaches_the_readers_of_a_shrinking_stream():
    network = _network("resnet26", np.random.default_rng(1))
    counts = KeptCounts(network)
    layers = switching.switched_layers(network)
    producer = "stage2_block1_1_conv"  # its filters are read by stage2_block1_2_conv alone
    with tf.GradientTape() as tape:
        total = ops.sum(counts.out_count(_gates(network), producer))
    gradients = dict(zip([layer.name for layer in layers], tape.gradient(total, [layer.switches for layer in layers])))
    assert float(ops.max(ops.abs(gradients["stage2_block1_2_conv"]))) > 0
    assert gradients[producer] is None or float(ops.max(ops.abs(gradients[producer]))) == 0
    # The last stream feeds the heads: pinned, it keeps its width whatever the gates.
    assert counts.out_count(_gates(network), "stage3_block1_2_conv") == 16.0
