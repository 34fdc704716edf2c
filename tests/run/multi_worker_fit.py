"""One worker of the multi-worker test: a few steps of BudgetAwareModel.fit, weights to a file.

    TF_CONFIG=... python multi_worker_fit.py STRATEGY OUT.npz STEPS [MORE_EPOCHS]

``STRATEGY`` goes through ``get_strategy`` as ``--strategy`` does, and ``fit`` runs inside
``lost_workers_reported`` as in the train stage. Every worker builds the same data: ``STEPS``
global batches of 8 images per domain, interleaved; under ``multi_worker`` each worker computes
half of every global batch. After one epoch the weights go to ``OUT.npz`` and "saved" is
printed; then training goes on for ``MORE_EPOCHS`` (0) epochs, for a test to kill a worker in.
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from bap_tf.backbones import resnet26
from bap_tf.data.synthetic import interleave, template_domains
from bap_tf.model import BudgetAwareModel
from bap_tf.run.strategy import get_strategy, lost_workers_reported
from bap_tf.switching import build_switched_network

DOMAINS = [("a", 3), ("b", 4)]
PER_DOMAIN = 8


def main(name, output, steps, more_epochs=0):
    strategy = get_strategy(name)
    x, y = interleave(template_domains([3, 4], PER_DOMAIN * steps, 16, seed=3))
    keras.utils.set_random_seed(0)
    with strategy.scope():
        network = build_switched_network(resnet26((16, 16, 3), width=4, blocks_per_stage=1), DOMAINS)
        model = BudgetAwareModel(network, DOMAINS, budget=0.5, sharing_loss="jaccard", sharing_weight=0.3)
        model.multipliers.assign([0.7, 1.3])
        # SGD, as in test_distribute: Adam's first steps would magnify float-level differences.
        model.compile(optimizer=keras.optimizers.SGD(0.1), switch_optimizer=keras.optimizers.SGD(0.1))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(PER_DOMAIN * len(DOMAINS))
    with lost_workers_reported(strategy):
        model.fit(dataset, epochs=1, verbose=0)
        # Keyed without the model's own name: Keras numbers it after the models the process
        # built before (a test process has built others), the workers' not.
        np.savez(output, **{v.path.split("/", 1)[1]: v.numpy() for v in model.weights})
        print("saved", flush=True)
        if more_epochs:
            model.fit(dataset, epochs=more_epochs, verbose=0)

if __name__ == "__main__":
    main(*sys.argv[1:3], *map(int, sys.argv[3:]))
