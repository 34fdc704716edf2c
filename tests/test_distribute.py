"""The custom train_step under tf.distribute: one mirrored step equals one default step."""

import keras
import numpy as np
import tensorflow as tf

from bap_tf.backbones import resnet26
from bap_tf.data.synthetic import interleave, template_domains
from bap_tf.model import BudgetAwareModel
from bap_tf.switching import build_switched_network

DOMAINS = [("a", 3), ("b", 4)]


def one_step(strategy, x, y):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        network = build_switched_network(resnet26((16, 16, 3), width=4, blocks_per_stage=1), DOMAINS)
        model = BudgetAwareModel(network, DOMAINS, budget=0.5, sharing_loss="jaccard", sharing_weight=0.3, name="bap")
        model.multipliers.assign([0.7, 1.3])
        # SGD: Adam's first step is about lr * sign(gradient), which would turn float-level
        # differences between the two reductions into visible ones.
        model.compile(optimizer=keras.optimizers.SGD(0.1), switch_optimizer=keras.optimizers.SGD(0.1))
    # Interleaved batch of 8 per domain: each replica gets 8 samples, 4 of each domain.
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model.fit(dataset, epochs=1, verbose=0)
    return {v.path: v.numpy() for v in model.weights}


def test_mirrored_step_matches_default_step():
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, "conftest configures two logical CPUs"
    x, y = interleave(template_domains([3, 4], 8, 16, seed=3))
    default = one_step(tf.distribute.get_strategy(), x, y)
    mirrored = one_step(tf.distribute.MirroredStrategy([d.name for d in devices[:2]]), x, y)
    assert default.keys() == mirrored.keys()
    changed = 0
    for path, value in default.items():
        np.testing.assert_allclose(mirrored[path], value, atol=2e-5, rtol=1e-4, err_msg=path)
        changed += "switches" in path and not np.allclose(value, 1e-2, rtol=0, atol=1e-7)
    assert changed > 0  # the step really moved the switches
