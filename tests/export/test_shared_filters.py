"""The shared_filters Android layout: the domains share their BatchNorm scales
(``prune.shared_scales``), so each conv filter is stored once in the file, and every signature
gives the Keras model it was made from."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from bap_tf import backbones, switching
from bap_tf.export.absorb import android_models
from bap_tf.export.convert import export_android
from bap_tf.export.litert import LiteRTModel
from bap_tf.graph import producer_names
from bap_tf.layers import ChannelMask, ChannelShift
from bap_tf.prune import Rewriter
from bap_tf.prune.shared_scales import share_batchnorm_scales
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


def _union(name, seed=0):
    keras.utils.set_random_seed(seed)
    network = switching.build_switched_network(BACKBONES[name](), DOMAINS)
    rng = np.random.default_rng(seed)
    prune_nets.set_switches(network, 0.6, rng)
    prune_nets.randomize(network, rng, count=32, perturb=0.25, smooth=True)
    return network, Rewriter(network, DOMAINS).union_models(domain_masks=False)


def _calibration(network, count=32):
    return {name: prune_nets.images(network, count=count, seed=index + 5, smooth=True)
            for index, (name, _) in enumerate(DOMAINS)}


def _reader(model, producer):
    """The one layer of ``model`` that reads ``producer``'s output."""
    (name,) = [reader for reader, producers in producer_names(model.get_config()).items() if producers == [producer]]
    return model.get_layer(name)


def test_tied_model_shares_convs_keeps_each_domains_mean_and_fits_its_scales():
    network, union = _union("resnet26")
    images = _calibration(network)
    tied, untied = share_batchnorm_scales(union, images)
    assert untied == []
    assert not prune_nets.layers_of_type(tied, ChannelMask)
    # One conv object for every domain; its BatchNorms became one ChannelShift per domain.
    birds, cars = (tied[d] for d, _ in DOMAINS)
    convs = [layer for layer in birds.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(cars.get_layer(conv.name) is conv for conv in convs)
    assert len([layer for layer in birds.layers if isinstance(layer, ChannelShift)]) == len(convs)
    # The first conv sees the images as before the tie: its shared scale is the variance-weighted
    # mean of what each domain's BatchNorm applies to its images' statistics.
    stem = convs[0]
    raw = {d: keras.Model(union[d].inputs, _reader(union[d], stem.name).input)(images[d]).numpy().astype("float64")
           for d, _ in DOMAINS}
    batchnorms = {d: _reader(union[d], stem.name) for d, _ in DOMAINS}
    variances = {d: z.var(axis=(0, 1, 2)) for d, z in raw.items()}
    scales = {d: b.gamma.numpy() / np.sqrt(variances[d] + b.epsilon) for d, b in batchnorms.items()}
    expected = sum(variances[d] * scales[d] for d in raw) / sum(variances.values())
    original = union["birds"].get_layer(stem.name).kernel.numpy()
    np.testing.assert_allclose(stem.kernel.numpy(), original * expected, rtol=1e-4, atol=1e-6)
    # Every tied layer, however deep, keeps each domain's mean output on its images: beta_d.
    for conv in (convs[0], convs[-1]):
        for d, _ in DOMAINS:
            shift = tied[d].get_layer(_reader(union[d], conv.name).name)
            output = keras.Model(tied[d].inputs, shift.output)(images[d]).numpy()
            beta = batchnorms[d].beta.numpy() if conv is stem else _reader(union[d], conv.name).beta.numpy()
            np.testing.assert_allclose(output.mean(axis=(0, 1, 2)), beta, atol=1e-4)


def test_layout_refuses_a_union_model_built_for_another_layout():
    _, union = _union("resnet26")
    with pytest.raises(ValueError, match="--android_layout=shared_filters"):
        android_models("shared_filters", union, {})


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n != "resnet26" else n for n in BACKBONES])
def test_file_stores_each_filter_once_and_matches_keras(name, tmp_path):
    network, union = _union(name)
    tied, untied = share_batchnorm_scales(union, _calibration(network, count=8))
    assert untied == []
    signatures = android_models("shared_filters", tied, {})
    path = export_android(signatures, tmp_path / "shared_filters.tflite")
    content = path.read_bytes()
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        first, second = ([buffer for buffer, _ in ops] for ops in weight_buffers(content, op))
        assert first == second, op  # the same buffer index for every filter, in both signatures
    runtime = LiteRTModel(path)
    images = prune_nets.images(network, count=8, seed=2, smooth=True)
    for domain, model in tied.items():
        # Relative to the logits' size: tying random BatchNorms' scales leaves logits of order 100
        # (EfficientNet's: 500), where float32 rounding through 50 layers reaches 1e-4 of them.
        expected = model.predict(images, verbose=0)
        difference = np.abs(runtime.logits(images, domain) - expected).max()
        assert difference <= 1e-4 * max(1.0, np.abs(expected).max()), (name, domain, difference)
