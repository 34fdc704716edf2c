"""The channel groups of the pruner, computed once from the layers' rules."""

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf.layers import SwitchedConv2D
from bap_tf.prune import DependencyGraph


def test_resnet26_residual_stream_is_one_group(networks):
    graph = DependencyGraph(networks("resnet26"))
    stream = graph.output_group("stage1_block1_shortcut_conv")
    assert stream.producers == [
        "stage1_block1_shortcut_conv", "stage1_block1_2_conv", "stage1_block2_2_conv",
        "stage1_block3_2_conv", "stage1_block4_2_conv",
    ]
    assert stream.consumers == [
        "stage1_block2_1_conv", "stage1_block3_1_conv", "stage1_block4_1_conv",
        "stage2_block1_1_conv", "stage2_block1_shortcut_conv",
    ]
    for member in ("stage1_block1_2_bn", "stage1_block1_add", "stage1_block3_out"):
        assert graph.group_of[member] == stream.index
    assert not stream.pinned
    # The last stream feeds the heads through the pooling: kept whole.
    last = graph.output_group("stage3_block4_2_conv")
    assert last.pinned and any("heads" in why for why in last.pinned_by)
    assert graph.output_group("image").pinned
    text = graph.describe()
    assert f"group {stream.index}: 4 channels, kept whole: no (may shrink)" in text


def test_mobilenet_depthwise_follows_the_expand_conv(networks):
    graph = DependencyGraph(networks("mobilenet_v2"))
    group = graph.output_group("block_2_expand")
    assert graph.group_of["block_2_depthwise"] == group.index
    assert graph.group_of["block_2_depthwise_BN"] == group.index
    assert group.producers == ["block_2_expand"] and group.consumers == ["block_2_project"]


def _keep_all(graph):
    return {name: np.ones(graph.input_group(name).channels, bool) for name in graph.switched}


def test_a_filter_goes_only_when_no_consumer_reads_it(networks):
    graph = DependencyGraph(networks("resnet26"))
    stream = graph.output_group("stage1_block1_shortcut_conv")
    keep = _keep_all(graph)
    for consumer in stream.consumers:
        keep[consumer][2] = False
    plan = graph.plan(keep)
    assert list(plan.channels("stage1_block1_add")) == [0, 1, 3]
    keep[stream.consumers[-1]][2] = True  # one reader is enough to keep it
    plan = graph.plan(keep)
    assert list(plan.channels("stage1_block1_add")) == [0, 1, 2, 3]
    assert list(plan.reads[stream.consumers[0]]) == [0, 1, 3]


def test_a_stream_nobody_reads_keeps_one_channel_and_zeroes_its_readers(networks):
    graph = DependencyGraph(networks("resnet26"))
    keep = _keep_all(graph)
    keep["stage1_block2_2_conv"][:] = False
    plan = graph.plan(keep)
    assert list(plan.channels("stage1_block2_1_conv")) == [0]
    assert plan.zeroed == {"stage1_block2_2_conv"}
    assert list(plan.reads["stage1_block2_2_conv"]) == [0]


def test_bad_gates_are_refused_with_the_layer_name(networks):
    graph = DependencyGraph(networks("resnet26"))
    gates = {name: np.ones((3, graph.input_group(name).channels), bool) for name in graph.switched}
    gates["stage1_block2_1_conv"] = np.ones((3, 5), bool)
    with pytest.raises(ValueError, match=r"gates\['stage1_block2_1_conv'\] must have shape \(num_domains, 4\)"):
        graph.check_gates(gates)
    del gates["stage1_block2_1_conv"]
    with pytest.raises(ValueError, match="missing=\\['stage1_block2_1_conv'\\]"):
        graph.check_gates(gates)


def test_concat_space_is_its_operands_groups_at_offsets():
    def middle(x, domain):
        a = SwitchedConv2D(4, 1, 2, name="a")(x, domain)
        b = SwitchedConv2D(3, 1, 2, name="b")(x, domain)
        return keras.layers.Concatenate(name="cat")([a, b])

    graph = DependencyGraph(prune_nets.tiny_network(middle))
    a, b = graph.output_group("a"), graph.output_group("b")
    assert graph.spaces["cat"] == (a.index, b.index)
    assert not a.pinned and not b.pinned and a.consumers == b.consumers == ["last"]
    assert graph.input_channels("last") == 7
    keep = {name: np.ones(graph.input_channels(name), bool) for name in graph.switched}
    keep["last"][[1, 5]] = False  # channel 1 of "a", channel 5 = channel 1 of "b"
    plan = graph.plan(keep)
    assert list(plan.kept[a.index]) == [0, 2, 3] and list(plan.kept[b.index]) == [0, 2]
    assert list(plan.channels("cat")) == [0, 2, 3, 4, 6]
    with pytest.raises(ValueError, match="reads a concatenation"):
        graph.input_group("last")
