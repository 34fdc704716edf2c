"""Domains that share each BatchNorm's scale: one set of filters serves every domain's file.

In the union model every domain calls the same convolutions, each followed by the domain's own
BatchNorm ``s_d * (z - mu_d) + beta_d``. A converter folds ``s_d`` into the conv's kernel, so
each domain's TFLite signature would carry its own copy of every kernel. When the domains share
the scale ``s``, it folds into the shared kernel once (``s * W``, here, in Keras), and what is
left of domain d's BatchNorm is the shift ``beta_d - s * mu_d``: a ``ChannelShift``, which the
converter folds into the conv's bias, a separate tensor of C floats per signature.

The BatchNorms are tied one after the other, in the order the image meets them, on each
domain's calibration images: a tie changes what every later conv sees, so ``mu_d`` and the
variance ``var_d`` of ``z`` are measured on the model tied so far (the stored statistics would
compound the drift, layer after layer). ``s`` is the scale closest to what each domain's
BatchNorm would apply to those statistics, ``gamma_d / sqrt(var_d + eps)``, weighted by
``var_d``; each domain's output mean is kept exactly. The fine-tuning that follows
(``prune.finetune.finetune_union``) trains the shared kernels (scales included), the shifts
and the heads together.
"""

import collections

import keras
import numpy as np

from bap_tf import layers as bap_layers
from bap_tf.graph import endpoint_names, producer_names
from bap_tf.prune.saving import replay
from bap_tf.rules.base import copy_layer
from bap_tf.rules.norms import batchnorm_parameters

_FOLDABLE_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def share_batchnorm_scales(models, images):
    """The union model with its domains' BatchNorm scales shared and folded into the convs.

    Args:
      models: ``{domain: keras.Model}`` calling the same conv objects, without channel masks
        (``Rewriter.union_models(domain_masks=False)``: every domain reads every kept channel).
      images: ``{domain: float images (N, H, W, C) in [0, 1]}``, the calibration images (a few
        hundred of its training images).
    Returns:
      ``(models, untied)``: new ``{domain: keras.Model}`` (the convs that read into per-domain
      BatchNorms replaced by scaled copies shared by all, those BatchNorms by ``ChannelShift``),
      and the names of the shared convs left as they were (another layer also reads their raw
      output, or they apply an activation): their domains keep their own kernels in the file.
    """
    groups, untied = _tie_groups(models)
    convs = {name: copy_layer(conv) for name, (conv, _) in groups.items()}
    overrides = {domain: dict(convs) for domain in models}
    for name, (_, batchnorms) in groups.items():
        for domain, batchnorm in batchnorms.items():
            overrides[domain][batchnorm.name] = bap_layers.ChannelShift(name=batchnorm.name)
    tied = {}
    for domain, model in models.items():
        image = keras.Input(shape=model.inputs[0].shape[1:], name="image")
        (input_name,) = endpoint_names(model.get_config()["input_layers"])
        tied[domain] = keras.Model(image, replay(model, {input_name: image}, layers=overrides[domain]), name=domain)
    for name, (conv, _) in groups.items():
        convs[name].set_weights(conv.get_weights())  # untied until its turn: z as trained
    layer_order = [layer.name for layer in tied[next(iter(models))].layers]  # the order the image meets them
    order = sorted(groups, key=layer_order.index)
    # z of each tied conv, per domain: the input of the domain's ChannelShift.
    probes = {d: keras.Model(tied[d].inputs, [overrides[d][groups[name][1][d].name].input for name in order])
              for d in models}
    for index, name in enumerate(order):
        conv, batchnorms = groups[name]
        moments = {}
        for domain, probe in probes.items():
            z = np.asarray(probe(np.asarray(images[domain], "float32"), training=False)[index], "float64")
            axes = tuple(range(z.ndim - 1))
            moments[domain] = (z.mean(axis=axes), z.var(axis=axes))
        scale, shifts = _shared_scale(batchnorms, moments)
        convs[name].set_weights(_scaled(conv, scale))
        for domain, shift in shifts.items():
            overrides[domain][batchnorms[domain].name].shift.assign(shift.astype("float32"))
    return tied, sorted(untied)


def _tie_groups(models):
    """``{conv name: (conv, {domain: BatchNorm reading it})}`` for the shared convs whose raw
    output only their domains' BatchNorms read; and the names of the other shared convs."""
    readers = collections.defaultdict(lambda: collections.defaultdict(list))  # conv -> domain -> layers
    convs = {}
    for domain, model in models.items():
        layers = {op.name: op for op in model.operations}  # Keras operations read convs too
        for reader, producers in producer_names(model.get_config()).items():
            for producer in producers:
                if isinstance(layers.get(producer), _FOLDABLE_CONVS):
                    convs[producer] = layers[producer]
                    readers[producer][domain].append(layers[reader])
    groups, untied = {}, set()
    for name, conv in convs.items():
        per_domain = readers[name]
        if len(per_domain) < len(models) or not any(
                isinstance(layer, keras.layers.BatchNormalization) for layers in per_domain.values() for layer in layers):
            continue  # not shared by every domain, or no BatchNorm to fold into it
        tieable = conv.activation is keras.activations.linear and all(
            len(layers) == 1 and type(layers[0]) is keras.layers.BatchNormalization
            for layers in per_domain.values())
        if tieable:
            groups[name] = (conv, {domain: layers[0] for domain, layers in per_domain.items()})
        else:
            untied.add(name)
    return groups, untied


def _shared_scale(batchnorms, moments):
    """``(s, {domain: beta_d - s * mu_d})`` for ``moments`` ``{domain: (mu_d, var_d)}`` of z."""
    scales, betas = {}, {}
    for domain, batchnorm in batchnorms.items():
        gamma, beta, _, _ = batchnorm_parameters(batchnorm)
        scales[domain] = gamma / np.sqrt(moments[domain][1] + batchnorm.epsilon)
        betas[domain] = beta
    weight = np.maximum(sum(variance for _, variance in moments.values()), np.finfo("float64").tiny)
    scale = sum(moments[d][1] * scales[d] for d in batchnorms) / weight
    return scale, {d: betas[d] - scale * moments[d][0] for d in batchnorms}


def _scaled(conv, scale):
    """The conv's weights (kernel, bias if any) with its output channel c scaled by ``scale[c]``."""
    kernel = np.asarray(conv.kernel.numpy(), "float64")
    # A depthwise kernel's output channel c is input channel c // multiplier, multiplier c % it.
    kernel_scale = scale.reshape(kernel.shape[2:]) if isinstance(conv, keras.layers.DepthwiseConv2D) else scale
    weights = [kernel * kernel_scale] + ([np.asarray(conv.bias.numpy(), "float64") * scale] if conv.use_bias else [])
    return [w.astype("float32") for w in weights]
