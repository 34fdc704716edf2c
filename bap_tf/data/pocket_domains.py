"""How each domain of the offline pocket benchmark is made, from images that ship with packages.

Every builder takes a split (``"train"`` or ``"test"``) and returns ``(images uint8 (N, 32, 32, 3),
labels int32 (N,))``, deterministically: the randomness comes from a fixed seed per domain and
split. ``bap_tf.data.pocket`` caches the results; ``docs/pocket.md`` tabulates them.

- ``fashion_mnist`` (source): Debian's ``dataset-fashion-mnist`` IDX files, a seeded class-balanced
  subset (600 train / 100 test images per class), 28x28 padded with 2 black pixels to 32x32.
- ``digits``: scikit-learn's ``load_digits`` (1,797 8x8 scans of handwritten digits), bilinearly
  upsampled x4; seeded stratified split, 450 test images.
- ``letters``: A-Z rendered from 16 fonts bundled with matplotlib (DejaVu Sans/Serif/Mono and
  STIX, regular/bold/italic) with random font, size, stroke, rotation and shift; 80 train and 20
  test renders per letter from different random streams.
- ``textures``: 32-96 px patches, resized to 32, cut from 12 photos bundled with scikit-image;
  the class is the photo. Train patches come from the left 70 % of each photo and test patches
  from the right 30 %, so no pixel is shared between splits.
- ``photo_digits``: digits 0-9 rendered like ``letters``, in a random colour that contrasts with
  a photo patch they are blended onto (SVHN-like). Backgrounds follow the same left/right split.
"""

import gzip
import os

import numpy as np
import scipy.ndimage
import skimage.data
import sklearn.datasets
import sklearn.model_selection
from PIL import Image

from bap_tf.data import glyphs

SIZE = 32
SPLITS = ("train", "test")

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_PER_CLASS = {"train": 600, "test": 100}
DIGITS_TEST_SIZE = 450
LETTERS_PER_CLASS = {"train": 80, "test": 20}
TEXTURES_PER_CLASS = {"train": 150, "test": 40}
PHOTO_DIGITS_PER_CLASS = {"train": 200, "test": 50}

# Photos bundled with scikit-image (no download needed); each is one ``textures`` class.
TEXTURE_PHOTOS = (
    "brick", "grass", "gravel", "cell", "coins", "moon",
    "camera", "clock", "coffee", "chelsea", "astronaut", "rocket",
)
# Backgrounds of ``photo_digits``: colour photos as they are, grey ones tinted at random.
BACKGROUND_PHOTOS = (
    "coffee", "chelsea", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry",
    "brick", "grass", "gravel", "camera", "moon", "coins",
)
# Fraction of each photo's width that train patches come from; test patches use the rest.
TRAIN_WIDTH_FRACTION = 0.7
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"

# One seed per domain so that adding a domain never changes another one's images.
_SEEDS = {"fashion_mnist": 11, "digits": 12, "letters": 13, "textures": 14, "photo_digits": 15}


def _rng(domain, split):
    return np.random.default_rng([_SEEDS[domain], SPLITS.index(split)])


def _rgb(gray):
    """(..., H, W) uint8 -> (..., H, W, 3) by repeating the grey channel."""
    return np.repeat(gray[..., None], 3, axis=-1)


def read_idx(path):
    """Parses one gzipped IDX file (the MNIST format) into a numpy array of its stored shape."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(
            f"{path} is not an unsigned-byte IDX file. Expected the magic bytes 00 00 08 <rank>. "
            f"Received: {data[:4].hex(' ')}"
        )
    rank = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(shape)):
        raise ValueError(
            f"{path} is truncated. Expected {int(np.prod(shape))} values for shape {shape}. "
            f"Received: {body.size}"
        )
    return body.reshape(shape)


def _balanced_subset(labels, per_class, rng):
    """Indices of ``per_class`` random samples of each class, in a seeded shuffled order."""
    picked = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return rng.permutation(np.concatenate(picked))


def fashion_mnist(split):
    if not os.path.isdir(FASHION_MNIST_DIR):
        raise FileNotFoundError(
            f"The pocket benchmark's source domain reads Fashion-MNIST from {FASHION_MNIST_DIR}, "
            "which does not exist. Install it with `apt-get install dataset-fashion-mnist`. "
            f"Received: missing directory {FASHION_MNIST_DIR}"
        )
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
    keep = _balanced_subset(labels, FASHION_PER_CLASS[split], _rng("fashion_mnist", split))
    images = np.pad(images[keep], ((0, 0), (2, 2), (2, 2)))
    return _rgb(images), labels[keep].astype(np.int32)


def digits(split):
    bunch = sklearn.datasets.load_digits()
    train, test = sklearn.model_selection.train_test_split(
        np.arange(bunch.target.size),
        test_size=DIGITS_TEST_SIZE,
        stratify=bunch.target,
        random_state=_SEEDS["digits"],
    )
    keep = train if split == "train" else test
    scans = bunch.images[keep] / 16.0
    large = scipy.ndimage.zoom(scans, (1, 4, 4), order=1, mode="nearest", grid_mode=True)
    images = np.clip(np.round(large * 255), 0, 255).astype(np.uint8)
    return _rgb(images), bunch.target[keep].astype(np.int32)


def _render_classes(chars, per_class, rng):
    """``per_class`` jittered renders of every char; returns (coverage masks, labels), shuffled."""
    fonts = glyphs.font_paths()
    labels = rng.permutation(np.repeat(np.arange(len(chars), dtype=np.int32), per_class))
    masks = np.stack([glyphs.render(chars[label], rng, SIZE, fonts) for label in labels])
    return masks, labels


def letters(split):
    masks, labels = _render_classes(LETTERS, LETTERS_PER_CLASS[split], _rng("letters", split))
    return _rgb(np.round(masks * 255).astype(np.uint8)), labels


def _photo(name):
    """A scikit-image sample photo as uint8 (H, W, 3)."""
    image = getattr(skimage.data, name)()
    return image if image.ndim == 3 else _rgb(image)


def _region(image, split):
    """The part of a photo that one split may cut patches from (left 70 % / right 30 %)."""
    cut = int(image.shape[1] * TRAIN_WIDTH_FRACTION)
    return image[:, :cut] if split == "train" else image[:, cut:]


def _random_patch(region, rng):
    """A square patch of 32-96 px (clipped to the region) at a random place, resized to 32."""
    side = int(min(rng.integers(SIZE, 3 * SIZE + 1), *region.shape[:2]))
    top = rng.integers(region.shape[0] - side + 1)
    left = rng.integers(region.shape[1] - side + 1)
    patch = Image.fromarray(region[top : top + side, left : left + side])
    return np.asarray(patch.resize((SIZE, SIZE), resample=Image.BILINEAR))


def textures(split):
    rng = _rng("textures", split)
    regions = [_region(_photo(name), split) for name in TEXTURE_PHOTOS]
    labels = rng.permutation(
        np.repeat(np.arange(len(TEXTURE_PHOTOS), dtype=np.int32), TEXTURES_PER_CLASS[split])
    )
    return np.stack([_random_patch(regions[label], rng) for label in labels]), labels


def _background(regions, rng):
    """A float (32, 32, 3) photo patch in [0, 1]; grey photos get a random colour tint."""
    region, is_grey = regions[rng.integers(len(regions))]
    patch = _random_patch(region, rng).astype(np.float32) / 255.0
    if is_grey:
        patch = patch * rng.uniform(0.4, 1.0, size=3)
    return patch


def photo_digits(split):
    rng = _rng("photo_digits", split)
    regions = []
    for name in BACKGROUND_PHOTOS:
        raw = getattr(skimage.data, name)()
        regions.append((_region(_photo(name), split), raw.ndim == 2))
    masks, labels = _render_classes(DIGITS, PHOTO_DIGITS_PER_CLASS[split], rng)
    images = np.empty((labels.size, SIZE, SIZE, 3), np.uint8)
    for i, mask in enumerate(masks):
        background = _background(regions, rng)
        luminance = float(np.mean(background @ np.array([0.299, 0.587, 0.114])))
        colour = rng.uniform(size=3)
        # Dark ink on light patches, light ink on dark ones, so every digit stays legible.
        colour = colour * 0.3 if luminance > 0.5 else 0.7 + 0.3 * colour
        blended = background * (1.0 - mask[..., None]) + colour * mask[..., None]
        images[i] = np.clip(np.round(blended * 255), 0, 255).astype(np.uint8)
    return images, labels


BUILDERS = {
    "fashion_mnist": fashion_mnist,
    "digits": digits,
    "letters": letters,
    "textures": textures,
    "photo_digits": photo_digits,
}
