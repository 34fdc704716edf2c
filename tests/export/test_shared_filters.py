"""The shared_filters Android layout: every domain reads the whole union, through zero kernel rows
rather than gathers (with ``read_runs``, each conv a run of its input through a slice), so each
conv filter is stored once in the file (its domains' BatchNorms as 1x1 depthwise affines), and
every signature gives the Keras model it was made from."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from bap_tf import backbones, switching
from bap_tf.export.absorb import android_models
from bap_tf.export.convert import export_android
from bap_tf.export.litert import LiteRTModel
from bap_tf.layers import ChannelGather
from bap_tf.prune import Rewriter
from benchmarks import op_profile
from tflite_file import weight_buffers

sys.path.insert(0, str(Path(__file__).parents[1] / "prune"))
import prune_nets  # noqa: E402

DOMAINS = prune_nets.DOMAINS[:2]
BACKBONES = {
    "resnet26": lambda: backbones.resnet26((16, 16, 3), width=6),
    "mobilenet_v2": lambda: backbones.mobilenet_v2((32, 32, 3), alpha=0.35),
    "mobilenet_v3_small": lambda: backbones.mobilenet_v3_small((32, 32, 3), alpha=0.75),
    "efficientnet_b0": lambda: backbones.efficientnet_b0((32, 32, 3)),
}


def _network(name, seed=0, identical=False):
    keras.utils.set_random_seed(seed)
    network = switching.build_switched_network(BACKBONES[name](), DOMAINS)
    rng = np.random.default_rng(seed)
    prune_nets.set_switches(network, 0.6, rng, identical=identical)
    prune_nets.randomize(network, rng, count=32, perturb=0.25, smooth=True)
    return network


def test_layout_refuses_a_union_model_with_masks_or_gathers():
    union = Rewriter(_network("resnet26"), DOMAINS).union_models()
    with pytest.raises(ValueError, match=r"--android_layout=shared_filters. Received: a union model with "
                                         r"ChannelGather, ChannelMask layers"):
        android_models("shared_filters", union, {})


@pytest.mark.parametrize(
    "name,read_runs", [("resnet26", False), ("resnet26", True)]
    + [pytest.param(n, False, marks=pytest.mark.slow) for n in BACKBONES if n != "resnet26"])
def test_file_stores_each_filter_once_and_matches_keras(name, read_runs, tmp_path):
    # Domains with the same switches, as the sharing loss leaves them nearly: their BatchNorm
    # statistics then fit the whole union. (Random statistics that do not, on channels the
    # domain never read, blow EfficientNet's activations up to 1e4, where folding a BatchNorm
    # into an affine loses the logits to cancellation.) Gathers remain: convs read parts of
    # residual streams.
    network = _network(name, identical=True)
    union = Rewriter(network, DOMAINS, dense_reads=True, read_runs=read_runs).union_models(domain_masks=False)
    assert prune_nets.layers_of_type(Rewriter(network, DOMAINS).union_models(), ChannelGather) or name != "resnet26"
    slices = prune_nets.layers_of_type(union, ChannelGather)  # with read runs, each conv reads a run of its input
    assert all(layer.is_slice for layer in slices) and bool(slices) == read_runs
    signatures = android_models("shared_filters", union, {})
    path = export_android(signatures, tmp_path / "shared_filters.tflite")
    content = path.read_bytes()
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        first, second = ([(buffer, shape) for buffer, shape in ops] for ops in weight_buffers(content, op))
        # The backbone's filters: one buffer each, read by both signatures. The 1x1 depthwise
        # affines that stand for each domain's BatchNorms are the domain's own.
        shared = [entry for entry in first if entry in second]
        backbone_filters = [layer for layer in union["birds"].layers if type(layer) in (keras.layers.Conv2D,)]
        if op == "CONV_2D":
            assert len(shared) == len(first) == len(backbone_filters), op
        own = [entry for entry in first if entry not in second]
        assert all(shape[:3] == (1, 1, 1) for _, shape in own), (op, own)
    assert "GATHER" not in {kind for _, kind, _, _, _ in op_profile.ops_of(content, "birds")}
    runtime = LiteRTModel(path)
    images = prune_nets.images(network, count=8, seed=2, smooth=True)
    for domain, model in signatures.items():
        expected = model.predict(images, verbose=0)
        difference = np.abs(runtime.logits(images, domain) - expected).max()
        assert difference <= 1e-4 * max(1.0, np.abs(expected).max()), (name, domain, difference)

