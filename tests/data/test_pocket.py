"""The pocket benchmark's public API and its npz cache."""

import os

import numpy as np
import pytest

from bap_tf.data import pocket, pocket_domains


@pytest.fixture
def cache_dir(pocket_cache_dir):
    return pocket_cache_dir


def test_public_constants():
    assert pocket.POCKET_SOURCE == "fashion_mnist"
    assert list(pocket.POCKET_DOMAINS) == ["digits", "letters", "textures", "photo_digits"]
    assert pocket.POCKET_DOMAINS["letters"] == 26
    assert set(pocket.POCKET_FLIPS) == set(pocket.POCKET_NUM_CLASSES)


@pytest.mark.parametrize("name", list(pocket.POCKET_NUM_CLASSES))
def test_load_pocket_shapes_dtypes_and_labels(cache_dir, name):
    for split in pocket.SPLITS:
        images, labels = pocket.load_pocket(name, split, cache_dir)
        assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
        assert labels.dtype == np.int32 and labels.shape == images.shape[:1]
        assert 0 <= labels.min() and labels.max() < pocket.POCKET_NUM_CLASSES[name]


def test_cache_is_reused_and_written_atomically(cache_dir, monkeypatch):
    path = pocket.cache_path("letters", cache_dir)
    before = os.stat(path).st_mtime_ns

    def no_rebuild(split):
        raise AssertionError("the builder ran although the cache file exists")

    monkeypatch.setitem(pocket_domains.BUILDERS, "letters", no_rebuild)
    images, _ = pocket.load_pocket("letters", "train", cache_dir)
    assert images.shape[0] == 2080 and os.stat(path).st_mtime_ns == before
    # Only finished .npz files are left: no temporary files from the atomic writes.
    assert sorted(os.listdir(cache_dir)) == sorted(
        os.path.basename(pocket.cache_path(name, cache_dir)) for name in pocket.POCKET_NUM_CLASSES
    )


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage):
    expected = pocket.load_pocket("digits", "test", tmp_path)
    path = pocket.cache_path("digits", tmp_path)
    content = open(path, "rb").read()
    damaged = {
        "garbage": b"not an npz file",
        "truncated": content[: len(content) // 2],
        "empty": b"",
    }
    with open(path, "wb") as f:
        f.write(damaged[damage])
    with pytest.warns(UserWarning, match="Rebuilding pocket domain 'digits'"):
        images, labels = pocket.load_pocket("digits", "test", tmp_path)
    np.testing.assert_array_equal(images, expected[0])
    np.testing.assert_array_equal(labels, expected[1])
    # The rebuilt file is whole again.
    np.testing.assert_array_equal(pocket.load_pocket("digits", "test", tmp_path)[1], labels)


def test_cache_with_wrong_arrays_is_rebuilt(tmp_path):
    path = pocket.cache_path("digits", tmp_path)
    os.makedirs(tmp_path, exist_ok=True)
    np.savez(path, train_images=np.zeros((2, 32, 32, 3), np.float32))
    with pytest.warns(UserWarning, match="Rebuilding"):
        images, _ = pocket.load_pocket("digits", "train", tmp_path)
    assert images.dtype == np.uint8 and images.shape[0] == 1347


def test_unknown_name_and_split(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown pocket domain.*Received: name='mnist'"):
        pocket.load_pocket("mnist", "train", tmp_path)
    with pytest.raises(ValueError, match=r"Unknown split.*Received: split='validation'"):
        pocket.load_pocket("digits", "validation", tmp_path)


def test_pocket_sources_carry_flips_and_classes(cache_dir):
    sources = pocket.pocket_sources("test", cache_dir)
    assert [s.name for s in sources] == list(pocket.POCKET_DOMAINS)
    assert [s.num_classes for s in sources] == list(pocket.POCKET_DOMAINS.values())
    assert [s.flip for s in sources] == [False, False, True, False]
    assert int(sources[0].dataset.cardinality()) == 450
