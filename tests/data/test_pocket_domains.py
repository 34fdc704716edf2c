"""The pocket benchmark's builders: shapes, label ranges, sizes, determinism, IDX parsing."""

import gzip

import numpy as np
import pytest

from bap_tf.data import pocket, pocket_domains

# (train, test) sizes promised by docs/pocket.md.
SIZES = {
    "fashion_mnist": (6000, 1000),
    "digits": (1347, 450),
    "letters": (2080, 520),
    "textures": (1800, 480),
    "photo_digits": (2000, 500),
}


@pytest.fixture(scope="module")
def built(pocket_cache_dir):
    """Every domain and split, as built into the session's cache by the seeded builders."""
    return {
        (name, split): pocket.load_pocket(name, split, pocket_cache_dir)
        for name in pocket_domains.BUILDERS
        for split in pocket_domains.SPLITS
    }


@pytest.mark.parametrize("name", list(SIZES))
def test_domain_shapes_dtypes_and_labels(built, name):
    num_classes = pocket.POCKET_NUM_CLASSES[name]
    for split, size in zip(pocket_domains.SPLITS, SIZES[name]):
        images, labels = built[name, split]
        assert images.shape == (size, 32, 32, 3) and images.dtype == np.uint8
        assert labels.shape == (size,) and labels.dtype == np.int32
        # Every class is present in both splits, and no label falls outside the label space.
        np.testing.assert_array_equal(np.unique(labels), np.arange(num_classes))
        # Real pictures, not blank or saturated arrays.
        assert 10 < images.mean() < 245 and images.std() > 10


@pytest.mark.parametrize("name", list(SIZES))
def test_builders_are_deterministic(built, name):
    # A second, independent build gives the same arrays bit for bit.
    images, labels = pocket_domains.BUILDERS[name]("test")
    np.testing.assert_array_equal(images, built[name, "test"][0])
    np.testing.assert_array_equal(labels, built[name, "test"][1])


def test_train_and_test_differ(built):
    for name in pocket_domains.BUILDERS:
        train, test = built[name, "train"][0], built[name, "test"][0]
        train_rows = {image.tobytes() for image in train}
        assert not any(image.tobytes() in train_rows for image in test), name


def test_fashion_mnist_is_padded_and_grey(built):
    images, _ = built["fashion_mnist", "train"]
    assert not images[:, :2].any() and not images[:, -2:].any()
    assert not images[:, :, :2].any() and not images[:, :, -2:].any()
    np.testing.assert_array_equal(images[..., 0], images[..., 2])


def test_missing_fashion_mnist_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(pocket_domains, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        pocket_domains.fashion_mnist("train")


def test_read_idx_round_trip_and_errors(tmp_path):
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in values.shape)
    good = tmp_path / "good.gz"
    good.write_bytes(gzip.compress(header + values.tobytes()))
    np.testing.assert_array_equal(pocket_domains.read_idx(good), values)

    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(header + values.tobytes()[:-1]))
    with pytest.raises(ValueError, match="truncated"):
        pocket_domains.read_idx(short)
    wrong = tmp_path / "wrong.gz"
    wrong.write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + header[4:]))
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        pocket_domains.read_idx(wrong)
