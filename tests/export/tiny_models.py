"""Tiny functional CNNs shaped like the rewriter's output, for the export tests.

A per-domain model is ``image (N, 16, 16, 3) in [0, 1] -> logits (N, classes)`` built from the
layers the rewriter emits: Rescaling, ZeroPadding2D, Conv2D, DepthwiseConv2D, BatchNormalization,
ReLU, a residual Add, ChannelMask, ChannelGather, pooling, GlobalAveragePooling2D and Dense.
The union-pruned multi-domain model is a dict of such models that share the conv layer objects
and own their BN, mask, gather and head, as the union rewrite produces.
"""

import keras
import numpy as np

from bap_tf.layers import ChannelGather, ChannelMask

IMAGE_SIZE = 16
DOMAINS = {"birds": 5, "cars": 3}
# Wide enough that the shared kernels, not the flatbuffer's graph and names, dominate the file.
WIDTH = 16


def build_shared_layers(width=WIDTH, seed=0):
    """The frozen backbone's conv layers, shared by every domain's model."""
    init = keras.initializers.GlorotUniform(seed=seed)
    return {
        "stem": keras.layers.Conv2D(width, 3, strides=2, kernel_initializer=init, name="stem_conv"),
        "depthwise": keras.layers.DepthwiseConv2D(
            3, padding="same", depthwise_initializer=init, name="block_dwconv"
        ),
        "pointwise": keras.layers.Conv2D(width, 1, kernel_initializer=init, name="block_pwconv"),
        "expand": keras.layers.Conv2D(2 * width, 3, padding="same", kernel_initializer=init,
                                      name="expand_conv"),
    }


def build_domain_model(shared, domain, num_classes, keep, mask, seed=0):
    """One domain's reduced model on the shared conv layers.

    ``keep``: the channels of the expanded stream that the head reads (ChannelGather);
    ``mask``: the 0/1 vector this domain applies to the residual stream (ChannelMask).
    """
    image = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name=f"{domain}_rescale")(image)
    x = keras.layers.ZeroPadding2D(1, name=f"{domain}_pad")(x)
    x = shared["stem"](x)
    x = keras.layers.BatchNormalization(name=f"{domain}_stem_bn")(x)
    skip = keras.layers.ReLU(name=f"{domain}_stem_relu")(x)
    y = shared["depthwise"](skip)
    y = keras.layers.BatchNormalization(name=f"{domain}_dw_bn")(y)
    y = keras.layers.ReLU(6.0, name=f"{domain}_dw_relu")(y)
    y = shared["pointwise"](y)
    y = keras.layers.BatchNormalization(name=f"{domain}_pw_bn")(y)
    x = keras.layers.Add(name=f"{domain}_add")([skip, y])
    x = keras.layers.Activation("relu", name=f"{domain}_add_relu")(x)
    x = ChannelMask(mask, name=f"{domain}_mask")(x)
    x = shared["expand"](x)
    x = keras.layers.BatchNormalization(name=f"{domain}_expand_bn")(x)
    x = keras.layers.ReLU(name=f"{domain}_expand_relu")(x)
    x = keras.layers.MaxPooling2D(2, name=f"{domain}_pool")(x)
    x = ChannelGather(keep, name=f"{domain}_gather")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{domain}_gap")(x)
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1),
        name=f"{domain}_head",
    )(x)
    model = keras.Model(image, logits, name=domain)
    randomize_batchnorm(model, np.random.default_rng(seed + 2))
    return model


def randomize_batchnorm(model, rng):
    """Gives every BN non-trivial statistics, so that folding them is actually exercised."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, channels).astype("float32"),
                rng.normal(0.0, 0.2, channels).astype("float32"),
                rng.normal(0.0, 0.3, channels).astype("float32"),
                rng.uniform(0.5, 2.0, channels).astype("float32"),
            ])


def build_union_models(domains=None, width=WIDTH, seed=0):
    """``{domain: keras.Model}`` sharing the conv layers; per-domain BN, mask, gather, head."""
    domains = dict(DOMAINS if domains is None else domains)
    shared = build_shared_layers(width, seed)
    rng = np.random.default_rng(seed)
    models = {}
    for index, (domain, num_classes) in enumerate(domains.items()):
        mask = (rng.uniform(size=width) < 0.75).astype("float32")
        mask[index % width] = 1.0
        keep = sorted(rng.choice(2 * width, size=width, replace=False).tolist())
        models[domain] = build_domain_model(shared, domain, num_classes, keep, mask.tolist(),
                                            seed=seed + 10 * (index + 1))
    return models


def build_single_model(width=WIDTH, num_classes=5, seed=0, name="single"):
    """A stand-alone per-domain model (its own conv layers); a smaller width is its pruned form."""
    shared = build_shared_layers(width, seed)
    mask = [1.0] * width
    mask[0] = 0.0
    keep = list(range(0, 2 * width, 2))
    return build_domain_model(shared, name, num_classes, keep, mask, seed=seed)


def build_mobile_model(num_classes=5, width=8, seed=0, name="mobile"):
    """A reduced model shaped like MobileNetV3-Small's and EfficientNet-B0's: the layer types
    and operations their rewrites hold beyond ``build_domain_model``'s.

    Normalization after a Rescaling (EfficientNet's input), hard-swish, MobileNetV3's
    squeeze-and-excitation (a hard-sigmoid ``relu6(s + 3.0) / 6`` of Keras 3 operations, which
    Keras' MobileNetV3 writes ``* (1 / 6)``, gating with a Multiply), EfficientNet's (a Reshape,
    swish and sigmoid convs), Dropout, a Concatenate, and a last block at 1x1.
    """
    init = keras.initializers.GlorotUniform(seed=seed)
    image = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = keras.layers.Rescaling(255.0, name="to_255")(image)
    x = keras.layers.Normalization(mean=[124.0, 116.0, 104.0], variance=[3364.0, 3136.0, 3249.0],
                                   name="imagenet_mean")(x)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", kernel_initializer=init, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("hard_swish", name="stem_hard_swish")(x)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name="se1_pool")(x)
    s = keras.layers.Conv2D(4, 1, activation="relu", kernel_initializer=init, name="se1_reduce")(s)
    s = keras.layers.Conv2D(width, 1, kernel_initializer=init, name="se1_expand")(s)
    s = keras.layers.ReLU(6.0, name="se1_relu6")(s + 3.0) / 6.0
    x = keras.layers.Multiply(name="se1_gate")([x, s])
    y = keras.layers.DepthwiseConv2D(3, padding="same", depthwise_initializer=init, name="dw")(x)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    y = keras.layers.Activation("swish", name="dw_swish")(y)
    t = keras.layers.GlobalAveragePooling2D(name="se2_pool")(y)
    t = keras.layers.Reshape((1, 1, width), name="se2_reshape")(t)
    t = keras.layers.Conv2D(4, 1, activation="swish", kernel_initializer=init, name="se2_reduce")(t)
    t = keras.layers.Conv2D(width, 1, activation="sigmoid", kernel_initializer=init, name="se2_expand")(t)
    y = keras.layers.Multiply(name="se2_gate")([y, t])
    y = keras.layers.Dropout(0.2, name="drop")(y)
    x = keras.layers.Concatenate(name="cat")([x, y])
    x = ChannelMask([1.0, 0.0] * width, name="mask")(x)
    x = keras.layers.Conv2D(2 * width, 1, kernel_initializer=init, name="project")(x)
    x = keras.layers.BatchNormalization(name="project_bn")(x)
    x = keras.layers.ReLU(name="project_relu")(x)
    x = ChannelGather(list(range(0, 2 * width, 2)), name="gather")(x)
    # The last block at 1x1, as MobileNetV3-Small's at 32x32: its squeeze-and-excitation pools a
    # single position, and a gather follows the pooling.
    x = keras.layers.DepthwiseConv2D(IMAGE_SIZE // 2, depthwise_initializer=init, name="last_dw")(x)
    x = keras.layers.Activation("hard_swish", name="last_hard_swish")(x)
    t = keras.layers.GlobalAveragePooling2D(keepdims=True, name="se3_pool")(x)
    t = ChannelGather(list(range(1, width, 2)), name="se3_gather")(t)
    t = keras.layers.Conv2D(width, 1, activation="sigmoid", kernel_initializer=init, name="se3_expand")(t)
    x = keras.layers.Multiply(name="se3_gate")([x, t])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer=init, name="head")(x)
    model = keras.Model(image, logits, name=name)
    randomize_batchnorm(model, np.random.default_rng(seed + 2))
    return model


def make_images(count, seed=0):
    """Smooth random images in [0, 1], float32 (N, 16, 16, 3): coarse noise upsampled 4x."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(size=(count, IMAGE_SIZE // 4, IMAGE_SIZE // 4, 3))
    fine = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)
    noise = rng.normal(0.0, 0.05, size=fine.shape)
    return np.clip(fine + noise, 0.0, 1.0).astype("float32")


def labels_from(model, images):
    """Labels a model gets entirely right, so accuracies measure agreement with Keras."""
    return np.argmax(model.predict(images, verbose=0), axis=-1).astype("int64")
