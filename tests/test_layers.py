import keras
import numpy as np
import pytest
import tensorflow as tf

from bap_tf import layers as bap_layers

RNG = np.random.default_rng(0)


def test_binarize_forward_is_exact_and_gradient_is_clipped_identity():
    switches = tf.Variable([-2.0, -0.3, -1e-6, 0.0, 1e-6, 0.7, 3.0])
    with tf.GradientTape() as tape:
        gates = bap_layers.binarize(switches)
        weighted = tf.reduce_sum(gates * tf.range(1.0, 8.0))
    np.testing.assert_array_equal(gates.numpy(), [0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(tape.gradient(weighted, switches).numpy(), [0, 2, 3, 4, 5, 6, 0])


def _switched_conv(num_domains=2, in_channels=4, filters=3):
    layer = bap_layers.SwitchedConv2D(filters, 3, num_domains=num_domains, padding="same", use_bias=True)
    layer.build((None, 6, 6, in_channels))
    layer.kernel.assign(RNG.normal(size=layer.kernel.shape))
    layer.bias.assign(RNG.normal(size=layer.bias.shape))
    return layer


def test_switched_conv_gating_equals_zeroing_kernel_slices_per_sample():
    layer = _switched_conv()
    layer.switches.assign([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, 1.0, 1.0]])
    x = RNG.normal(size=(4, 6, 6, 4)).astype("float32")
    domain = np.array([0, 1, 1, 0])
    out = layer(x, domain).numpy()
    for index, d in enumerate(domain):
        kernel = layer.kernel.numpy() * (layer.switches.numpy()[d] > 0)[None, None, :, None]
        expected = tf.nn.conv2d(x[index : index + 1], kernel, 1, "SAME") + layer.bias
        np.testing.assert_allclose(out[index : index + 1], expected, atol=1e-5)


def test_switched_conv_gradient_reaches_switches_only():
    layer = _switched_conv()
    x = RNG.normal(size=(2, 6, 6, 4)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, np.array([0, 1])) ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert [v.name for v in layer.trainable_variables] == ["switches"]
    assert np.all(np.abs(grads[0].numpy()) > 0)
    assert not layer.kernel.trainable and not layer.bias.trainable


def test_domain_batchnorm_training_matches_keras_batchnorm_on_each_domain_alone():
    layer = bap_layers.DomainBatchNormalization(2, momentum=0.9, epsilon=1e-3)
    layer.build((None, 5, 5, 3))
    layer.gamma.assign(RNG.normal(size=(2, 3)))
    layer.beta.assign(RNG.normal(size=(2, 3)))
    x = RNG.normal(loc=2.0, size=(6, 5, 5, 3)).astype("float32")
    domain = np.array([0, 1, 0, 1, 1, 1])
    out = layer(x, domain, training=True).numpy()
    for d in range(2):
        reference = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
        reference.build((None, 5, 5, 3))
        reference.gamma.assign(layer.gamma.numpy()[d])
        reference.beta.assign(layer.beta.numpy()[d])
        expected = reference(x[domain == d], training=True).numpy()
        np.testing.assert_allclose(out[domain == d], expected, atol=1e-4)
        np.testing.assert_allclose(layer.moving_mean.numpy()[d], reference.moving_mean.numpy(), atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy()[d], reference.moving_variance.numpy(), atol=1e-5)


def test_domain_batchnorm_leaves_absent_domains_statistics_alone():
    layer = bap_layers.DomainBatchNormalization(3)
    x = RNG.normal(size=(4, 2, 2, 3)).astype("float32")
    layer(x, np.zeros(4, "int32"), training=True)
    np.testing.assert_array_equal(layer.moving_mean.numpy()[1:], 0.0)
    np.testing.assert_array_equal(layer.moving_variance.numpy()[1:], 1.0)
    assert np.all(layer.moving_mean.numpy()[0] != 0.0)


def test_domain_batchnorm_inference_uses_each_domains_moving_statistics():
    layer = bap_layers.DomainBatchNormalization(2, epsilon=1e-3)
    layer.build((None, 3))
    mean, var = RNG.normal(size=(2, 3)), RNG.uniform(0.5, 2.0, size=(2, 3))
    layer.moving_mean.assign(mean)
    layer.moving_variance.assign(var)
    x = RNG.normal(size=(2, 3)).astype("float32")
    out = layer(x, np.array([1, 0])).numpy()
    np.testing.assert_allclose(out[0], (x[0] - mean[1]) / np.sqrt(var[1] + 1e-3), atol=1e-5)
    np.testing.assert_allclose(out[1], (x[1] - mean[0]) / np.sqrt(var[0] + 1e-3), atol=1e-5)


def test_domain_batchnorm_starts_from_the_backbone_batchnorm():
    source = keras.layers.BatchNormalization()
    source.build((None, 4))
    for variable in source.weights:
        variable.assign(RNG.uniform(0.5, 1.5, size=variable.shape))
    layer = bap_layers.DomainBatchNormalization(3)
    layer.build((None, 4))
    layer.set_from_batchnorm(source)
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        np.testing.assert_array_equal(getattr(layer, name).numpy(), np.tile(getattr(source, name).numpy(), (3, 1)))


def test_domain_heads_give_each_domain_its_own_columns_padded():
    heads = bap_layers.DomainHeads([2, 4])
    features = RNG.normal(size=(3, 5)).astype("float32")
    heads.build((None, 5))
    heads.bias.assign(RNG.normal(size=6))
    out = heads(features, np.array([0, 1, 0])).numpy()
    full = features @ heads.kernel.numpy() + heads.bias.numpy()
    np.testing.assert_allclose(out[0, :2], full[0, heads.domain_slice(0)], atol=1e-5)
    np.testing.assert_array_equal(out[0, 2:], bap_layers.PAD_LOGIT)
    np.testing.assert_allclose(out[1], full[1, heads.domain_slice(1)], atol=1e-5)


def test_channel_gather_and_mask():
    x = np.arange(8, dtype="float32").reshape(1, 2, 4)
    np.testing.assert_array_equal(bap_layers.ChannelGather([3, 1])(x).numpy(), x[..., [3, 1]])
    np.testing.assert_array_equal(bap_layers.ChannelMask([1, 0, 0, 1])(x).numpy(), x * [1, 0, 0, 1])
    with pytest.raises(ValueError, match=r"0/1 vector. Received: mask=\[1, 0.5\]"):
        bap_layers.ChannelMask([1, 0.5])
    with pytest.raises(ValueError, match="at least one channel"):
        bap_layers.ChannelGather([])


@pytest.mark.parametrize(
    "layer",
    [
        bap_layers.SwitchedConv2D(3, (1, 3), num_domains=2, strides=2, padding="same", use_bias=False),
        bap_layers.DomainBatchNormalization(2, momentum=0.8, epsilon=1e-5),
        bap_layers.DomainHeads([2, 7]),
        bap_layers.ChannelGather([2, 0]),
        bap_layers.ChannelMask([1, 0, 1]),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: bap_layers.SwitchedConv2D(0, 3, num_domains=2),
         r"filters must be a positive integer. Received: filters=0"),
        (lambda: bap_layers.SwitchedConv2D(4, (3, 0), num_domains=2),
         r"kernel_size must be a positive integer or a pair of them. Received: kernel_size=\(3, 0\)"),
        (lambda: bap_layers.SwitchedConv2D(4, 3, num_domains=0),
         r"num_domains must be a positive integer. Received: num_domains=0"),
        (lambda: bap_layers.SwitchedConv2D(4, 3, num_domains=2, strides=(1, 2, 3)),
         r"strides must be a positive integer or a pair of them. Received: strides=\(1, 2, 3\)"),
        (lambda: bap_layers.SwitchedConv2D(4, 3, num_domains=2, padding="causal"),
         r"padding must be 'valid' or 'same'. Received: padding='causal'"),
        (lambda: bap_layers.SwitchedConv2D(4, 3, num_domains=2, dilation_rate=0),
         r"dilation_rate must be a positive integer or a pair of them. Received: dilation_rate=0"),
        (lambda: bap_layers.SwitchedConv2D(4, 3, num_domains=2, switch_init=2.0),
         r"switch_init must be a finite number in \[-1, 1\] .*Received: switch_init=2.0"),
        (lambda: bap_layers.DomainBatchNormalization(0),
         r"num_domains must be a positive integer. Received: num_domains=0"),
        (lambda: bap_layers.DomainBatchNormalization(2, momentum=1.5),
         r"momentum must be a number in \[0, 1\]. Received: momentum=1.5"),
        (lambda: bap_layers.DomainBatchNormalization(2, epsilon=0.0),
         r"epsilon must be a number > 0. Received: epsilon=0.0"),
        (lambda: bap_layers.DomainHeads([]),
         r"num_classes must be a non-empty list of positive integers, one per domain. Received: num_classes=\[\]"),
        (lambda: bap_layers.DomainHeads([10, 0]), r"num_classes must be .* Received: num_classes=\[10, 0\]"),
        (lambda: bap_layers.DomainHeads(10), r"num_classes must be .* Received: num_classes=10"),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()
