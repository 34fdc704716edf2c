"""Data for multi-domain training: loaders per domain, and the interleaved input pipeline.

- ``pocket``: the offline pocket benchmark (Fashion-MNIST source + four small target domains
  built from images that ship with installed packages), cached as ``.npz``.
- ``tfds_loaders``: Visual Decathlon and the ImageNet-to-Sketch domains that tfds provides.
- ``folders``: a user's own domain from ``root/<class_name>/*.png``.
- ``pipeline``: per-domain ``tf.data`` pipelines zipped into interleaved multi-domain batches,
  and per-domain evaluation datasets.

Every loader yields unbatched ``(image, label)`` pairs that ``pipeline.DomainSource`` wraps.
"""

from bap_tf.data.folders import load_folder
from bap_tf.data.pipeline import DomainSource, eval_datasets, from_arrays, train_dataset
from bap_tf.data.pocket import POCKET_DOMAINS, POCKET_SOURCE, load_pocket, pocket_sources
from bap_tf.data.tfds_loaders import load_decathlon, load_imagenet_to_sketch, load_tfds

__all__ = [
    "DomainSource",
    "POCKET_DOMAINS",
    "POCKET_SOURCE",
    "eval_datasets",
    "from_arrays",
    "load_decathlon",
    "load_folder",
    "load_imagenet_to_sketch",
    "load_pocket",
    "load_tfds",
    "pocket_sources",
    "train_dataset",
]
