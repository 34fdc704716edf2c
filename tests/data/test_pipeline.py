"""The interleaved multi-domain pipeline, its evaluation datasets and its input checks."""

import numpy as np
import pytest
import tensorflow as tf

from bap_tf.data import pipeline

SIZE = 8


def _encoded_domain(name, num_examples, num_classes, domain_code, flip=True):
    """Uniform images whose grey level encodes (domain, example id); labels = id % classes.

    Uniform images survive resizing, translation and flips unchanged, so every output sample
    can be traced back to the example it came from.
    """
    ids = np.arange(num_examples)
    images = np.empty((num_examples, SIZE, SIZE, 3), np.uint8)
    images[:] = (domain_code * 50 + ids)[:, None, None, None]
    return pipeline.from_arrays(name, images, ids % num_classes, num_classes=num_classes, flip=flip)


def _decode(image):
    code = np.round(image[:, 0, 0, 0] * 255).astype(int)
    return code // 50, code % 50


DOMAINS = [("a", 20, 4), ("b", 5, 3), ("c", 9, 2)]


@pytest.fixture
def domains():
    return [_encoded_domain(name, n, k, code) for code, (name, n, k) in enumerate(DOMAINS)]


def _collect(dataset):
    return [(x["image"].numpy(), x["domain"].numpy(), y.numpy()) for x, y in dataset]


@pytest.mark.parametrize("augment", [True, False])
def test_batches_are_interleaved_and_pairs_stay_together(domains, augment):
    batch = 4
    dataset = pipeline.train_dataset(
        domains, batch_size=batch, image_size=SIZE, seed=3, augment=augment
    )
    x_spec, y_spec = dataset.element_spec
    assert x_spec["image"].shape == (batch * 3, SIZE, SIZE, 3)
    assert x_spec["image"].dtype == tf.float32
    assert x_spec["domain"].dtype == tf.int32 and y_spec.dtype == tf.int32
    # One epoch = ceil(largest domain / batch) steps.
    assert int(dataset.cardinality()) == 5
    steps = _collect(dataset)
    assert len(steps) == 5
    for images, domain, labels in steps:
        np.testing.assert_array_equal(domain, np.arange(12) % 3)
        source_domain, ids = _decode(images)
        np.testing.assert_array_equal(source_domain, domain)
        num_classes = np.array([k for _, _, k in DOMAINS])[domain]
        np.testing.assert_array_equal(labels, ids % num_classes)
        assert images.min() >= 0.0 and images.max() <= 1.0


def test_small_domains_repeat_and_every_example_is_seen(domains):
    steps = _collect(pipeline.train_dataset(domains, batch_size=4, image_size=SIZE, seed=0))
    ids = {d: [] for d in range(3)}
    for images, domain, _ in steps:
        source_domain, example = _decode(images)
        for d in range(3):
            ids[d].extend(example[source_domain == d])
    # Largest domain: 20 examples, each exactly once in 5 steps of 4.
    np.testing.assert_array_equal(np.bincount(ids[0]), np.ones(20))
    # 'b' has 5 examples and is drawn 20 times: 4 full reshuffled passes.
    np.testing.assert_array_equal(np.bincount(ids[1]), np.full(5, 4))
    # 'c' has 9 examples and is drawn 20 times: every one at least twice.
    assert np.bincount(ids[2], minlength=9).min() >= 2


def test_same_seed_same_batches_new_epoch_new_order(domains):
    first = pipeline.train_dataset(domains, batch_size=4, image_size=SIZE, seed=7)
    twin = pipeline.train_dataset(domains, batch_size=4, image_size=SIZE, seed=7)
    other = pipeline.train_dataset(domains, batch_size=4, image_size=SIZE, seed=8)
    epoch_1, epoch_2 = _collect(first), _collect(first)
    for (xa, _, ya), (xb, _, yb) in zip(epoch_1, _collect(twin)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    labels = lambda steps: np.concatenate([y for _, _, y in steps])  # noqa: E731
    assert not np.array_equal(labels(epoch_1), labels(_collect(other)))
    assert not np.array_equal(labels(epoch_1), labels(epoch_2))


def _half_dark(name, flip):
    """Images dark on the left half, bright on the right: a flip swaps the halves."""
    images = np.zeros((16, SIZE, SIZE, 3), np.uint8)
    images[:, :, SIZE // 2 :] = 255
    return pipeline.from_arrays(name, images, np.zeros(16, int), num_classes=1, flip=flip)


def test_flips_only_where_the_domain_allows_them():
    domains = [_half_dark("letters", flip=False), _half_dark("textures", flip=True)]
    steps = _collect(pipeline.train_dataset(domains, batch_size=16, image_size=SIZE, seed=0))
    images, domain, _ = steps[0]
    left, right = images[:, :, 0].mean(axis=(1, 2)), images[:, :, -1].mean(axis=(1, 2))
    assert np.all(left[domain == 0] < right[domain == 0])
    flipped = left[domain == 1] > right[domain == 1]
    assert 0 < flipped.sum() < flipped.size
    # Translation moves the edge between the halves by up to SIZE // 8 pixels.
    edges = np.argmax(images[domain == 0, 0, :, 0] > 0.5, axis=1)
    assert set(edges) <= {SIZE // 2 - 1, SIZE // 2, SIZE // 2 + 1} and len(set(edges)) > 1


def test_augmented_pairs_are_seeded_and_drawn_anew_on_every_pass():
    images = np.random.default_rng(0).random((6, SIZE, SIZE, 3), dtype=np.float32)
    pairs = tf.data.Dataset.from_tensor_slices((images, np.arange(6)))

    def passes(seed, count=2):
        augmented = pipeline.augment_pairs(pairs.repeat(count), image_size=SIZE, flip=True, seed=seed)
        out = [(image.numpy(), int(label)) for image, label in augmented]
        return np.stack([image for image, _ in out]), [label for _, label in out]

    drawn, labels = passes(seed=1)
    assert labels == [0, 1, 2, 3, 4, 5] * 2  # the targets stay with their images, untouched
    assert not np.allclose(drawn[:6], images)  # translated or flipped
    assert not np.allclose(drawn[:6], drawn[6:])  # the second pass draws again
    assert np.array_equal(drawn, passes(seed=1)[0])  # the seed gives the same images
    assert not np.allclose(drawn, passes(seed=2)[0])


def test_eval_datasets_cover_each_split_exactly_once(domains):
    datasets = pipeline.eval_datasets(domains, batch_size=4, image_size=2 * SIZE)
    assert list(datasets) == ["a", "b", "c"]
    for index, (name, num_examples, num_classes) in enumerate(DOMAINS):
        batches = [(x["image"].numpy(), x["domain"].numpy(), y.numpy()) for x, y in datasets[name]]
        sizes = [len(y) for _, _, y in batches]
        assert sum(sizes) == num_examples
        assert sizes[-1] == (num_examples % 4 or 4)  # the remainder is kept, not dropped
        images = np.concatenate([b[0] for b in batches])
        assert images.shape == (num_examples, 2 * SIZE, 2 * SIZE, 3)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), index)
        source_domain, ids = _decode(images)
        np.testing.assert_array_equal(ids, np.arange(num_examples))  # in order, no shuffle
        np.testing.assert_array_equal(source_domain, index)
        np.testing.assert_array_equal(
            np.concatenate([b[2] for b in batches]), np.arange(num_examples) % num_classes
        )


@pytest.mark.parametrize("shape", [(6, SIZE, SIZE), (6, SIZE, SIZE, 1)])
def test_grey_images_become_three_channels(shape):
    images = np.full(shape, 0.5, np.float32)
    source = pipeline.from_arrays("grey", images, np.zeros(6, int), num_classes=2)
    x, _ = next(iter(pipeline.eval_datasets([source], batch_size=6, image_size=SIZE)["grey"]))
    assert x["image"].shape == (6, SIZE, SIZE, 3)
    np.testing.assert_allclose(x["image"].numpy(), 0.5)


def _arrays(n=4, shape=(SIZE, SIZE, 3), dtype=np.uint8):
    return np.zeros((n,) + shape, dtype), np.zeros(n, np.int32)


@pytest.mark.parametrize(
    "images, labels, num_classes, message",
    [
        (*_arrays(n=0), 3, r"Domain 'd' is empty.*Received: images.shape=\(0, 8, 8, 3\)"),
        (_arrays()[0], np.array([0, 1, 3, 0]), 3,
         r"labels outside \[0, 3\).*Received: min label=0, max label=3"),
        (_arrays()[0], np.array([0, -1, 2, 0]), 3, r"Received: min label=-1"),
        (np.zeros((4, 8)), _arrays()[1], 3, r"wrong shape.*Received: images.shape=\(4, 8\)"),
        (_arrays(shape=(8, 8, 4))[0], _arrays()[1], 3,
         r"wrong shape.*Expected \(N, H, W, 3\).*Received: images.shape=\(4, 8, 8, 4\)"),
        (_arrays(dtype=np.float32)[0] + 2, _arrays()[1], 3,
         r"float images outside \[0, 1\].*Received: min=2.0, max=2.0"),
        (_arrays(dtype=np.int64)[0], _arrays()[1], 3, r"Received: images.dtype=int64"),
        (_arrays()[0], np.zeros(3, int), 3, r"one label per image.*Received: labels.shape=\(3,\)"),
        (_arrays()[0], np.zeros(4), 3, r"non-integer labels.*Received: labels.dtype=float64"),
        (*_arrays(), 0, r"at least one class.*Received: num_classes=0"),
    ],
)
def test_from_arrays_rejects_bad_inputs(images, labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        pipeline.from_arrays("d", images, labels, num_classes=num_classes)


def test_duplicate_names_and_bad_sizes_are_rejected(domains):
    twice = [domains[0], domains[1], domains[0]]
    for build in (pipeline.train_dataset, pipeline.eval_datasets):
        message = r"unique.*found \['a'\].*Received: names=\['a', 'b', 'a'\]"
        with pytest.raises(ValueError, match=message):
            build(twice, batch_size=4, image_size=SIZE)
        with pytest.raises(ValueError, match=r"at least one domain. Received: domains=\[\]"):
            build([], batch_size=4, image_size=SIZE)
        with pytest.raises(ValueError, match=r"batch_size must be a positive integer.*=0"):
            build(domains, batch_size=0, image_size=SIZE)
    unnamed = pipeline.DomainSource("", domains[0].dataset, 4)
    with pytest.raises(ValueError, match=r"non-empty name. Received: name=''"):
        pipeline.train_dataset([unnamed], batch_size=4, image_size=SIZE)
    with pytest.raises(ValueError, match=r"Received: steps_per_epoch=0"):
        pipeline.train_dataset(domains, batch_size=4, image_size=SIZE, steps_per_epoch=0)


def test_tf_data_sources_are_checked():
    empty = pipeline.DomainSource("empty", tf.data.Dataset.from_tensor_slices(_arrays(n=0)), 3)
    with pytest.raises(ValueError, match="Domain 'empty' is empty"):
        pipeline.train_dataset([empty], batch_size=2, image_size=SIZE)

    unknown_size = tf.data.Dataset.from_tensor_slices(_arrays()).filter(lambda x, y: True)
    unknown = pipeline.DomainSource("stream", unknown_size, 3)
    with pytest.raises(ValueError, match=r"Cannot count.*\['stream'\].*pass steps_per_epoch"):
        pipeline.train_dataset([unknown], batch_size=2, image_size=SIZE)
    dataset = pipeline.train_dataset([unknown], batch_size=2, image_size=SIZE, steps_per_epoch=3)
    assert len(_collect(dataset)) == 3

    rgba = tf.data.Dataset.from_tensor_slices(_arrays(shape=(SIZE, SIZE, 4)))
    with pytest.raises(ValueError, match=r"Domain 'rgba' has images of the wrong shape"):
        pipeline.eval_datasets([pipeline.DomainSource("rgba", rgba, 3)], batch_size=2, image_size=4)
    images_only = tf.data.Dataset.from_tensor_slices(_arrays()[0])
    with pytest.raises(ValueError, match=r"must yield \(image, label\) pairs"):
        pipeline.eval_datasets(
            [pipeline.DomainSource("x", images_only, 3)], batch_size=2, image_size=4
        )
    float_labels = tf.data.Dataset.from_tensor_slices((_arrays()[0], np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match=r"one integer label.*Received: label spec"):
        pipeline.train_dataset(
            [pipeline.DomainSource("f", float_labels, 3)], batch_size=2, image_size=4
        )

    # Labels of tf.data sources (tfds, folders) are checked as they stream.
    images, _ = _arrays()
    bad = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1, 5, 0], np.int64)))
    source = pipeline.DomainSource("bad", bad, 3)
    message = r"Domain bad has a label >= num_classes. Expected labels in \[0, 3\)"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _collect(pipeline.eval_datasets([source], batch_size=4, image_size=SIZE)["bad"])


def test_validation_split_is_disjoint_seeded_and_independent_of_tensorflow_seeds():
    source = _encoded_domain("a", 40, 4, 0)

    def ids(part):
        return sorted(int(image[0, 0, 0]) for image, _ in part.dataset.as_numpy_iterator())  # uint8 grey = id

    tf.random.set_seed(1)
    train, validation = pipeline.split_validation(source, 0.25, seed=3)
    tf.random.set_seed(2)  # another global seed (another stage, another run): the same split
    again = pipeline.split_validation(source, 0.25, seed=3)[1]
    assert int(train.dataset.cardinality()) == 30 and int(validation.dataset.cardinality()) == 10
    assert sorted(ids(train) + ids(validation)) == list(range(40))
    assert ids(validation) == ids(again) != ids(pipeline.split_validation(source, 0.25, seed=4)[1])
    assert validation.name == "a" and validation.num_classes == 4
    with pytest.raises(ValueError, match=r"Received: fraction=1\.0"):
        pipeline.split_validation(source, 1.0)
