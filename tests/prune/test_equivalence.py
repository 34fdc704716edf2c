"""Reduced models give the masked network's logits, for every domain and architecture."""

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf import switching
from bap_tf.layers import ChannelGather, ChannelMask, SwitchedConv2D
from bap_tf.prune import Rewriter, costs_report


@pytest.mark.parametrize("budget", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("arch", ["resnet26", "mobilenet_v2", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_reduced_models_match_masked_network(networks, arch, budget):
    network = networks(arch)
    rng = np.random.default_rng(int(budget * 100))
    prune_nets.set_switches(network, budget, rng)
    prune_nets.randomize(network, rng)
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    union = rewriter.union_models()
    own = rewriter.domain_models()
    assert not prune_nets.layers_of_type(own, ChannelMask)  # a domain's own model needs no masks
    batch = prune_nets.images(network, seed=1)
    worst = prune_nets.max_difference(network, rewriter, union, batch, own)
    print(f"{arch} budget={budget}: max |logit diff| {worst}")
    assert worst["union"] <= prune_nets.TOLERANCE
    assert worst["domain"] <= prune_nets.TOLERANCE
    # Pruning happened: the union's switched convs hold fewer weights than the backbone's.
    kernels = sum(int(np.prod(layer.kernel.shape)) for layer in switching.switched_layers(network))
    kept = sum(
        int(np.prod(union["birds"].get_layer(layer.name).kernel.shape))
        for layer in switching.switched_layers(network)
    )
    assert kept < kernels


def test_channel_unused_by_every_domain_leaves_every_producer(networks):
    network = networks("resnet26")
    rng = np.random.default_rng(7)
    prune_nets.set_switches(network, 0.75, rng)
    graph = Rewriter(network, prune_nets.domains_of(network)).dependency
    stream = graph.output_group("stage2_block2_2_conv")  # the stage-2 residual stream
    assert len(stream.producers) == 5 and not stream.pinned
    dropped = 3
    gates = switching.gate_values(network)
    for consumer in stream.consumers:
        gates[consumer][:, dropped] = False
        gates[consumer][0, dropped + 1] = True  # keep a neighbour so the stream is not empty
    prune_nets.set_gates(network, gates)
    prune_nets.randomize(network, rng)
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    union = rewriter.union_models()
    plan = rewriter.union_plan()
    kept = plan.channels(stream.producers[0])
    assert dropped not in kept and len(kept) == stream.channels - 1
    own = rewriter.domain_models()
    for producer in stream.producers:
        original = network.get_layer(producer).kernel.numpy()
        for model in [*union.values(), *own.values()]:
            conv = model.get_layer(producer)
            assert conv.filters <= stream.channels - 1
        conv = union["birds"].get_layer(producer)
        expected = original[:, :, plan.reads[producer], :][..., kept]
        np.testing.assert_array_equal(conv.kernel.numpy(), expected)
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=2), own)
    assert max(worst.values()) <= prune_nets.TOLERANCE


def test_channel_used_by_one_domain_is_masked_for_the_others(networks):
    network = networks("resnet26")
    rng = np.random.default_rng(8)
    prune_nets.set_switches(network, 0.5, rng)
    conv, channel = "stage2_block3_1_conv", 5
    gates = switching.gate_values(network)
    gates[conv][:, channel] = [True, False, False]  # birds only
    gates[conv][:, channel - 1] = True  # a channel everyone uses, so the others' masks are not empty
    prune_nets.set_gates(network, gates)
    prune_nets.randomize(network, rng)
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    union = rewriter.union_models()
    reads = rewriter.union_plan().reads[conv]
    position = int(np.flatnonzero(reads == channel)[0])
    assert union["birds"].get_layer(conv).kernel.shape[2] == len(reads)
    for domain in ("cars", "flowers"):
        mask = union[domain].get_layer(f"{domain}_{conv}_mask").mask
        assert mask[position] == 0.0 and mask[position - 1] == 1.0
    assert channel not in rewriter.domain_plan("cars").reads[conv]
    assert channel in rewriter.domain_plan("birds").reads[conv]
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=3))
    assert max(worst.values()) <= prune_nets.TOLERANCE


def test_whole_union_drops_the_masks_and_keeps_the_shared_convs(networks):
    """``domain_masks=False``: every domain reads all the union keeps, through the same conv
    objects, at the masked union's MACs; not the masked network's function any more."""
    network = networks("resnet26")
    rng = np.random.default_rng(9)
    prune_nets.set_switches(network, 0.5, rng)
    prune_nets.randomize(network, rng)
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    masked, whole = rewriter.union_models(), rewriter.union_models(domain_masks=False)
    assert prune_nets.layers_of_type(masked, ChannelMask) and not prune_nets.layers_of_type(whole, ChannelMask)
    names = rewriter.dependency.switched
    assert costs_report.model_cost(whole, names).total.macs == costs_report.model_cost(masked, names).total.macs
    conv = switching.switched_layers(network)[3].name
    assert whole["birds"].get_layer(conv) is whole["cars"].get_layer(conv)
    batch = prune_nets.images(network, seed=4)
    assert not np.allclose(whole["cars"].predict(batch, verbose=0), masked["cars"].predict(batch, verbose=0), atol=1e-3)


@pytest.mark.parametrize("arch", ["resnet26", "mobilenet_v2"])
def test_all_switches_on_keeps_the_original_size(networks, arch):
    network = networks(arch)
    rng = np.random.default_rng(9)
    prune_nets.set_switches(network, 1.0, rng)
    prune_nets.randomize(network, rng)
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    union = rewriter.union_models()
    own = rewriter.domain_models()
    for model in [*union.values(), *own.values()]:
        assert not prune_nets.layers_of_type(model, ChannelMask)
        assert not prune_nets.layers_of_type(model, ChannelGather)
        for layer in network.layers:
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, SwitchedConv2D)):
                assert model.get_layer(layer.name).kernel.shape == layer.kernel.shape
    backbone = costs_report.backbone_cost(network).total
    for model in own.values():  # a per-domain model is the backbone plus its head
        cost = costs_report.model_cost(model, rewriter.dependency.switched)
        assert cost.total.params - cost.parts["heads"].params == backbone.params
        assert cost.total.macs - cost.parts["heads"].macs == backbone.macs
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=4), own)
    assert max(worst.values()) <= prune_nets.TOLERANCE


def test_conv_no_domain_reads_outputs_its_bias(networks):
    """Every gate of a conv off: it keeps one input with a zero kernel and still matches."""
    network = networks("mobilenet_v2")
    rng = np.random.default_rng(10)
    prune_nets.set_switches(network, 0.5, rng)
    gates = switching.gate_values(network)
    gates["block_4_expand"][:] = False
    prune_nets.set_gates(network, gates)
    prune_nets.randomize(network, rng)
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    union = rewriter.union_models()
    assert "block_4_expand" in rewriter.union_plan().zeroed
    kernel = union["birds"].get_layer("block_4_expand").kernel.numpy()
    assert kernel.shape[2] == 1 and not kernel.any()
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=5))
    assert max(worst.values()) <= prune_nets.TOLERANCE


@pytest.mark.parametrize("arch,multiple,reads", [("resnet26", 4, "whole"), ("resnet26", 4, "runs"),
                                                 ("mobilenet_v2", 8, "gathers")])
def test_rounded_and_dense_models_match_masked_network(networks, arch, multiple, reads):
    """Hardware options change the channel counts and the gathers, never the logits; the
    rounding is counted in the costs."""
    network = networks(arch)
    rng = np.random.default_rng(11)
    prune_nets.set_switches(network, 0.4, rng)
    prune_nets.randomize(network, rng)
    domains = prune_nets.domains_of(network)
    plain = Rewriter(network, domains)
    dense = reads != "gathers"
    rewriter = Rewriter(network, domains, channel_multiple=multiple, dense_reads=dense, read_runs=reads == "runs")
    union, own = rewriter.union_models(), rewriter.domain_models()
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=6), own)
    assert max(worst.values()) <= prune_nets.TOLERANCE
    graph = rewriter.dependency
    for plan in (rewriter.union_plan(), rewriter.domain_plan("cars")):
        for group in graph.groups:
            count = len(plan.kept[group.index])
            assert count % multiple == 0 or count == group.channels, (group.index, count)
    gathers = prune_nets.layers_of_type([*own.values(), *union.values()], ChannelGather)
    if reads == "whole":
        assert not gathers
    if reads == "runs":  # each conv reads one run of its input: a slice, never a gather of scattered channels
        assert gathers and all(gather.is_slice for gather in gathers)
    switched = graph.switched
    rounded = costs_report.model_cost(own["cars"], switched)
    unrounded = costs_report.model_cost(plain.domain_model("cars"), switched)
    assert rounded.total.macs >= unrounded.total.macs
    if multiple > 1 or dense:
        assert rounded.total.macs > unrounded.total.macs  # the extra channels are paid for


def test_channel_multiple_must_be_a_positive_integer(networks):
    network = networks("resnet26")
    with pytest.raises(ValueError, match=r"Received: channel_multiple=0"):
        Rewriter(network, prune_nets.domains_of(network), channel_multiple=0)


def test_read_runs_store_a_stream_so_that_each_reader_reads_one_run():
    """Two convs read different channels of a residual stream, {0, 3} and {1, 2}: stored in index
    order, the first would read the run 0-3 with two zero kernel rows. The plan stores the stream
    in another order, in which each reads a run of its own channels (a slice, no zero row), and
    the union model and the domains' models still give the masked network's logits."""
    network = prune_nets.residual_network()
    gates = {"block_conv": np.array([[1, 0, 0, 1], [1, 0, 0, 0]], bool),
             "last": np.array([[0, 1, 1, 0], [0, 0, 1, 0]], bool)}
    prune_nets.set_gates(network, gates)
    prune_nets.randomize(network, np.random.default_rng(4))
    domains = prune_nets.domains_of(network)
    rewriter = Rewriter(network, domains, dense_reads=True, read_runs=True)
    plan = rewriter.union_plan()
    for name, channels in (("block_conv", {0, 3}), ("last", {1, 2})):
        assert set(plan.reads[name].tolist()) == channels and not plan.zero_rows[name].any(), name
    assert sorted(plan.channels("block_add").tolist()) == [0, 1, 2, 3]
    union = rewriter.union_models()
    gathers = {layer.name: layer for layer in prune_nets.layers_of_type(union, ChannelGather)}
    assert sorted(gathers) == ["block_conv_gather", "last_gather"]
    assert all(gather.is_slice for gather in gathers.values())
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=3))
    assert max(worst.values()) <= prune_nets.TOLERANCE


def test_read_runs_without_dense_reads_is_refused():
    with pytest.raises(ValueError, match=r"read_runs=True needs dense_reads=True"):
        Rewriter(prune_nets.residual_network(), prune_nets.DOMAINS[:2], read_runs=True)
