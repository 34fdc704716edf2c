"""Channel gathers folded into the convolutions that read them: what XNNPACK runs fastest.

XNNPACK runs no ``GATHER``: each one runs on LiteRT's own kernels between two delegated
partitions, and at the pocket shape the 15 gathers of a pruned ResNet-26 cost more time than
the MACs they save (``benchmarks/results/latency.md``). A conv reading ``gather(x, indices)``
computes what a conv over the whole of ``x`` computes when its kernel rows outside ``indices``
are zero, so ``absorb_gathers`` rewrites a trained, pruned model that way: the logits stay (float
rounding aside), the zero rows count in the cost model's MACs.

The export stage applies it to the per-domain models of the Android file; the int8
microcontroller files keep their gathers (TFLM's kernels pay for every MAC, a gather is a copy).
``--dense_reads`` is the same idea at the rewrite: there the zero rows exist before fine-tuning,
which may then train them.
"""

import collections

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf.graph import endpoint_names, history_of, is_keras_tensor, map_tensors, producer_names


def absorb_gathers(model):
    """``model`` with every ``ChannelGather`` read only by plain convs folded into them.

    Args:
      model: a functional Keras model (a pruned per-domain model: ``image -> logits``).
    Returns:
      A new model whose absorbed convs read the gather's whole input with zero kernel rows for
      the channels the gather dropped; ``model`` itself when no gather can be absorbed (one read
      by anything but a plain ``Conv2D``, or a model output, stays).
    """
    config = model.get_config()
    layers = {layer.name: layer for layer in model.layers}
    readers = collections.defaultdict(list)
    for reader, producers in producer_names(config).items():
        for producer in producers:
            readers[producer].append(reader)
    outputs = set(endpoint_names(config["output_layers"]))
    gathers = {
        name for name, layer in layers.items()
        if isinstance(layer, bap_layers.ChannelGather) and name not in outputs and readers[name]
        and all(_is_plain_conv(layers[reader]) for reader in readers[name])
    }
    if not gathers:
        return model
    sources = {}  # gather -> the serialized tensor it reads
    for entry in config["layers"]:
        if entry["name"] in gathers:
            (sources[entry["name"]],) = [v for v in entry["inbound_nodes"][0]["args"] if is_keras_tensor(v)]
    gather_of = {conv: gather for gather in gathers for conv in readers[gather]}  # a conv has one input
    config["layers"] = [_reading_sources(_unbuilt(entry) if entry["name"] in gather_of else entry, sources)
                        for entry in config["layers"] if entry["name"] not in gathers]
    absorbed = keras.Model.from_config(config)
    for layer in absorbed.layers:
        weights = layers[layer.name].get_weights()
        if layer.name in gather_of:
            weights[0] = _zero_padded_kernel(weights[0], layers[gather_of[layer.name]].indices, layer.kernel.shape[2])
        layer.set_weights(weights)
    return absorbed


def _is_plain_conv(layer):
    """A Conv2D whose kernel's third axis is its input channels, one row per channel."""
    return type(layer) is keras.layers.Conv2D and layer.groups == 1 and layer.data_format == "channels_last"


def _unbuilt(entry):
    """A conv's entry without its recorded input shape: it is built again on a wider input."""
    return {key: value for key, value in entry.items() if key != "build_config"}


def _zero_padded_kernel(kernel, indices, channels):
    """``kernel`` ``(kh, kw, len(indices), out)`` spread over ``channels`` input rows."""
    padded = np.zeros(kernel.shape[:2] + (channels,) + kernel.shape[3:], kernel.dtype)
    np.add.at(padded, (slice(None), slice(None), np.asarray(indices)), kernel)  # a repeated index sums
    return padded


def _reading_sources(entry, sources):
    """A copy of a config entry whose references to a gather's output read the gather's input."""
    return map_tensors(entry, lambda reference: sources.get(history_of(reference)[0], reference))


def android_models(layout, union, domain_models):
    """``{domain: model}`` behind the Android file's signatures in ``layout``: ``"shared"`` and
    ``"shared_filters"``, the union models (weights stored once; for ``shared_filters`` the prune
    stage built them with every domain reading all the union's channels through zero kernel rows
    instead of gathers, with ``read_runs`` each conv a slice of its input, so no mask or gather runs);
    ``"per_domain"``, each domain's own model with its gathers absorbed (no masks, BatchNorms
    folded by the converter, no GATHER)."""
    if layout == "shared":
        return union
    if layout == "per_domain":
        return {name: absorb_gathers(model) for name, model in domain_models.items()}
    if layout == "shared_filters":
        extra = sorted({type(layer).__name__ for model in union.values() for layer in model.layers
                        if isinstance(layer, bap_layers.ChannelMask)
                        or isinstance(layer, bap_layers.ChannelGather) and not layer.is_slice})
        if extra:
            raise ValueError(
                f"The shared_filters layout needs the union model the prune stage builds for it (every domain "
                f"reading all the union's channels, slices but no gathers). Re-run the prune stage with "
                f"--android_layout=shared_filters. Received: a union model with {', '.join(extra)} layers")
        return union
    raise ValueError(f"layout must be one of 'per_domain', 'shared', 'shared_filters'. Received: layout={layout!r}")
