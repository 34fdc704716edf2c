"""Reduced models of the Keras Applications CNNs phones and microcontrollers run equal the
masked network: MobileNetV3, EfficientNet(V2), DenseNet (concatenations), Xception (separable).

To stay cheap, each backbone is built once at the smallest input it accepts, with three
domains whose switches are drawn at budgets 0.25, 0.5 and 0.75: each domain's own model is
checked at its budget and the union model at their union, for every domain.
"""

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf import switching
from bap_tf.layers import ChannelMask
from bap_tf.prune import Rewriter

BUDGETS = (0.25, 0.5, 0.75)
APPLICATIONS = {
    "mobilenet_v3_small": lambda: keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, **_NOTOP),
    "mobilenet_v3_large": lambda: keras.applications.MobileNetV3Large(input_shape=(32, 32, 3), alpha=0.75, **_NOTOP),
    "efficientnet_b0": lambda: keras.applications.EfficientNetB0(input_shape=(32, 32, 3), **_NOTOP),
    "efficientnet_v2_b0": lambda: keras.applications.EfficientNetV2B0(input_shape=(32, 32, 3), **_NOTOP),
    "densenet121": lambda: keras.applications.DenseNet121(input_shape=(32, 32, 3), **_NOTOP),
    "xception": lambda: keras.applications.Xception(input_shape=(71, 71, 3), **_NOTOP),
}
_NOTOP = {"include_top": False, "weights": None, "pooling": "avg"}
# BN calibration (images per domain, perturbation of the statistics, smooth images): with
# fewer images or more perturbation EfficientNets' 50+ BNs compound the mismatch into
# activations in the hundreds, where float32 rounding alone passes the tolerance.
CALIBRATION = {"efficientnet_b0": (64, 0.25, True), "efficientnet_v2_b0": (64, 0.25, False)}
# EfficientNetV2B0 at 32 px reaches 1-5e-4 depending on the draw: layer by layer the relative
# difference grows smoothly (1e-5 to 2e-5, no layer adds a jump) while activations reach
# ~100, i.e. float32 rounding through its 59 BNs, not a slicing error. Checked at 1e-3.
TOLERANCE = {"efficientnet_v2_b0": 1e-3}
SLOW = ("efficientnet_v2_b0", "densenet121", "xception")


def _switches_at_budgets(network, rng):
    """Domain d's gates on with probability BUDGETS[d], drawn per switch, and at least one per
    conv and domain: a conv with every gate off makes the logits constant, comparing nothing
    (that case has its own test in test_equivalence.py)."""
    for layer in switching.switched_layers(network):
        shape = layer.switches.shape
        on = rng.uniform(size=shape) < np.asarray(BUDGETS)[:, None]
        on[np.arange(shape[0]), rng.integers(shape[1], size=shape[0])] = True
        layer.switches.assign(np.where(on, 0.5, -0.5).astype("float32"))


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in APPLICATIONS]
)
def test_reduced_models_match_masked_network(name):
    network = switching.build_switched_network(APPLICATIONS[name](), prune_nets.DOMAINS)
    rng = np.random.default_rng(0)
    _switches_at_budgets(network, rng)
    count, perturb, smooth = CALIBRATION.get(name, (16, 1.0, True))
    prune_nets.randomize(network, rng, count=count, perturb=perturb, smooth=smooth)
    rewriter = Rewriter(network, prune_nets.DOMAINS)
    union = rewriter.union_models()
    own = rewriter.domain_models()
    assert not prune_nets.layers_of_type(own, ChannelMask)
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=1, smooth=smooth), own)
    print(f"{name}: max |logit diff| {worst}")
    tolerance = TOLERANCE.get(name, prune_nets.TOLERANCE)
    assert worst["union"] <= tolerance and worst["domain"] <= tolerance
    # Pruning happened, more for the domain with the smaller budget.
    kernels = [layer.name for layer in switching.switched_layers(network)]
    sizes = [sum(int(np.prod(own[d].get_layer(n).kernel.shape)) for n in kernels) for d, _ in prune_nets.DOMAINS]
    full = sum(int(np.prod(network.get_layer(n).kernel.shape)) for n in kernels)
    assert sizes[0] < sizes[1] < sizes[2] < full
