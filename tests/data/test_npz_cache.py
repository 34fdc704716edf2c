"""Atomic npz writes and checked reads."""

import os

import numpy as np
import pytest

from bap_tf.data import npz_cache

EXPECTED = {"images": (np.uint8, 4), "labels": (np.int32, 1)}


def _arrays():
    return {"images": np.ones((2, 4, 4, 3), np.uint8), "labels": np.array([0, 1], np.int32)}


def test_round_trip_creates_directory_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "cache.npz"
    npz_cache.write(path, _arrays())
    arrays = npz_cache.read(path, EXPECTED)
    np.testing.assert_array_equal(arrays["labels"], [0, 1])
    assert os.listdir(path.parent) == ["cache.npz"]


def test_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "cache.npz"
    npz_cache.write(path, _arrays())

    class Unsaveable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        npz_cache.write(path, {"images": Unsaveable()})
    np.testing.assert_array_equal(npz_cache.read(path, EXPECTED)["images"], _arrays()["images"])
    assert os.listdir(tmp_path) == ["cache.npz"]


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        npz_cache.read(tmp_path / "absent.npz", EXPECTED)


def test_corrupt_or_wrong_file_is_a_cache_error(tmp_path):
    path = tmp_path / "cache.npz"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(npz_cache.CacheError, match=r"unreadable or incomplete.*Received"):
        npz_cache.read(path, EXPECTED)
    npz_cache.write(path, {"images": np.ones((2, 4), np.uint8), "labels": np.zeros(2, np.int32)})
    with pytest.raises(npz_cache.CacheError, match=r"wrong array 'images'.*shape \(2, 4\)"):
        npz_cache.read(path, EXPECTED)
    npz_cache.write(path, {"images": np.ones((2, 4, 4, 3), np.uint8)})
    with pytest.raises(npz_cache.CacheError, match="KeyError"):
        npz_cache.read(path, EXPECTED)
