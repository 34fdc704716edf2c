"""Keras Applications CNNs as bap-tf backbones: images in [0, 1] in, feature vector out.

Weights load from a local file (``weights=path``) or start random (``weights=None``); nothing
downloads. Each wrapper inlines the application's own input preprocessing as standard layers,
so every backbone takes the same [0, 1] images the data pipelines produce.
"""

import os

import keras

# Per-channel ImageNet means in RGB order, on the 0-255 scale, of the "caffe" preprocessing.
_CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)


def _check_weights(weights):
    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(
            "weights must be None or the path of a local weights file (nothing is downloaded). "
            f"Received: weights={weights!r}"
        )


def _wrap(application, image, preprocessed, name):
    features = application(preprocessed)
    return keras.Model(image, features, name=name)


def resnet50(input_shape=(224, 224, 3), weights=None, name="resnet50"):
    """ResNet50 features (2048-d). ImageNet weights expect BGR "caffe" inputs; the wrapper
    scales to 0-255, subtracts the mean and reverses the first conv's input channels, which
    is the same as feeding BGR."""
    _check_weights(weights)
    application = keras.applications.ResNet50(
        include_top=False, weights=weights, input_shape=input_shape, pooling="avg"
    )
    stem = application.get_layer("conv1_conv")
    stem.kernel.assign(stem.kernel[:, :, ::-1, :])
    image = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(255.0, name="to_255")(image)
    x = keras.layers.Normalization(mean=_CAFFE_MEAN_RGB, variance=(1.0, 1.0, 1.0), name="caffe_mean")(x)
    return _wrap(application, image, x, name)


def mobilenet_v2(input_shape=(224, 224, 3), alpha=1.0, weights=None, name="mobilenet_v2"):
    """MobileNetV2 features; its preprocessing maps [0, 1] to [-1, 1]."""
    _check_weights(weights)
    application = keras.applications.MobileNetV2(
        include_top=False, weights=weights, input_shape=input_shape, alpha=alpha, pooling="avg"
    )
    image = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_unit_range")(image)
    return _wrap(application, image, x, name)


def mobilenet_v3_small(input_shape=(224, 224, 3), alpha=1.0, weights=None, name="mobilenet_v3_small"):
    """MobileNetV3-Small features (hard-swish, squeeze-and-excitation); its preprocessing maps
    [0, 1] to [-1, 1], which the application's own would do from 0-255."""
    _check_weights(weights)
    application = keras.applications.MobileNetV3Small(
        include_top=False, weights=weights, input_shape=input_shape, alpha=alpha, pooling="avg",
        include_preprocessing=False,
    )
    image = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_unit_range")(image)
    return _wrap(application, image, x, name)


def efficientnet_b0(input_shape=(224, 224, 3), weights=None, name="efficientnet_b0"):
    """EfficientNet-B0 features (swish, squeeze-and-excitation). The application normalizes
    0-255 inputs itself (its Normalization layer holds the ImageNet statistics of a weights
    file), so the wrapper only scales [0, 1] to 0-255."""
    _check_weights(weights)
    application = keras.applications.EfficientNetB0(
        include_top=False, weights=weights, input_shape=input_shape, pooling="avg"
    )
    image = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(255.0, name="to_255")(image)
    return _wrap(application, image, x, name)
