"""Synthetic multi-domain data: learnable in a few steps, for tests and speed benchmarks.

Each domain draws one random template image per class; a sample is its class template blended
with uniform noise. Nothing about it resembles a real benchmark: it exists so that training
code can be exercised (and timed) without any dataset.
"""

import numpy as np


def template_domains(num_classes, samples_per_domain, image_size, seed=0, noise=0.3):
    """One ``(images float32 (N, S, S, 3) in [0, 1], labels int32 (N,))`` pair per domain."""
    rng = np.random.default_rng(seed)
    domains = []
    for classes in num_classes:
        templates = rng.random((classes, image_size, image_size, 3), dtype=np.float32)
        labels = rng.integers(0, classes, samples_per_domain).astype(np.int32)
        images = (1.0 - noise) * templates[labels] + noise * rng.random(
            (samples_per_domain, image_size, image_size, 3), dtype=np.float32
        )
        domains.append((images, labels))
    return domains


def interleave(domains):
    """In-memory multi-domain batch in the training layout: sample ``i`` is from domain ``i % D``.

    Every domain must hold the same number of samples. Returns ``(x, y)`` with
    ``x = {"image", "domain"}`` as ``BudgetAwareModel.fit`` expects.
    """
    sizes = {len(labels) for _, labels in domains}
    if len(sizes) != 1:
        raise ValueError(f"interleave needs equally sized domains. Received sizes: {sorted(sizes)}")
    images = np.stack([images for images, _ in domains], axis=1)
    labels = np.stack([labels for _, labels in domains], axis=1).reshape(-1)
    domain = np.tile(np.arange(len(domains), dtype=np.int32), sizes.pop())
    return {"image": images.reshape((-1,) + images.shape[2:]), "domain": domain}, labels
