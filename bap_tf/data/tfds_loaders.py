"""TensorFlow Datasets loaders for the paper's two benchmarks.

**Visual Decathlon** (``visual_domain_decathlon/<domain>``): all ten domains are in tfds, stored
with a shorter side of 72 px. Use ``"validation"`` for evaluation: the official ``"test"``
split has no labels (tfds stores ``-1``), so ``load_decathlon`` refuses it.

**ImageNet-to-Sketch**: tfds has ImageNet (``imagenet2012``, which always needs the archives in
``manual_dir``), CUBS (``caltech_birds2011``), Stanford Cars (``cars196``) and Flowers
(``oxford_flowers102``). tfds lacks **WikiArt** and the benchmark's **Sketch** (the 250-class
TU-Berlin drawings of Eitz et al., 2012): load those with ``bap_tf.data.folders.load_folder``
from a ``root/<class>/*.png`` tree. tfds's ``imagenet_sketch`` is a different data set
(ImageNet-Sketch, Wang et al., 2019, 1000 ImageNet classes); ``load_tfds("imagenet_sketch", ...)``
reads it, but it is not the benchmark's Sketch domain.

Every loader returns ``(dataset, num_classes)``: an unbatched ``tf.data.Dataset`` of
``(image float32 (S, S, 3) in [0, 1], label int32)`` (shorter side resized to ``S``, centre
crop) and the class count from the tfds metadata. ``data_dir`` and ``manual_dir`` are handed to
tfds unchanged; without network access, point ``data_dir`` at a prepared copy.
"""

import tensorflow as tf
import tensorflow_datasets as tfds

from bap_tf.data import images as image_ops

DECATHLON_DOMAINS = (
    "aircraft", "cifar100", "daimlerpedcls", "dtd", "gtsrb",
    "imagenet12", "omniglot", "svhn", "ucf101", "vgg-flowers",
)
DECATHLON_IMAGE_SIZE = 72
# ImageNet-to-Sketch domain -> tfds name, for the domains tfds provides.
IMAGENET_TO_SKETCH = {
    "imagenet": "imagenet2012",
    "cubs": "caltech_birds2011",
    "stanford_cars": "cars196",
    "flowers": "oxford_flowers102",
}
# The domains tfds lacks; bap_tf.data.folders covers them.
IMAGENET_TO_SKETCH_FOLDERS = ("wikiart", "sketch")
IMAGENET_TO_SKETCH_IMAGE_SIZE = 224


class DatasetUnavailableError(FileNotFoundError):
    """A tfds data set is neither prepared under ``data_dir`` nor obtainable by download."""


def _unavailable(name, split, data_dir, manual_dir, error):
    return DatasetUnavailableError(
        f"The tfds data set '{name}' (split '{split}') is not prepared and could not be "
        f"downloaded. Expected a prepared copy under data_dir={data_dir!r} (pass --data_dir "
        f"pointing at a folder holding {name.split('/')[0]}/), or the original archives in "
        f"manual_dir={manual_dir!r} (pass --manual_dir; see `tfds build {name}` for the files "
        f"it expects). Received: {type(error).__name__}: {error}"
    )


def load_tfds(
    name,
    split,
    *,
    image_size,
    data_dir=None,
    manual_dir=None,
    download=True,
    shuffle_files=False,
):
    """``(dataset, num_classes)`` for the tfds data set ``name`` (``"builder/config"`` allowed).

    ``download=True`` runs ``download_and_prepare`` first (a no-op when the data is there),
    with ``DownloadConfig(manual_dir=manual_dir)``; ``download=False`` only reads ``data_dir``.
    Raises ``DatasetUnavailableError`` naming the data set when neither works.
    """
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(
            f"tfds has no data set '{name}'. Expected a name from `tfds.list_builders()`. "
            f"Received: name={name!r}"
        ) from error
    if download:
        try:
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
            )
        except Exception as error:  # tfds raises many types here (network, checksums, manual).
            raise _unavailable(name, split, data_dir, manual_dir, error) from error
    try:
        dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=shuffle_files)
    except (AssertionError, FileNotFoundError) as error:
        raise _unavailable(name, split, data_dir, manual_dir, error) from error
    label_key = builder.info.supervised_keys[1]
    num_classes = builder.info.features[label_key].num_classes

    def preprocess(image, label):
        image = image_ops.resize_square(image_ops.to_float_rgb(image), image_size)
        return tf.ensure_shape(image, (image_size, image_size, 3)), tf.cast(label, tf.int32)

    return dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE), num_classes


def load_decathlon(domain, split, *, image_size=DECATHLON_IMAGE_SIZE, **kwargs):
    """One Visual Decathlon domain; ``split`` is ``"train"`` or ``"validation"``.

    ``kwargs`` go to ``load_tfds`` (``data_dir``, ``manual_dir``, ``download``, ...).
    """
    if domain not in DECATHLON_DOMAINS:
        raise ValueError(
            f"Unknown Visual Decathlon domain. Expected one of {list(DECATHLON_DOMAINS)}. "
            f"Received: domain={domain!r}"
        )
    if split.split("[")[0] == "test":
        raise ValueError(
            "The Visual Decathlon test split has no labels (they are -1 in tfds). Expected "
            f"'train' or 'validation' (or a slice of them). Received: split={split!r}"
        )
    return load_tfds(
        f"visual_domain_decathlon/{domain}", split, image_size=image_size, **kwargs
    )


def load_imagenet_to_sketch(domain, split, *, image_size=IMAGENET_TO_SKETCH_IMAGE_SIZE, **kwargs):
    """One ImageNet-to-Sketch domain that tfds provides (``IMAGENET_TO_SKETCH``)."""
    if domain in IMAGENET_TO_SKETCH_FOLDERS:
        raise ValueError(
            f"tfds does not provide the ImageNet-to-Sketch domain '{domain}'. Expected one of "
            f"{list(IMAGENET_TO_SKETCH)}; load '{domain}' with bap_tf.data.folders.load_folder "
            f"from a root/<class>/*.jpg tree. Received: domain={domain!r}"
        )
    if domain not in IMAGENET_TO_SKETCH:
        raise ValueError(
            f"Unknown ImageNet-to-Sketch domain. Expected one of {list(IMAGENET_TO_SKETCH)} "
            f"(or {list(IMAGENET_TO_SKETCH_FOLDERS)} through the folder loader). "
            f"Received: domain={domain!r}"
        )
    return load_tfds(IMAGENET_TO_SKETCH[domain], split, image_size=image_size, **kwargs)
