"""Rebuilds a reduced per-domain Keras 3 model as a ``tf_keras`` (Keras 2) functional model.

Only the QAT worker imports this module: tensorflow-model-optimization works on Keras 2
models only. The input is what the parent can write without tf_keras: the Keras 3 functional
config (``model.get_config()``, the public format ``Model.from_config`` reads) and each layer's
``get_weights()``. The rebuild is one table of per-layer rules (``_BUILDERS``), then a mechanical
walk of the config's nodes; weights are copied in the same order, which Keras 2 and 3 share for
every layer here. bap_tf's ChannelGather / ChannelMask become the small Keras 2 layers below.

``Rescaling`` becomes a 1x1 ``DepthwiseConv2D`` (kernel = scale, bias = offset), the same affine
map: tfmot quantizes a depthwise conv's weights and output, whereas a Rescaling's scalar
constants stay float under QAT and leave a DEQUANTIZE/QUANTIZE pair at the int8 model's input.
"""

import numpy as np
import tensorflow as tf
import tf_keras

from bap_tf.graph import endpoint_names, keras_histories


class ChannelGather(tf_keras.layers.Layer):
    """Keras 2 twin of ``bap_tf.layers.ChannelGather``: keeps the listed channels (GATHER)."""

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, inputs):
        return tf.gather(inputs, self.indices, axis=-1)

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


class ChannelMask(tf_keras.layers.Layer):
    """Keras 2 twin of ``bap_tf.layers.ChannelMask``: multiplies by a 0/1 constant (MUL)."""

    def __init__(self, mask, **kwargs):
        super().__init__(**kwargs)
        self.mask = [float(m) for m in mask]

    def call(self, inputs):
        return inputs * tf.constant(self.mask, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "mask": self.mask}


CUSTOM_OBJECTS = {"ChannelGather": ChannelGather, "ChannelMask": ChannelMask}


def _activation(config):
    activation = config.get("activation", "linear")
    if not isinstance(activation, str):
        raise ValueError(
            "The QAT rebuild supports activations given by name only. "
            f"Received: {config['name']} with activation={activation!r}"
        )
    return activation


def _channels_last(config):
    if config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(
            "The QAT rebuild supports channels_last layers only. "
            f"Received: {config['name']} with data_format={config['data_format']!r}"
        )


def _conv2d(c):
    _channels_last(c)
    return tf_keras.layers.Conv2D(
        c["filters"], c["kernel_size"], strides=c["strides"], padding=c["padding"],
        dilation_rate=c["dilation_rate"], groups=c.get("groups", 1), activation=_activation(c),
        use_bias=c["use_bias"], name=c["name"],
    )


def _depthwise_conv2d(c):
    _channels_last(c)
    return tf_keras.layers.DepthwiseConv2D(
        c["kernel_size"], strides=c["strides"], padding=c["padding"],
        depth_multiplier=c["depth_multiplier"], dilation_rate=c["dilation_rate"],
        activation=_activation(c), use_bias=c["use_bias"], name=c["name"],
    )


def _batch_normalization(c):
    return tf_keras.layers.BatchNormalization(
        axis=c["axis"], momentum=c["momentum"], epsilon=c["epsilon"], center=c["center"],
        scale=c["scale"], name=c["name"],
    )


def _relu(c):
    return tf_keras.layers.ReLU(
        max_value=c.get("max_value"), negative_slope=c.get("negative_slope", 0.0),
        threshold=c.get("threshold", 0.0), name=c["name"],
    )


def _pooling(layer_class):
    def build(c):
        _channels_last(c)
        return layer_class(pool_size=c["pool_size"], strides=c["strides"], padding=c["padding"],
                           name=c["name"])

    return build


def _global_average_pooling(c):
    _channels_last(c)
    return tf_keras.layers.GlobalAveragePooling2D(keepdims=c.get("keepdims", False), name=c["name"])


def _zero_padding(c):
    _channels_last(c)
    return tf_keras.layers.ZeroPadding2D(padding=[tuple(p) for p in c["padding"]], name=c["name"])


_BUILDERS = {
    "Conv2D": _conv2d,
    "DepthwiseConv2D": _depthwise_conv2d,
    "BatchNormalization": _batch_normalization,
    "ReLU": _relu,
    "Activation": lambda c: tf_keras.layers.Activation(_activation(c), name=c["name"]),
    "Add": lambda c: tf_keras.layers.Add(name=c["name"]),
    "ZeroPadding2D": _zero_padding,
    "MaxPooling2D": _pooling(tf_keras.layers.MaxPooling2D),
    "AveragePooling2D": _pooling(tf_keras.layers.AveragePooling2D),
    "GlobalAveragePooling2D": _global_average_pooling,
    "Dense": lambda c: tf_keras.layers.Dense(
        c["units"], activation=_activation(c), use_bias=c["use_bias"], name=c["name"]
    ),
    "Rescaling": lambda c: tf_keras.layers.DepthwiseConv2D(1, use_bias=True, name=c["name"]),
    "ChannelGather": lambda c: ChannelGather(c["indices"], name=c["name"]),
    "ChannelMask": lambda c: ChannelMask(c["mask"], name=c["name"]),
}
_MERGE_LAYERS = {"Add"}


def _rescaling_weights(config, channels):
    """Kernel and bias of the 1x1 depthwise conv that computes ``x * scale + offset``."""
    scale = np.broadcast_to(np.asarray(config["scale"], np.float32), (channels,))
    offset = np.broadcast_to(np.asarray(config.get("offset", 0.0), np.float32), (channels,))
    return [scale.reshape(1, 1, channels, 1).copy(), offset.copy()]


# Layers whose Keras 2 stand-in has weights the Keras 3 layer does not: (config, channels).
_SYNTHESIZED_WEIGHTS = {"Rescaling": _rescaling_weights}


def rebuild(config, weights):
    """``tf_keras.Model`` with the architecture of a Keras 3 functional ``config``.

    Args:
        config: ``keras_model.get_config()`` of a one-input, one-output functional model.
        weights: ``{layer name: [arrays in get_weights() order]}``.
    """
    tensors = {}
    for entry in config["layers"]:
        class_name, layer_config, name = entry["class_name"], entry["config"], entry["name"]
        if class_name == "InputLayer":
            shape = layer_config.get("batch_shape") or layer_config["batch_input_shape"]
            tensors[name] = tf_keras.Input(shape=tuple(shape[1:]), name=name)
            continue
        if class_name not in _BUILDERS:
            raise ValueError(
                f"The QAT rebuild has no rule for {class_name} layers; supported: "
                f"{sorted(_BUILDERS)}. Received: layer {name!r} of class {class_name}"
            )
        if len(entry["inbound_nodes"]) != 1:
            raise ValueError(
                "Each layer of a per-domain model must be called once. "
                f"Received: layer {name!r} with {len(entry['inbound_nodes'])} calls"
            )
        inputs = [tensors[history[0]] for history in keras_histories(entry["inbound_nodes"][0])]
        layer = _BUILDERS[class_name](layer_config)
        tensors[name] = layer(inputs if class_name in _MERGE_LAYERS else inputs[0])
        if class_name in _SYNTHESIZED_WEIGHTS:
            layer.set_weights(_SYNTHESIZED_WEIGHTS[class_name](layer_config, inputs[0].shape[-1]))
        elif weights.get(name):
            layer.set_weights(weights[name])
    (input_name,), (output_name,) = endpoint_names(config["input_layers"]), endpoint_names(
        config["output_layers"]
    )
    return tf_keras.Model(tensors[input_name], tensors[output_name], name=config.get("name"))
