"""The offline pocket benchmark: one source and four target domains that need no download.

A small stand-in for Visual Decathlon that trains end to end on two CPU cores in minutes. All
images come from files that ship with installed packages (Debian's ``dataset-fashion-mnist``,
scikit-learn, matplotlib's fonts, scikit-image's sample photos); every domain is 32x32x3 uint8
with int32 labels and a fixed seeded train/test split.

=================  ==============================================  =======  ======  =====
domain             images                                          classes  train   test
=================  ==============================================  =======  ======  =====
fashion_mnist      Fashion-MNIST subset, padded 28 -> 32 (source)  10       6,000   1,000
digits             scikit-learn ``load_digits``, 8x8 upsampled x4  10       1,347   450
letters            A-Z rendered from matplotlib's fonts, jittered  26       2,080   520
textures           patches of 12 scikit-image photos (class=photo) 12       1,800   480
photo_digits       coloured rendered digits on photo patches       10       2,000   500
=================  ==============================================  =======  ======  =====

How each one is generated: ``bap_tf.data.pocket_domains`` and ``docs/pocket.md``.

Each domain is built once (a few seconds) into ``<cache_dir>/pocket-<name>-v<VERSION>.npz``;
later calls read that file. A cache file that cannot be read back is rebuilt with a warning.
"""

import collections
import os
import warnings

import numpy as np

from bap_tf.data import npz_cache, pipeline, pocket_domains

# Bump when any builder changes its output, so that stale cache files are never read.
VERSION = 1

POCKET_SOURCE = "fashion_mnist"
# Target domains in their fixed order (the domain index the model sees): name -> num_classes.
POCKET_DOMAINS = collections.OrderedDict(
    [("digits", 10), ("letters", 26), ("textures", 12), ("photo_digits", 10)]
)
# Whether a random horizontal flip keeps an image in its class: not for characters.
POCKET_FLIPS = {
    "fashion_mnist": True,
    "digits": False,
    "letters": False,
    "textures": True,
    "photo_digits": False,
}
POCKET_NUM_CLASSES = {POCKET_SOURCE: 10, **POCKET_DOMAINS}
SPLITS = pocket_domains.SPLITS


def _check(name, split):
    if name not in POCKET_NUM_CLASSES:
        raise ValueError(
            f"Unknown pocket domain. Expected one of {list(POCKET_NUM_CLASSES)}. "
            f"Received: name={name!r}"
        )
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split. Expected one of {list(SPLITS)}. Received: split={split!r}"
        )


def cache_path(name, cache_dir):
    """Where ``load_pocket`` keeps domain ``name`` (both splits in one ``.npz`` file)."""
    return os.path.join(os.fspath(cache_dir), f"pocket-{name}-v{VERSION}.npz")


def _expected_arrays():
    expected = {}
    for split in SPLITS:
        expected[f"{split}_images"] = (np.uint8, 4)
        expected[f"{split}_labels"] = (np.int32, 1)
    return expected


def _build(name, path):
    arrays = {}
    for split in SPLITS:
        images, labels = pocket_domains.BUILDERS[name](split)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    npz_cache.write(path, arrays)
    return arrays


def _valid(arrays, name):
    num_classes = POCKET_NUM_CLASSES[name]
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (32, 32, 3) or images.shape[0] != labels.shape[0]:
            return False
        if labels.size == 0 or labels.min() < 0 or labels.max() >= num_classes:
            return False
    return True


def build_pocket(cache_dir, names=None):
    """Builds (or checks) the cache of every pocket domain, or of ``names``; returns the paths."""
    names = list(POCKET_NUM_CLASSES) if names is None else list(names)
    for name in names:
        load_pocket(name, "train", cache_dir)
    return {name: cache_path(name, cache_dir) for name in names}


def load_pocket(name, split, cache_dir):
    """One split of one pocket domain: ``(images uint8 (N, 32, 32, 3), labels int32 (N,))``.

    ``name`` is ``POCKET_SOURCE`` or a key of ``POCKET_DOMAINS``; ``split`` is ``"train"`` or
    ``"test"``. The first call for a domain builds it into ``cache_dir`` (created if needed).
    """
    _check(name, split)
    path = cache_path(name, cache_dir)
    try:
        arrays = npz_cache.read(path, _expected_arrays())
        if not _valid(arrays, name):
            raise npz_cache.CacheError(f"Cache file {path} holds arrays of the wrong shape.")
    except FileNotFoundError:
        arrays = _build(name, path)
    except npz_cache.CacheError as error:
        warnings.warn(f"Rebuilding pocket domain '{name}': {error}", stacklevel=2)
        arrays = _build(name, path)
    return arrays[f"{split}_images"], arrays[f"{split}_labels"]


def pocket_sources(split, cache_dir, names=None):
    """The pocket domains as ``pipeline.DomainSource`` objects, in ``POCKET_DOMAINS`` order.

    ``names`` picks a subset (e.g. ``[POCKET_SOURCE]`` for pre-training); flips are enabled
    only where ``POCKET_FLIPS`` says a mirrored image keeps its class.
    """
    names = list(POCKET_DOMAINS) if names is None else list(names)
    sources = []
    for name in names:
        images, labels = load_pocket(name, split, cache_dir)
        sources.append(
            pipeline.from_arrays(
                name, images, labels, num_classes=POCKET_NUM_CLASSES[name], flip=POCKET_FLIPS[name]
            )
        )
    return sources
