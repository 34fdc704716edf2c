"""Both Android layouts of a rewritten network, with rounded channels and no gathers, keep the
Keras models' logits in LiteRT (one conversion holds both layouts, to stay cheap)."""

import numpy as np
import pytest

from bap_tf import backbones, switching
from bap_tf.export.convert import export_android
from bap_tf.export.litert import LiteRTModel
from bap_tf.layers import ChannelGather
from bap_tf.prune import Rewriter

DOMAINS = (("birds", 3), ("cars", 5))


def _network():
    network = switching.build_switched_network(backbones.resnet26((16, 16, 3), width=6), DOMAINS)
    rng = np.random.default_rng(0)
    for layer in switching.switched_layers(network):
        layer.switches.assign(rng.uniform(-1.0, 0.6, size=layer.switches.shape).astype("float32"))
    for layer in network.layers:  # non-trivial per-domain BatchNorms, so folding is exercised
        if hasattr(layer, "moving_variance") and layer.moving_variance.shape.rank == 2:
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.2, layer.beta.shape).astype("float32"))
    return network


@pytest.mark.slow  # one conversion (~10-15 s on 2 idle cores)
def test_shared_and_per_domain_layouts_match_keras_with_rounding(tmp_path):
    network = _network()
    rewriter = Rewriter(network, DOMAINS, channel_multiple=4, dense_reads=True)
    union, own = rewriter.union_models(), rewriter.domain_models()
    assert not [layer for model in own.values() for layer in model.layers if isinstance(layer, ChannelGather)]
    signatures = {**union, **{f"{name}_own": model for name, model in own.items()}}
    path = export_android(signatures, tmp_path / "layouts.tflite")
    runtime = LiteRTModel(path)
    images = np.random.default_rng(1).uniform(size=(8, 16, 16, 3)).astype("float32")
    for key, model in signatures.items():
        expected = model.predict(images, verbose=0)
        np.testing.assert_allclose(runtime.logits(images, key), expected, atol=1e-4, err_msg=key)
    for name in union:  # the two layouts give the same logits: the masked network's
        np.testing.assert_allclose(union[name].predict(images, verbose=0), own[name].predict(images, verbose=0),
                                   atol=1e-4)
    # The latency benchmark's per-operator profile cuts every operator out of the file: each runs
    # alone, and their MACs are the cost model's.
    from bap_tf.prune.costs_report import model_cost
    from benchmarks import op_profile

    ops = op_profile.ops_of(path.read_bytes(), "birds_own")
    assert {name for _, name, _, _, _ in ops} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert "GATHER" not in {name for _, name, _, _, _ in ops}
    for _, _, _, _, data in ops:
        op_profile.invoker(data, threads=1)()
    assert sum(macs for _, _, macs, _, _ in ops) == model_cost(own["birds"], rewriter.dependency.switched).total.macs
