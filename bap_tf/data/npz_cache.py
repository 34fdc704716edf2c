"""Atomic ``.npz`` cache files: written whole or not at all, checked when read back.

A writer fills a temporary file in the cache directory and renames it over the target with
``os.replace``, which is atomic on one filesystem: a reader (or a second process building the
same file) sees either the old file or the complete new one, never half of it.
"""

import os
import zipfile
import zlib

import numpy as np

from bap_tf.atomic import atomic_path


class CacheError(ValueError):
    """A cache file exists but cannot be read back as the arrays expected."""


def write(path, arrays):
    """Writes ``arrays`` (name -> numpy array) to ``path`` atomically, creating its directory."""
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        np.savez_compressed(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def read(path, expected):
    """Reads ``path`` and checks it holds ``expected`` (name -> (dtype, rank)).

    Returns name -> array. Raises ``FileNotFoundError`` if there is no file and ``CacheError``
    if the file is truncated, not an npz archive, or lacks an array of the expected dtype/rank.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in expected}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, zlib.error, KeyError, ValueError, OSError, EOFError) as error:
        raise CacheError(
            f"Cache file {path} is unreadable or incomplete. Expected an npz archive with "
            f"arrays {sorted(expected)}. Received: {type(error).__name__}: {error}"
        ) from error
    for name, (dtype, rank) in expected.items():
        array = arrays[name]
        if array.dtype != np.dtype(dtype) or array.ndim != rank:
            raise CacheError(
                f"Cache file {path} holds a wrong array '{name}'. Expected dtype {dtype} and "
                f"rank {rank}. Received: dtype {array.dtype}, shape {array.shape}"
            )
    return arrays
