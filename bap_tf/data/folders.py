"""Loads a user's own domain from a folder tree: ``root/<class_name>/*.{png,jpg,jpeg}``.

Classes are the sub-folders of ``root`` sorted by name, so label ``i`` is the ``i``-th name.
Give a test folder the train folder's ``class_names`` so that both splits share one label
space even when the test folder lacks a class. Hidden files (``.DS_Store``) and files directly
under ``root`` are ignored; anything else that is not a PNG or JPEG image is an error, found
up front rather than in the middle of training: every image is decoded once when its folder is
listed, so a truncated file is named there instead of failing inside ``tf.data``.

A domain folder either holds ``train/`` and ``test/`` trees of that form (``list_split`` lists
them), or is such a tree itself; then ``split_folder`` splits it, per class (stratified) and
seeded, like Keras' ``image_dataset_from_directory(validation_split=...)`` but with every class
in both splits. Either gives a record of the files, and ``load_split`` loads one side of it.
"""

import os

import numpy as np
import tensorflow as tf

from bap_tf.data import images as image_ops

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# File signatures: PNG's 8-byte magic number and the JPEG start-of-image marker.
_MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff"}


def _visible(names):
    return sorted(name for name in names if not name.startswith("."))


def list_images(root, class_names=None):
    """``(paths, labels, class_names)`` of the tree under ``root``, validated (see module doc)."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"Expected a folder of class sub-folders. Received: root={root!r}, which is not a "
            "directory"
        )
    found = [n for n in _visible(os.listdir(root)) if os.path.isdir(os.path.join(root, n))]
    if not found:
        raise ValueError(
            f"Folder {root} has no class sub-folders. Expected root/<class_name>/<image>.png "
            f"(or .jpg/.jpeg). Received: {_visible(os.listdir(root))}"
        )
    if class_names is None:
        class_names = found
    else:
        class_names = list(class_names)
        unknown = sorted(set(found) - set(class_names))
        if unknown:
            raise ValueError(
                f"Folder {root} has classes that the given label space lacks. Expected "
                f"sub-folders among class_names={class_names}. Received: {unknown}"
            )
    paths, labels = [], []
    for name in found:
        folder = os.path.join(root, name)
        files = _visible(os.listdir(folder))
        if not files:
            raise ValueError(
                f"Class folder {folder} is empty. Expected at least one .png/.jpg/.jpeg image."
            )
        for file_name in files:
            path = os.path.join(folder, file_name)
            _check_image_file(path)
            paths.append(path)
            labels.append(class_names.index(name))
    check_decodes(paths)
    return paths, labels, class_names


def check_decodes(paths):
    """Decodes every image once, in parallel, as the training pipeline will (``_decode``);
    raises ``ValueError`` naming the first that does not decode (a truncated or corrupt body
    behind a valid signature)."""
    decoded = tf.data.Dataset.from_tensor_slices(tf.constant(list(paths), tf.string)).map(
        lambda path: (path, tf.shape(_decode(path))), num_parallel_calls=tf.data.AUTOTUNE)
    good = {path.decode() for path, _ in decoded.ignore_errors().as_numpy_iterator()}
    bad = [path for path in paths if path not in good]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(
            f"Image file cannot be decoded (truncated or corrupt). Expected a complete PNG or JPEG "
            f"image. Received: {bad[0]}{more}"
        )


def _check_image_file(path):
    extension = os.path.splitext(path)[1].lower()
    if os.path.isdir(path) or extension not in IMAGE_EXTENSIONS:
        raise ValueError(
            f"Unexpected entry in a class folder. Expected only image files with extensions "
            f"{list(IMAGE_EXTENSIONS)}. Received: {path}"
        )
    magic = _MAGIC[extension]
    with open(path, "rb") as f:
        head = f.read(len(magic))
    if head != magic:
        raise ValueError(
            f"File is not a valid {extension[1:].upper()} image (wrong signature). Expected "
            f"its first bytes to be {magic!r}. Received: {head!r} in {path}"
        )


def has_split(root):
    """True when ``root`` holds ``train/`` and ``test/`` folders (no split to make)."""
    return all(os.path.isdir(os.path.join(root, split)) for split in ("train", "test"))


def list_split(root):
    """The record of a domain folder that holds ``train/`` and ``test/`` trees: ``{"class_names",
    "train": [path], "test": [path]}``, paths relative to ``root``; the test tree takes the train
    tree's label space (a class only it has is an error)."""
    train, _, class_names = list_images(os.path.join(root, "train"))
    test = list_images(os.path.join(root, "test"), class_names)[0]
    return {"class_names": class_names, "train": [os.path.relpath(p, root) for p in train],
            "test": [os.path.relpath(p, root) for p in test]}


def split_folder(root, test_fraction=0.2, seed=0):
    """A seeded, class-stratified train/test split of the tree under ``root``.

    Each class's images (sorted, then permuted by a generator seeded with ``seed``) go
    ``round(n * test_fraction)`` to test, at least one to each side.

    Returns:
        ``{"test_fraction", "seed", "class_names", "train": [path], "test": [path]}``, paths
        relative to ``root`` (``<class>/<file>``): what ``load_split`` reads, and what a
        workdir records so that a rerun gets the same split.

    Raises:
        ValueError: ``test_fraction`` outside (0, 1), or a class of fewer than 2 images.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(
            f"test_fraction must be a fraction in (0, 1). Received: test_fraction={test_fraction!r}"
        )
    paths, labels, class_names = list_images(root)
    rng = np.random.default_rng(seed)
    record = {"test_fraction": test_fraction, "seed": seed, "class_names": class_names,
              "train": [], "test": []}
    for label, name in enumerate(class_names):
        files = [os.path.relpath(p, root) for p, y in zip(paths, labels) if y == label]
        if len(files) < 2:
            raise ValueError(
                f"Class folder {os.path.join(root, name)} has too few images to split. Expected at "
                f"least 2 (one for train, one for test). Received: {len(files)} image"
            )
        count = min(max(round(len(files) * test_fraction), 1), len(files) - 1)
        test = set(rng.permutation(len(files))[:count].tolist())
        record["test"] += [f for i, f in enumerate(files) if i in test]
        record["train"] += [f for i, f in enumerate(files) if i not in test]
    return record


def load_split(root, record, split, *, image_size):
    """``(dataset, class_names)`` of one side (``"train"`` or ``"test"``) of the ``record`` of
    ``root`` (``list_split``'s or ``split_folder``'s, whose files were checked when it was made);
    a file gone since is named."""
    class_names = list(record["class_names"])
    paths = [os.path.join(root, relative) for relative in record[split]]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"The recorded {split} split of {root} lists a file that is gone. Expected the "
                f"folder the split was made from (or a new workdir). Received: missing {path}"
            )
    labels = [class_names.index(os.path.basename(os.path.dirname(path))) for path in paths]
    return _image_dataset(paths, labels, image_size), class_names


def load_folder(root, *, image_size, class_names=None):
    """``(dataset, class_names)`` for the tree under ``root``.

    ``dataset``: unbatched ``(image float32 (S, S, 3) in [0, 1], label int32)`` in sorted file
    order (the training pipeline shuffles); images are decoded as RGB (grey and RGBA files too),
    their shorter side resized to ``S`` and centre-cropped. ``class_names``: pass the train
    folder's names when loading its test folder.
    """
    paths, labels, class_names = list_images(root, class_names)
    return _image_dataset(paths, labels, image_size), class_names


def _decode(path):
    """The one decoder of folder images: ``check_decodes`` runs it, so what passes decodes in training."""
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def _image_dataset(paths, labels, image_size):
    def load(path, label):
        image = image_ops.resize_square(image_ops.to_float_rgb(_decode(path)), image_size)
        return tf.ensure_shape(image, (image_size, image_size, 3)), label

    dataset = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
