"""The prune stage's fine-tuning data: augmented as the training stage's when asked, seeded by the run."""

import numpy as np

from bap_tf.config import ExperimentConfig
from bap_tf.data import from_arrays
from bap_tf.run import prune_stage

SIZE = 8


def _first_images(config, sources):
    """The images each domain's augmentation makes of its source's first pass."""
    augment = prune_stage.augmentation(config, sources)
    return {s.name: np.stack([image.numpy() for image, _ in augment[s.name](s.dataset)]) for s in sources}


def test_finetune_augment_augments_the_training_pairs_seeded_by_the_run():
    images = np.random.default_rng(0).random((12, SIZE, SIZE, 3), dtype=np.float32)
    sources = [from_arrays(name, images, np.arange(12) % 2, num_classes=2, flip=flip)
               for name, flip in (("letters", False), ("textures", True))]
    assert prune_stage.augmentation(ExperimentConfig(image_size=SIZE, seed=1, finetune_augment=False), sources) == {}
    augmented = ExperimentConfig(image_size=SIZE, seed=1, finetune_augment=True)
    drawn = _first_images(augmented, sources)
    for name, batch in drawn.items():
        assert batch.shape == images.shape and not np.allclose(batch, images), name
    assert not np.allclose(drawn["letters"], drawn["textures"])  # each domain its own draws
    assert all(np.array_equal(drawn[n], again) for n, again in _first_images(augmented, sources).items())
    other_seed = _first_images(ExperimentConfig(image_size=SIZE, seed=2, finetune_augment=True), sources)
    assert not np.allclose(other_seed["letters"], drawn["letters"])
