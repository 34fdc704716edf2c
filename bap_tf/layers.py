"""Keras layers of the multi-domain switched network and of the pruned models.

Every layer of the switched network takes the per-sample domain index as a second input, so one
batch may mix domains: training batches interleave all domains, inference batches may hold one.
Domain-specific parameters are stacked along a leading axis of size ``num_domains`` and gathered
per sample, which keeps the graph the same size whatever the number of domains.
"""

import math
import numbers

import keras
import tensorflow as tf
from keras import ops

PACKAGE = "bap_tf"

# Logit given to the classes a domain does not have, so that one padded logits tensor serves
# domains with different label spaces: softmax gives those classes zero probability.
PAD_LOGIT = -1e9


def binarize(switches):
    """Forward: exact 0/1 gates ``1[s > 0]``. Backward: straight-through, zero where |s| > 1.

    ``soft - stop_gradient(soft)`` is exactly 0 in the forward pass and has the gradient of
    ``soft``, so the gates are exact while the gradient is the clipped identity of BA². Zeroing it
    outside [-1, 1] keeps switches far past the threshold from drifting forever.
    """
    gates = ops.cast(ops.greater(switches, 0), switches.dtype)
    inside = ops.stop_gradient(ops.cast(ops.less_equal(ops.abs(switches), 1.0), switches.dtype))
    soft = switches * inside
    return gates + (soft - ops.stop_gradient(soft))


def _gather_per_sample(table, domain):
    """(num_domains, C) table -> (N, C) rows picked by each sample's domain index."""
    return ops.take(table, ops.cast(domain, "int32"), axis=0)


def _sum_over_replicas(value):
    """Sums ``value`` across the replicas of a tf.distribute step (identity outside one)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _broadcast_channels(per_sample, rank):
    """(N, C) -> (N, 1, ..., 1, C) so it broadcasts over an (N, ..., C) activation."""
    return ops.reshape(per_sample, (ops.shape(per_sample)[0],) + (1,) * (rank - 2) + (-1,))


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwitchedConv2D(keras.layers.Layer):
    """A frozen Conv2D whose input channels each domain switches on or off.

    The kernel and bias come from the pre-trained backbone and never train. Each domain owns a
    real-valued switch per input channel (``switches``, shape ``(num_domains, in_channels)``),
    binarized in the forward pass with a straight-through gradient. Gating the input channel is
    the same as zeroing the kernel slice ``W[:, :, c, :]``, which is what pruning later removes.

    Args:
      filters: output channels, a positive integer.
      kernel_size: a positive integer or a pair ``(k_h, k_w)``.
      num_domains: number of domains (rows of ``switches``), a positive integer.
      strides, dilation_rate: positive integers or pairs, as in ``keras.layers.Conv2D``.
      padding: ``"valid"`` or ``"same"``.
      use_bias: whether the conv has a (frozen) bias.
      activation: applied to the output, as in ``keras.layers.Conv2D``.
      switch_init: initial real value of every switch, in [-1, 1] (positive: channel on;
        beyond 1 the straight-through gradient is zero and the switch would never move).
      **kwargs: base ``Layer`` arguments (``name``, ``dtype``...).

    Call: ``layer(x, domain)`` with ``x`` of shape ``(N, H, W, C)`` and ``domain`` of shape
    ``(N,)`` (int).
    """

    def __init__(
        self,
        filters,
        kernel_size,
        num_domains,
        strides=(1, 1),
        padding="valid",
        dilation_rate=(1, 1),
        use_bias=True,
        activation=None,
        switch_init=1e-2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self.kernel_size = _positive_pair("kernel_size", kernel_size)
        self.num_domains = _positive_int("num_domains", num_domains)
        self.strides = _positive_pair("strides", strides)
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            _fail("padding", padding, "'valid' or 'same'")
        self.padding = padding.lower()
        self.dilation_rate = _positive_pair("dilation_rate", dilation_rate)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        if not _is_real(switch_init) or abs(switch_init) > 1.0:
            _fail("switch_init", switch_init,
                  "a finite number in [-1, 1] (beyond it the straight-through gradient is zero)")
        self.switch_init = float(switch_init)

    def build(self, inputs_shape, domain_shape=None):
        in_channels = inputs_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (in_channels, self.filters),
            initializer="glorot_uniform",
            trainable=False,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros", trainable=False)
            if self.use_bias
            else None
        )
        self.switches = self.add_weight(
            name="switches",
            shape=(self.num_domains, in_channels),
            initializer=keras.initializers.Constant(self.switch_init),
            trainable=True,
        )

    def gates(self):
        """Binary (num_domains, in_channels) gates with a straight-through gradient."""
        return binarize(self.switches)

    def call(self, inputs, domain):
        gated = inputs * _broadcast_channels(_gather_per_sample(self.gates(), domain), 4)
        outputs = ops.conv(
            gated,
            self.kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
        )
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def compute_output_spec(self, inputs, domain):
        # Reuse Conv2D's shape arithmetic instead of repeating it.
        reference = keras.layers.Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
        )
        return keras.KerasTensor(reference.compute_output_shape(inputs.shape), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "num_domains": self.num_domains,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
            "switch_init": self.switch_init,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class DomainBatchNormalization(keras.layers.Layer):
    """BatchNormalization with its own gamma, beta and moving statistics per domain.

    In training each domain is normalised with the statistics of its own samples in the global
    batch (summed across tf.distribute replicas, which each hold only a few samples of every
    domain) and only the moving statistics of domains present in the batch move. Parameters are stored
    as ``(num_domains, C)`` tables, initialised from the backbone's BN by ``set_from_batchnorm``.

    Args:
      num_domains: number of domains (rows of every table), a positive integer.
      momentum: of the moving statistics, in [0, 1], as in ``keras.layers.BatchNormalization``.
      epsilon: added to the variance, a number > 0.
      center, scale: whether each domain has a trainable beta / gamma.
      **kwargs: base ``Layer`` arguments (``name``, ``dtype``...).

    Call: ``layer(x, domain, training=...)`` with ``x`` of shape ``(N, ..., C)``.
    """

    def __init__(self, num_domains, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.num_domains = _positive_int("num_domains", num_domains)
        if not _is_real(momentum) or not 0.0 <= momentum <= 1.0:
            _fail("momentum", momentum, "a number in [0, 1]")
        self.momentum = float(momentum)
        if not _is_real(epsilon) or epsilon <= 0:
            _fail("epsilon", epsilon, "a number > 0")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def build(self, inputs_shape, domain_shape=None):
        shape = (self.num_domains, inputs_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones", trainable=self.scale)
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros", trainable=self.center)
        # Every replica computes the same (all-reduced) statistics, so the mean of their
        # updates is that update.
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=shape, initializer="zeros", trainable=False,
            aggregation="mean", autocast=False,
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=shape, initializer="ones", trainable=False,
            aggregation="mean", autocast=False,
        )

    def set_from_batchnorm(self, batchnorm):
        """Copies a keras BatchNormalization's parameters into every domain's row."""
        values = {
            "gamma": batchnorm.gamma, "beta": batchnorm.beta,
            "moving_mean": batchnorm.moving_mean, "moving_variance": batchnorm.moving_variance,
        }
        for name, variable in values.items():
            if variable is not None:
                row = ops.convert_to_numpy(variable)
                getattr(self, name).assign(ops.tile(row[None, :], (self.num_domains, 1)))

    def _domain_moments(self, inputs, domain):
        """Per-domain mean/variance over batch and spatial axes, and which domains are present."""
        spatial_axes = tuple(range(1, len(inputs.shape) - 1))
        domain = ops.cast(domain, "int32")
        ones = ops.ones_like(domain, dtype=inputs.dtype)
        counts = _sum_over_replicas(ops.segment_sum(ones, domain, self.num_domains))
        present = counts > 0
        safe_counts = ops.maximum(counts, 1.0)[:, None]
        per_sample_mean = ops.mean(inputs, axis=spatial_axes) if spatial_axes else inputs
        mean = _sum_over_replicas(ops.segment_sum(per_sample_mean, domain, self.num_domains)) / safe_counts
        centred = inputs - _broadcast_channels(_gather_per_sample(mean, domain), len(inputs.shape))
        squares = ops.square(centred)
        per_sample_var = ops.mean(squares, axis=spatial_axes) if spatial_axes else squares
        variance = _sum_over_replicas(ops.segment_sum(per_sample_var, domain, self.num_domains)) / safe_counts
        return mean, variance, present

    def call(self, inputs, domain, training=False):
        rank = len(inputs.shape)
        if training:
            mean, variance, present = self._domain_moments(inputs, domain)
            present = present[:, None]
            decay = 1.0 - self.momentum
            self.moving_mean.assign(
                ops.where(present, self.moving_mean * self.momentum + mean * decay, self.moving_mean)
            )
            self.moving_variance.assign(
                ops.where(
                    present,
                    self.moving_variance * self.momentum + variance * decay,
                    self.moving_variance,
                )
            )
        else:
            mean, variance = self.moving_mean, self.moving_variance
        inv = ops.rsqrt(variance + self.epsilon) * self.gamma
        scale = _broadcast_channels(_gather_per_sample(inv, domain), rank)
        shift = _broadcast_channels(_gather_per_sample(self.beta - mean * inv, domain), rank)
        return inputs * scale + shift

    def compute_output_spec(self, inputs, domain, training=False):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "num_domains": self.num_domains,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class DomainHeads(keras.layers.Layer):
    """One linear classifier per domain, returned as one padded logits tensor.

    All heads live in one ``(features, sum(num_classes))`` kernel so a mixed-domain batch costs
    one matmul. Each sample's row is then gathered to its domain's columns and padded with
    ``PAD_LOGIT`` up to ``max(num_classes)``: logits ``(N, max_classes)``.

    Args:
      num_classes: classes of each domain, in domain-index order: a non-empty list of
        positive integers.
      kernel_initializer: of the heads' kernel (the bias starts at zero).
      **kwargs: base ``Layer`` arguments (``name``, ``dtype``...).

    Call: ``layer(features, domain)`` with ``features`` of shape ``(N, F)``.
    """

    def __init__(self, num_classes, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_classes, (str, numbers.Number)) or not list(num_classes) or not all(
                _is_positive_int(n) for n in num_classes):
            _fail("num_classes", num_classes, "a non-empty list of positive integers, one per domain")
        self.num_classes = [int(n) for n in num_classes]
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        starts = [sum(self.num_classes[:d]) for d in range(len(self.num_classes))]
        pad_column = sum(self.num_classes)
        width = max(self.num_classes)
        # Column of the concatenated logits that each (domain, class) slot reads; the padding
        # slots read an extra constant column holding PAD_LOGIT.
        self._columns = [
            [start + c if c < n else pad_column for c in range(width)]
            for start, n in zip(starts, self.num_classes)
        ]

    def build(self, inputs_shape, domain_shape=None):
        total = sum(self.num_classes)
        self.kernel = self.add_weight(
            name="kernel", shape=(inputs_shape[-1], total), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(total,), initializer="zeros")

    def domain_slice(self, index):
        """Column range of domain ``index`` in the concatenated kernel and bias."""
        start = sum(self.num_classes[:index])
        return slice(start, start + self.num_classes[index])

    def call(self, inputs, domain):
        logits = ops.matmul(inputs, self.kernel) + self.bias
        padding = ops.full((ops.shape(logits)[0], 1), PAD_LOGIT, dtype=logits.dtype)
        logits = ops.concatenate([logits, padding], axis=-1)
        columns = ops.take(ops.convert_to_tensor(self._columns, "int32"), ops.cast(domain, "int32"), axis=0)
        return ops.take_along_axis(logits, columns, axis=1)

    def compute_output_spec(self, inputs, domain):
        return keras.KerasTensor((inputs.shape[0], max(self.num_classes)), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelGather(keras.layers.Layer):
    """Keeps the listed channels of the last axis, in order (TFLite: one GATHER op, or a
    STRIDED_SLICE, which XNNPACK runs, when the channels are consecutive).

    Used by pruned models where a consumer keeps only some channels of a stream that cannot
    shrink (a residual stream that other layers still read in full).
    """

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]
        if not self.indices:
            raise ValueError("ChannelGather needs at least one channel index. Received: indices=[]")

    @property
    def is_slice(self):
        """Whether the channels are consecutive, so that the layer is a slice."""
        return self.indices == list(range(self.indices[0], self.indices[0] + len(self.indices)))

    def call(self, inputs):
        if self.is_slice:
            return inputs[..., self.indices[0] : self.indices[0] + len(self.indices)]
        return ops.take(inputs, ops.convert_to_tensor(self.indices, "int32"), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (len(self.indices),)

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelMask(keras.layers.Layer):
    """Multiplies the last axis by a fixed 0/1 vector (TFLite: one MUL by a constant).

    Used by the union-pruned multi-domain model: the shared conv keeps the union of the domains'
    channels and each domain zeroes the ones it does not use, exactly as its switches did.
    """

    def __init__(self, mask, **kwargs):
        super().__init__(**kwargs)
        self.mask = [float(m) for m in mask]
        if any(m not in (0.0, 1.0) for m in self.mask):
            raise ValueError(f"ChannelMask takes a 0/1 vector. Received: mask={mask}")

    def call(self, inputs):
        return inputs * ops.convert_to_tensor(self.mask, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mask": self.mask}


def _fail(name, value, expected):
    raise ValueError(f"{name} must be {expected}. Received: {name}={value!r}")


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _positive_int(name, value):
    if not _is_positive_int(value):
        _fail(name, value, "a positive integer")
    return int(value)


def _positive_pair(name, value):
    """``value`` as ``(int, int)``: one positive integer for both, or a pair of them."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    if isinstance(pair, str) or not hasattr(pair, "__len__") or len(pair) != 2 or not all(map(_is_positive_int, pair)):
        _fail(name, value, "a positive integer or a pair of them")
    return tuple(int(v) for v in pair)
