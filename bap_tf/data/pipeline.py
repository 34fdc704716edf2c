"""The multi-domain input pipeline: one tf.data pipeline per domain, zipped and interleaved.

Training element (the contract ``bap_tf.model`` relies on)::

    x = {"image": float32 (B*D, S, S, 3) in [0, 1], "domain": int32 (B*D,)},  y = int32 (B*D,)

with sample ``i`` from domain ``i % D``. Each domain is shuffled, repeated, preprocessed
(converted to float RGB, resized to ``S x S``, optionally augmented) and batched by ``B`` on its
own; the D pipelines are zipped so every step sees one batch of every domain, then stacked on
axis 1 and reshaped, which interleaves them. Any contiguous split of the batch into replicas
whose size is a multiple of D therefore keeps every domain equally represented.

One epoch is ``ceil(max_d N_d / B)`` steps: the largest domain is seen about once, smaller
domains repeat. Shuffling and augmentation are seeded, so one seed gives the same batches;
a second pass over the dataset (the next epoch) draws a new, equally reproducible order.

Evaluation: ``eval_datasets`` gives one dataset per domain, each test split exactly once, in
the same ``x`` dict format with ``domain`` filled with that domain's index.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from bap_tf.data import images as image_ops

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class DomainSource:
    """One domain's examples: an unbatched ``tf.data.Dataset`` of ``(image, label)``.

    ``image`` is ``(H, W, 3)``, ``(H, W, 1)`` or ``(H, W)``, uint8 or float in [0, 1]; ``label``
    an integer in ``[0, num_classes)``. ``flip`` allows random horizontal flips in training
    (off for characters, whose mirror image is another symbol or none).
    """

    name: str
    dataset: tf.data.Dataset
    num_classes: int
    flip: bool = True


def from_arrays(name, images, labels, *, num_classes, flip=True):
    """A ``DomainSource`` from in-memory numpy arrays, validated.

    ``images``: ``(N, H, W, 3)``, ``(N, H, W, 1)`` or grey ``(N, H, W)``; uint8, or float in
    [0, 1]. Grey images are repeated over three channels by the pipeline. ``labels``: ``(N,)``
    integers in ``[0, num_classes)``. The arrays become graph constants, which suits data sets
    of up to a few hundred MB (the pocket benchmark, tests).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise ValueError(
            f"Domain '{name}' has images of the wrong shape. Expected (N, H, W, 3), (N, H, W, 1) "
            f"or grey (N, H, W). Received: images.shape={images.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError(
            f"Domain '{name}' is empty. Expected at least one image. "
            f"Received: images.shape={images.shape}"
        )
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"Domain '{name}' has images of an unsupported dtype. Expected uint8, or float in "
            f"[0, 1]. Received: images.dtype={images.dtype}"
        )
    if np.issubdtype(images.dtype, np.floating):
        low, high = float(np.min(images)), float(np.max(images))
        if not (0.0 <= low and high <= 1.0):
            raise ValueError(
                f"Domain '{name}' has float images outside [0, 1]. Expected values in [0, 1] "
                f"(divide uint8 images by 255, or pass them as uint8). "
                f"Received: min={low}, max={high}"
            )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"Domain '{name}' needs one label per image. Expected labels of shape "
            f"({images.shape[0]},). Received: labels.shape={labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Domain '{name}' has non-integer labels. Expected integer class indices. "
            f"Received: labels.dtype={labels.dtype}"
        )
    _check_num_classes(name, num_classes)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"Domain '{name}' has labels outside [0, {num_classes}). Expected class indices "
            f"below num_classes={num_classes}. Received: min label={labels.min()}, "
            f"max label={labels.max()}"
        )
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    return DomainSource(name, dataset, int(num_classes), bool(flip))


def split_validation(source, fraction, seed=0):
    """``(train, validation)`` ``DomainSource``s: a seeded random ``fraction`` of ``source``'s
    examples held back for model selection, the rest to train on (disjoint, the same for
    every run with the same ``seed``). ``source`` must be of known size; each part keeps at
    least one example."""
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise ValueError(f"fraction must be in (0, 1). Received: fraction={fraction!r}")
    count = _cardinality(source)
    if count < 2:
        raise ValueError(
            f"Domain '{source.name}' needs at least 2 examples of known number to hold some back for "
            f"validation. Received: cardinality={count}"
        )
    held = min(count - 1, max(1, round(fraction * count)))
    # A numpy permutation, not tf shuffle: TensorFlow's op seeds depend on the global seed, which
    # differs between stages and runs; this split must not.
    mask = np.zeros(count, dtype=bool)
    mask[np.random.default_rng(seed).permutation(count)[:held]] = True
    mask = tf.constant(mask)

    def part(keep, size):
        dataset = source.dataset.enumerate().filter(lambda i, example: tf.equal(tf.gather(mask, i), keep))
        dataset = dataset.map(lambda i, example: example).apply(tf.data.experimental.assert_cardinality(size))
        return DomainSource(source.name, dataset, source.num_classes, source.flip)

    train, validation = part(False, count - held), part(True, held)
    return train, validation


def _check_num_classes(name, num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(
            f"Domain '{name}' needs an integer num_classes. Received: num_classes={num_classes!r}"
        )
    if num_classes < 1:
        raise ValueError(
            f"Domain '{name}' needs at least one class. Received: num_classes={num_classes}"
        )


def _check_domains(domains, batch_size, image_size):
    domains = list(domains)
    if not domains:
        raise ValueError("The pipeline needs at least one domain. Received: domains=[]")
    names = [source.name for source in domains]
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"A domain needs a non-empty name. Received: name={name!r}")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(
            f"Domain names must be unique. Expected distinct names, found {duplicates} more "
            f"than once. Received: names={names}"
        )
    for value, what in ((batch_size, "batch_size"), (image_size, "image_size")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{what} must be a positive integer. Received: {what}={value!r}")
    for source in domains:
        _check_num_classes(source.name, source.num_classes)
        _check_element_spec(source)
        if source.dataset.cardinality() == 0:
            raise ValueError(
                f"Domain '{source.name}' is empty. Expected at least one example. "
                "Received: a dataset of cardinality 0"
            )
    return domains


def _check_element_spec(source):
    """Rejects datasets whose elements are not (image (H, W[, 1 or 3]), integer label)."""
    spec = source.dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            f"Domain '{source.name}' must yield (image, label) pairs. Expected a dataset of "
            f"2-tuples. Received: element_spec={spec}"
        )
    image, label = spec
    rank, channels = image.shape.rank, image.shape[-1] if image.shape.rank else None
    if rank not in (2, 3) or (rank == 3 and channels not in (1, 3, None)):
        raise ValueError(
            f"Domain '{source.name}' has images of the wrong shape. Expected (H, W, 3), "
            f"(H, W, 1) or grey (H, W) per example. Received: image shape {image.shape}"
        )
    if label.shape.rank != 0 or not label.dtype.is_integer:
        raise ValueError(
            f"Domain '{source.name}' needs one integer label per example. Expected a scalar "
            f"integer label. Received: label spec {label}"
        )


def _preprocess(source, image_size):
    """(image, label) -> (float32 (S, S, 3) in [0, 1], int32 label), label range asserted."""

    def fn(image, label):
        label = tf.cast(label, tf.int32)
        # Sources that are not from_arrays (tfds, folders) are only checked here, lazily.
        # (No quotes around the name: TF escapes them in the error it raises.)
        label = tf.ensure_shape(label, ())
        with tf.control_dependencies(
            [
                tf.debugging.assert_non_negative(
                    label,
                    message=f"Domain {source.name} has a negative label. Expected labels in "
                    f"[0, {source.num_classes}). Received: label",
                ),
                tf.debugging.assert_less(
                    label,
                    source.num_classes,
                    message=f"Domain {source.name} has a label >= num_classes. Expected labels "
                    f"in [0, {source.num_classes}). Received: label",
                ),
            ]
        ):
            label = tf.identity(label)
        image = image_ops.resize_square(image_ops.to_float_rgb(image), image_size)
        return tf.ensure_shape(image, (image_size, image_size, 3)), label

    return fn


def _augment(image, seed, image_size, flip):
    """Random translation by up to S/8 px (mirror padding, then crop) and optional flip."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    pad = max(1, image_size // 8)
    padded = tf.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="SYMMETRIC")
    image = tf.image.stateless_random_crop(padded, (image_size, image_size, 3), seed=crop_seed)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return image


def augment_pairs(dataset, *, image_size, flip, seed):
    """``dataset`` of ``(image, target)`` with each image augmented as training's are
    (``_augment``), the target untouched: images float32 ``(S, S, 3)`` in [0, 1]. The draws come
    from a stream seeded by ``seed``, so one seed gives the same images; a dataset repeated
    before this draws anew on every pass."""
    noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((dataset, noise)).map(
        lambda example, pair: (_augment(example[0], pair, image_size, flip), example[1]),
        num_parallel_calls=AUTOTUNE,
    )


def _cardinality(source):
    return int(source.dataset.cardinality())


def default_steps_per_epoch(domains, batch_size):
    """``ceil(max_d N_d / batch_size)``: the default number of training steps per epoch."""
    counts = [_cardinality(source) for source in domains]
    if any(count < 0 for count in counts):
        unknown = [s.name for s, c in zip(domains, counts) if c < 0]
        raise ValueError(
            f"Cannot count the examples of domains {unknown}. Expected datasets of known "
            "finite cardinality, or pass steps_per_epoch explicitly. "
            f"Received: cardinalities={counts}"
        )
    return max(1, math.ceil(max(counts) / batch_size))


def _train_domain(source, index, batch_size, image_size, seed, augment, shuffle_buffer):
    count = _cardinality(source)
    buffer = shuffle_buffer if count < 0 else max(1, min(count, shuffle_buffer))
    # Distinct, fixed seeds per domain; reshuffling gives each epoch its own (seeded) order.
    ds = source.dataset.shuffle(buffer, seed=seed * 1009 + index, reshuffle_each_iteration=True)
    ds = ds.repeat()
    ds = ds.map(_preprocess(source, image_size), num_parallel_calls=AUTOTUNE)
    if augment:
        ds = augment_pairs(ds, image_size=image_size, flip=source.flip, seed=seed * 1009 + index + 500)
    return ds.batch(batch_size, drop_remainder=True)


def train_dataset(
    domains,
    *,
    batch_size,
    image_size,
    seed=0,
    augment=True,
    shuffle_buffer=4096,
    steps_per_epoch=None,
):
    """The interleaved multi-domain training dataset described in the module docstring.

    ``domains``: a sequence of ``DomainSource`` (their order is the domain index). Each step
    yields ``batch_size`` samples per domain. ``steps_per_epoch`` defaults to
    ``default_steps_per_epoch(domains, batch_size)``; the dataset has exactly that many elements.
    ``shuffle_buffer`` caps each domain's shuffle buffer (a domain with fewer examples is
    shuffled whole); it holds examples as the source yields them, e.g. 4096 decoded 72 px
    float images are about 250 MB per domain.
    """
    domains = _check_domains(domains, batch_size, image_size)
    steps = steps_per_epoch
    if steps is None:
        steps = default_steps_per_epoch(domains, batch_size)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(
            f"steps_per_epoch must be a positive integer. Received: steps_per_epoch={steps!r}"
        )
    num_domains = len(domains)
    per_domain = tuple(
        _train_domain(source, index, batch_size, image_size, seed, augment, shuffle_buffer)
        for index, source in enumerate(domains)
    )
    domain_ids = tf.tile(tf.range(num_domains, dtype=tf.int32), (batch_size,))

    def interleave(*batches):
        # (B, D, ...) -> (B*D, ...): row b*D + d is sample b of domain d.
        images = tf.stack([images for images, _ in batches], axis=1)
        labels = tf.stack([labels for _, labels in batches], axis=1)
        images = tf.reshape(images, (batch_size * num_domains, image_size, image_size, 3))
        labels = tf.reshape(labels, (batch_size * num_domains,))
        return {"image": images, "domain": domain_ids}, labels

    ds = tf.data.Dataset.zip(per_domain).map(interleave, num_parallel_calls=AUTOTUNE)
    return ds.take(steps).prefetch(AUTOTUNE)


def eval_datasets(domains, *, batch_size, image_size):
    """One dataset per domain (name -> dataset, in domain order), each split exactly once.

    Elements are ``({"image": float32 (b, S, S, 3), "domain": int32 (b,)}, int32 (b,))`` with
    ``b <= batch_size`` (the last batch keeps the remainder) and ``domain`` the domain's index.
    """
    domains = _check_domains(domains, batch_size, image_size)
    datasets = {}
    for index, source in enumerate(domains):

        def attach_domain(images, labels, index=index):
            return {"image": images, "domain": tf.fill(tf.shape(labels), index)}, labels

        ds = source.dataset.map(_preprocess(source, image_size), num_parallel_calls=AUTOTUNE)
        ds = ds.batch(batch_size).map(attach_domain, num_parallel_calls=AUTOTUNE)
        datasets[source.name] = ds.prefetch(AUTOTUNE)
    return datasets
