"""The MCU budget: flash and arena estimates from the gates, their gradient, the hard
projection, and the boards too small for any pruning, refused by name before training."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from bap_tf import backbones, switching
from bap_tf.budgets import mcu
from bap_tf.model import BudgetAwareModel

DOMAINS = [("a", 3), ("b", 4)]


@pytest.fixture(scope="module")
def network():
    return switching.build_switched_network(backbones.resnet26((32, 32, 3), width=8, blocks_per_stage=1), DOMAINS)


def _estimate(cost, gates):
    return {k: ops.convert_to_numpy(v) for k, v in cost.estimate(gates).items()}


def test_estimates_shrink_with_the_gates_and_bound_by_the_larger_ratio(network):
    cost = mcu.McuCost(network, flash_kb=512, ram_kb=128)
    switches = cost.counts.num_switches
    full, none = _estimate(cost, ops.ones((2, switches))), _estimate(cost, ops.zeros((2, switches)))
    # Every switch on: one byte per backbone weight at least; the largest activations: the
    # 32x32x8 stem output with the two 16x16x8 tensors of the first block.
    weights = sum(int(np.prod(layer.kernel.shape)) for layer in network.layers
                  if hasattr(layer, "kernel") and layer.name != "heads")
    assert full["flash_bytes"][0] > weights
    assert full["ram_bytes"][0] >= 32 * 32 * 8 + 2 * 16 * 16 * 8
    assert np.all(none["flash_bytes"] < full["flash_bytes"]) and np.all(none["ram_bytes"] < full["ram_bytes"])
    # The heads differ by domain: 4 classes cost more than 3.
    assert full["flash_bytes"][1] > full["flash_bytes"][0]
    fractions = ops.convert_to_numpy(cost.kept_fractions(ops.ones((2, switches))))
    expected = np.maximum(full["flash_bytes"] / (512 * 1024), full["ram_bytes"] / (128 * 1024))
    assert np.allclose(fractions, expected)


def test_gradient_reaches_the_switches(network):
    cost = mcu.McuCost(network, flash_kb=64, ram_kb=16)
    layers = switching.switched_layers(network)
    for layer in layers:
        layer.switches.assign(np.full(layer.switches.shape, 0.5, "float32"))
    with tf.GradientTape() as tape:
        gates = ops.concatenate([layer.gates() for layer in layers], axis=-1)
        total = ops.sum(cost.estimate(gates)["flash_bytes"])
    gradients = tape.gradient(total, [layer.switches for layer in layers])
    assert all(g is not None and float(ops.max(g)) > 0 for g in gradients)


def test_projection_meets_the_board(network):
    model = BudgetAwareModel(network, DOMAINS, budget_metric="mcu", budget=1.0, mcu_budget=(48, 24))
    for layer in model.switched:
        layer.switches.assign(np.random.default_rng(0).uniform(0.1, 0.9, layer.switches.shape).astype("float32"))
    assert np.all(model.kept_fractions() > 1.0)
    model.project_to_budget()
    estimates = model.mcu_estimates()
    assert all(e["flash_bytes"] <= 48 * 1024 and e["ram_bytes"] <= 24 * 1024 for e in estimates.values())
    assert np.all(model.kept_fractions() <= 1.0 + 1e-6)
    config = model.get_config()
    assert config["mcu_budget"] == [48.0, 24.0]
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model)).mcu_budget == (48.0, 24.0)


@pytest.mark.parametrize("flag, board", [("mcu_ram_kb", (512, 4)), ("mcu_flash_kb", (8, 128))])
def test_a_board_no_pruning_fits_is_refused_by_name(network, flag, board):
    with pytest.raises(ValueError, match=rf"{flag} is below what the network needs .* Received: {flag}="):
        mcu.McuCost(network, *board)
