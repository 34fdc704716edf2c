"""The domains of a run as ``DomainSource``s, from the dataset named in the config.

``domain_sources(config, split)`` with ``split`` "train", "validation" or "test" (the
evaluation split: Decathlon's "validation", whose labels are public; each tfds dataset's own
test split otherwise) dispatches to the loaders of ``bap_tf.data``. With
``config.validation_fraction`` > 0, "validation" is that share of each domain's training
split (seeded per domain, ``split_validation``) and "train" the rest; with 0, "train" is the
whole training split and there is no "validation".

- ``pocket``: ``load_pocket`` (cached under ``data_dir`` or ``~/.cache/bap_tf/pocket``);
- ``decathlon``: ``load_decathlon`` (tfds ``visual_domain_decathlon/<domain>``);
- ``imagenet_sketch``: ``load_imagenet_to_sketch`` for the domains tfds has, the folder loader
  for ``wikiart`` and ``sketch`` (``folders_root/<domain>/{train,test}/<class>/*``);
- ``folders``: the folder loader, ``folders_root/<domain>/{train,test}/<class>/*``; a domain
  folder without ``train``/``test`` (``<domain>/<class>/*``) is split by ``folders.split_folder``
  (``config.test_fraction``, ``config.seed``).

A folder domain is read once into a record of its files (``folders.list_split`` or
``split_folder``: every image decoded, the test classes among the train classes), and a domain
of fewer than two classes is refused there. With a ``workdir`` the record goes to
``WORKDIR/splits/<domain>.json`` and is read back from there after, so that every stage and
every rerun sees the same files, already checked, even if files are added to the folder. The
commands make the records before they write anything (``new_split_records``).
"""

import os
import zlib

import numpy as np
import tensorflow as tf

from bap_tf.atomic import read_json
from bap_tf.data import DomainSource, folders, load_decathlon, load_imagenet_to_sketch
from bap_tf.data.pipeline import eval_datasets, split_validation
from bap_tf.data.pocket import pocket_sources
from bap_tf.data.tfds_loaders import IMAGENET_TO_SKETCH_FOLDERS

SPLITS = ("train", "validation", "test")
# The labelled evaluation split of each tfds domain ("test" where it is not called that).
_TFDS_EVAL_SPLIT = {"decathlon": "validation", "imagenet": "validation", "flowers": "test"}
# Domains whose mirror image is another class (characters, digits, signs): no flips.
_NO_FLIP = {"omniglot", "svhn", "gtsrb", "sketch"}
# Memory for the shuffle buffer from which a random sample of a data set is drawn.
SHUFFLE_BUFFER_BYTES = 256 * 1024 * 1024


def user_cache_dir(name):
    """``~/.cache/bap_tf/<name>`` (``$XDG_CACHE_HOME`` when set): what bap-tf keeps across runs."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bap_tf", name)


def pocket_cache_dir(data_dir):
    """Where the pocket benchmark is cached: ``data_dir`` or ``~/.cache/bap_tf/pocket``."""
    return data_dir or user_cache_dir("pocket")


def domain_sources(config, split, workdir=None):
    """``[DomainSource]`` of ``config.domains`` (resolved) in order, for ``split``; ``workdir``
    records the splits of unsplit folder domains (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
    if split != "test" and config.validation_fraction:
        parts = [split_validation(s, config.validation_fraction, seed=zlib.crc32(s.name.encode()))
                 for s in _loaded_sources(config, "train", workdir)]
        return [train if split == "train" else validation for train, validation in parts]
    if split == "validation":
        raise ValueError(
            "There is no validation split: it is carved from the training data when validation_fraction > 0. "
            f"Received: validation_fraction={config.validation_fraction}"
        )
    return _loaded_sources(config, split, workdir)


def _loaded_sources(config, split, workdir):
    """The loaders' own ``split`` ("train" or "test") of every domain."""
    if config.dataset == "pocket":
        return pocket_sources(split, pocket_cache_dir(config.data_dir), names=config.domains)
    tfds_kwargs = {"data_dir": config.data_dir or None, "manual_dir": config.manual_dir or None}
    sources = []
    for domain in config.domains:
        if _reads_folder(config, domain):
            dataset, num_classes = _folder_domain(config, domain, split, workdir)
        elif config.dataset == "decathlon":
            dataset, num_classes = load_decathlon(
                domain, "train" if split == "train" else _TFDS_EVAL_SPLIT["decathlon"],
                image_size=config.image_size, **tfds_kwargs,
            )
        else:
            dataset, num_classes = load_imagenet_to_sketch(
                domain, "train" if split == "train" else _TFDS_EVAL_SPLIT.get(domain, "test"),
                image_size=config.image_size, **tfds_kwargs,
            )
        sources.append(DomainSource(domain, dataset, int(num_classes), flip=domain not in _NO_FLIP))
    return sources


def _reads_folder(config, domain):
    """Whether ``domain`` is read from ``folders_root``: any of dataset=folders, ImageNet-to-Sketch's
    wikiart and sketch."""
    return config.dataset == "folders" or (config.dataset == "imagenet_sketch" and domain in IMAGENET_TO_SKETCH_FOLDERS)


def _folder_domain(config, domain, split, workdir):
    if workdir is not None and workdir.split(domain).exists():
        record = read_json(workdir.split(domain))
    else:
        record = _new_record(config, domain)
        if workdir is not None:
            workdir.write_splits({domain: record})
    root = os.path.join(config.folders_root, domain)
    dataset, names = folders.load_split(root, record, split, image_size=config.image_size)
    return dataset, len(names)


def new_split_records(config, workdir):
    """``{domain: record}`` of the config's folder domains that ``workdir`` has no record of
    yet, each read and checked from its folder (see the module docstring), nothing written."""
    return {d: _new_record(config, d) for d in config.domains
            if _reads_folder(config, d) and not workdir.split(d).exists()}


def _new_record(config, domain):
    root = os.path.join(config.folders_root, domain)
    if config.dataset == "folders" and not folders.has_split(root):
        record = folders.split_folder(root, config.test_fraction, config.seed)
    else:
        record = folders.list_split(root)
    count = len(record["class_names"])
    if count < 2:
        raise ValueError(
            f"Domain '{domain}' has {count} class ({record['class_names']}). Expected at least 2 classes "
            f"(class sub-folders) to tell apart. Received: {root}"
        )
    return record


def domain_specs(sources):
    """``[(name, num_classes)]`` of sources, the domain list the model is built for."""
    return [(source.name, source.num_classes) for source in sources]


def labelled_images(source, image_size, limit=0):
    """``(images float32 (N, S, S, 3) in [0, 1], labels int32 (N,))`` of a source, as numpy.

    ``limit`` > 0 keeps the first ``limit`` examples. For evaluation sets and calibration.
    """
    dataset = source.dataset.take(limit) if limit else source.dataset
    single = DomainSource(source.name, dataset, source.num_classes, source.flip)
    batches = eval_datasets([single], batch_size=256, image_size=image_size)[source.name]
    images, labels = [], []
    for x, y in batches:
        images.append(x["image"].numpy())
        labels.append(y.numpy())
    return _concat(images, (0, image_size, image_size, 3), "float32"), _concat(labels, (0,), "int32")


def sample_images(source, image_size, limit, seed=0):
    """Up to ``limit`` images of a source in a seeded random order (so every class shows up
    even when the source is sorted by class), as ``labelled_images`` returns them."""
    count = int(source.dataset.cardinality())
    # Decoded float images fill the buffer: cap its memory (a data set sorted by class and larger
    # than the buffer then gives a sample biased to its first classes).
    buffer = max(1, min(SHUFFLE_BUFFER_BYTES // (image_size * image_size * 3 * 4), max(4 * limit, 10_000)))
    if count > 0:
        buffer = min(buffer, count)
    shuffled = DomainSource(source.name, source.dataset.shuffle(buffer, seed=seed), source.num_classes, source.flip)
    return labelled_images(shuffled, image_size, limit)


def image_label_dataset(source, image_size):
    """Unbatched ``(image float32 (S, S, 3), label)`` of a source, cardinality kept when known."""
    count = int(source.dataset.cardinality())
    dataset = eval_datasets([source], batch_size=256, image_size=image_size)[source.name]
    dataset = dataset.unbatch().map(lambda x, y: (x["image"], y))
    if count >= 0:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    return dataset


def _concat(parts, empty_shape, dtype):
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(empty_shape, dtype)

