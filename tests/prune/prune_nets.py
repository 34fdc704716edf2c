"""Tiny switched networks with random switches and non-trivial domain BN / heads, for the tests.

``randomize`` gives every domain its own BatchNorm statistics: first the statistics of a random
batch under that domain's switches (so activations stay of order one through fifty layers and
the float32 comparison is meaningful), then perturbed per channel; gammas, betas and heads are
random. ``masked_logits`` is the reference every reduced model must match.
"""

import keras
import numpy as np

from bap_tf import backbones, switching
from bap_tf.graph import LayerGraph
from bap_tf.layers import DomainBatchNormalization, DomainHeads, SwitchedConv2D

DOMAINS = (("birds", 3), ("cars", 5), ("flowers", 2))
ARCHITECTURES = ("resnet26", "mobilenet_v2", "resnet50")
IMAGE_SIZE = {"resnet26": 16, "mobilenet_v2": 32, "resnet50": 32}
# Three domains on the cheapest network; two elsewhere are enough to exercise sharing.
NUM_DOMAINS = {"resnet26": 3, "mobilenet_v2": 2, "resnet50": 2}
TOLERANCE = 1e-4


def build(arch):
    size = IMAGE_SIZE[arch]
    if arch == "resnet26":
        backbone = backbones.resnet26((size, size, 3), width=4)
    elif arch == "mobilenet_v2":
        backbone = backbones.mobilenet_v2((size, size, 3), alpha=0.35)
    else:
        backbone = backbones.resnet50((size, size, 3))
    return switching.build_switched_network(backbone, DOMAINS[: NUM_DOMAINS[arch]])


def domains_of(network):
    heads = network.get_layer(switching.HEADS_NAME)
    return DOMAINS[: len(heads.num_classes)]


def images(network, count=8, seed=0, smooth=False):
    """Uniform noise images, or with ``smooth`` random colour fields (a 4x4 grid, upsampled)
    plus some noise: deep backbones pool noise images to nearly the same features."""
    shape = network.input["image"].shape[1:]
    rng = np.random.default_rng(seed)
    if not smooth:
        return rng.uniform(size=(count, *shape)).astype("float32")
    grid = rng.uniform(size=(count, 4, 4, shape[-1]))
    rows = np.arange(shape[0]) * 4 // shape[0]
    cols = np.arange(shape[1]) * 4 // shape[1]
    fields = grid[:, rows][:, :, cols]
    return np.clip(fields + rng.normal(0.0, 0.1, size=fields.shape), 0.0, 1.0).astype("float32")


def set_switches(network, fraction, rng, identical=False):
    """Random switches with about ``fraction`` of them on (> 0); the same for all domains if
    ``identical``. Values in (-1, 1) with the sign drawn, so only the gate pattern matters."""
    for layer in switching.switched_layers(network):
        shape = layer.switches.shape
        draw = rng.uniform(size=(1 if identical else shape[0], shape[1])) < fraction
        gates = np.broadcast_to(draw, shape)
        layer.switches.assign(np.where(gates, 0.5, -0.5).astype("float32"))


def set_gates(network, gates):
    """Sets switches from ``{layer: bool (num_domains, in_channels)}``."""
    for layer in switching.switched_layers(network):
        layer.switches.assign(np.where(gates[layer.name], 0.5, -0.5).astype("float32"))


def randomize(network, rng, count=16, perturb=1.0, smooth=False):
    """Domain BN statistics from a random batch under the current switches, then perturbed;
    random gammas, betas and heads (scaled so logits are of order one).

    ``perturb`` scales the perturbation of the statistics: each BN's mismatch compounds
    through the next ones, so backbones with 50+ BNs take less to keep activations of order one.
    ``smooth``: calibrate on ``images(..., smooth=True)``.
    """
    num_domains = len(domains_of(network))
    batch = images(network, count * num_domains, seed=int(rng.integers(1 << 30)), smooth=smooth)
    domain = np.repeat(np.arange(num_domains), count).astype("int32")
    norms = [layer for layer in network.layers if isinstance(layer, DomainBatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        shape = layer.gamma.shape
        layer.gamma.assign(rng.uniform(0.6, 1.4, shape).astype("float32"))
        layer.beta.assign(rng.normal(0.0, 0.2, shape).astype("float32"))
        layer.momentum = 0.0
    # Moving stats := batch stats. Dropout off meanwhile: stochastic depth (EfficientNet)
    # would give statistics of dropped branches that inference never sees.
    dropouts = [layer for layer in network.layers if isinstance(layer, keras.layers.Dropout)]
    rates = [layer.rate for layer in dropouts]
    for layer in dropouts:
        layer.rate = 0.0
    network({"image": batch, "domain": domain}, training=True)
    for layer, rate in zip(dropouts, rates):
        layer.rate = rate
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum
        shape = layer.gamma.shape
        mean, variance = layer.moving_mean.numpy(), layer.moving_variance.numpy()
        # A channel nearly constant over the batch would divide rounding noise by a tiny
        # deviation; a floor tied to the layer's activation scale keeps every BN well posed.
        floor = 0.1 * np.mean(variance + mean**2, axis=1, keepdims=True) + 1e-3
        layer.moving_mean.assign(mean + rng.normal(0.0, 0.1 * perturb, shape) * np.sqrt(variance))
        scale = rng.uniform(1 - 0.3 * perturb, 1 + 0.4 * perturb, shape)
        layer.moving_variance.assign(((variance + floor) * scale).astype("float32"))
    heads = network.get_layer(switching.HEADS_NAME)
    features = feature_model(network)({"image": batch, "domain": domain}).numpy()
    scale = 1.0 / (np.sqrt(features.shape[1]) * (np.sqrt(np.mean(features**2)) + 1e-6))
    heads.kernel.assign((rng.normal(0.0, 1.0, heads.kernel.shape) * scale * 3.0).astype("float32"))
    heads.bias.assign(rng.normal(0.0, 0.5, heads.bias.shape).astype("float32"))


def feature_model(network):
    """The network up to the features its heads read."""
    graph = LayerGraph(network)
    name = next(n for n in graph[switching.HEADS_NAME].inputs if n != "domain")
    return keras.Model(network.input, network.get_layer(name).output)


def masked_logits(network, batch, domain_index):
    """The switched network's logits for one domain: ``(N, num_classes)``."""
    num_classes = domains_of(network)[domain_index][1]
    domain = np.full((len(batch),), domain_index, "int32")
    return network({"image": batch, "domain": domain}, training=False).numpy()[:, :num_classes]


def max_difference(network, rewriter, union, batch, own=None):
    """Largest |reduced - masked| logit over every domain, for the union and per-domain models
    (``own``: the per-domain models if already built)."""
    own = rewriter.domain_models() if own is None else own
    worst = {"union": 0.0, "domain": 0.0}
    for index, (name, _) in enumerate(domains_of(network)):
        reference = masked_logits(network, batch, index)
        # The comparison means something only if the logits depend on the image.
        # (random deep backbones pool images to similar features: ten times the tolerance).
        assert reference.std(axis=0).max() > 10 * TOLERANCE, reference.std(axis=0)
        worst["union"] = max(worst["union"], float(np.abs(union[name](batch).numpy() - reference).max()))
        worst["domain"] = max(worst["domain"], float(np.abs(own[name](batch).numpy() - reference).max()))
    return worst


def layers_of_type(models, cls):
    models = models.values() if isinstance(models, dict) else models if isinstance(models, list) else [models]
    return [layer for model in models for layer in model.layers if isinstance(layer, cls)]


def tiny_network(middle):
    """A hand-built switched network, two domains: stem, ``middle(x, domain)``, a switched conv."""
    image = keras.Input((8, 8, 3), name="image")
    domain = keras.Input((), dtype="int32", name="domain")
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(image)
    x = DomainBatchNormalization(2, name="stem_bn")(x, domain)
    x = middle(x, domain)
    x = SwitchedConv2D(6, 3, 2, padding="same", name="last")(x, domain)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = DomainHeads([n for _, n in DOMAINS[:2]], name="heads")(x, domain)
    return keras.Model({"image": image, "domain": domain}, logits)


def residual_network():
    """``tiny_network`` with one residual block: a switched conv, domain BN and ReLU added back."""

    def block(x, domain):
        y = SwitchedConv2D(4, 3, 2, padding="same", use_bias=False, name="block_conv")(x, domain)
        y = DomainBatchNormalization(2, name="block_bn")(y, domain)
        y = keras.layers.ReLU(name="block_relu")(y)
        return keras.layers.Add(name="block_add")([x, y])

    return tiny_network(block)
