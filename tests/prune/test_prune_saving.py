"""Reduced models round-trip through ``.keras`` files with identical logits."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf.prune import Rewriter, saving


@pytest.fixture(scope="module")
def reduced(networks):
    network = networks("resnet26")
    rng = np.random.default_rng(21)
    prune_nets.set_switches(network, 0.5, rng)
    prune_nets.randomize(network, rng)
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    return rewriter.union_models(), rewriter.domain_model("cars"), prune_nets.images(network, seed=6)


def test_domain_model_round_trip(reduced, tmp_path):
    _, own, batch = reduced
    own.save(tmp_path / "cars.keras")
    loaded = keras.saving.load_model(tmp_path / "cars.keras")
    np.testing.assert_array_equal(loaded(batch).numpy(), own(batch).numpy())


def test_union_round_trip_keeps_layers_shared(reduced, tmp_path):
    union, _, batch = reduced
    saving.save_union(union, tmp_path / "union.keras")
    loaded = saving.load_union(tmp_path / "union.keras")
    assert list(loaded) == list(union)
    for domain, model in union.items():
        assert loaded[domain].input.name == "image"
        np.testing.assert_array_equal(loaded[domain](batch).numpy(), model(batch).numpy())
    assert loaded["birds"].get_layer("stage2_block1_1_conv") is loaded["flowers"].get_layer("stage2_block1_1_conv")
    assert loaded["birds"].get_layer("birds_stem_bn") is not loaded["cars"].get_layer("cars_stem_bn")


def test_joint_model_computes_every_domain(reduced):
    union, _, batch = reduced
    joint = saving.joint_model(union)
    outputs = joint({domain: batch for domain in union})
    for domain, model in union.items():
        np.testing.assert_array_equal(outputs[domain].numpy(), model(batch).numpy())
    # One copy of the shared weights: the joint model holds as many as the union's layers.
    shared = {id(w) for model in union.values() for w in model.weights}
    assert len(joint.weights) == len(shared)


def test_files_load_with_only_bap_tf_layers_imported(tmp_path):
    network = prune_nets.residual_network()
    rng = np.random.default_rng(22)
    prune_nets.set_switches(network, 0.5, rng)
    prune_nets.randomize(network, rng)
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    union, own = rewriter.union_models(), rewriter.domain_model("cars")
    batch = prune_nets.images(network, seed=7)
    own.save(tmp_path / "cars.keras")
    saving.save_union(union, tmp_path / "union.keras")
    np.save(tmp_path / "batch.npy", batch)
    script = textwrap.dedent(
        f"""
        import keras, numpy as np
        import bap_tf.layers  # registers ChannelGather / ChannelMask; nothing else from bap_tf
        batch = np.load({str(tmp_path / "batch.npy")!r})
        own = keras.saving.load_model({str(tmp_path / "cars.keras")!r})
        joint = keras.saving.load_model({str(tmp_path / "union.keras")!r})
        outputs = joint({{d: batch for d in {list(union)!r}}})
        np.savez({str(tmp_path / "out.npz")!r}, own=own(batch).numpy(),
                 **{{d: v.numpy() for d, v in outputs.items()}})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["own"], own(batch).numpy())
    for domain, model in union.items():
        np.testing.assert_array_equal(out[domain], model(batch).numpy())
