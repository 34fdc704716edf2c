"""Behaviour of BudgetAwareModel under fit: budget met, sharing happens, backbone frozen, state saved."""

import re

import keras
import numpy as np
import pytest

from bap_tf.backbones import resnet26
from bap_tf.data.synthetic import interleave, template_domains
from bap_tf.model import BudgetAwareModel, ProjectToBudget
from bap_tf.switching import build_switched_network, switched_layers

DOMAINS = [("a", 3), ("b", 4), ("c", 5)]
EPOCHS = 12


def make_model(budget=0.5, sharing_loss="union", domains=DOMAINS, **kwargs):
    backbone = resnet26((16, 16, 3), width=4, blocks_per_stage=1)
    network = build_switched_network(backbone, domains)
    model = BudgetAwareModel(network, domains, budget=budget, sharing_loss=sharing_loss, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def data(samples=64):
    return interleave(template_domains([n for _, n in DOMAINS], samples, 16, seed=1))


def train(budget, sharing_loss):
    keras.utils.set_random_seed(0)
    model = make_model(budget, sharing_loss)
    x, y = data()
    history = model.fit(x, y, batch_size=24, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[ProjectToBudget()])
    return model, history.history


@pytest.fixture(scope="module")
def runs():
    """Models trained once per module: same data, same seed, three settings."""
    return {key: train(*key) for key in [(0.5, "none"), (0.5, "union"), (0.5, "jaccard"), (1.0, "none")]}


def test_budget_is_met_by_every_domain(runs):
    for sharing_loss in ("none", "union", "jaccard"):
        model, history = runs[(0.5, sharing_loss)]
        # Dual ascent alone ends near the budget (logs are taken before the projection) ...
        for name, _ in DOMAINS:
            assert history[f"{name}_kept"][-1] <= 0.5 + 0.05, (sharing_loss, name, history[f"{name}_kept"])
        # ... and the projection at the end of fit makes it hard.
        assert np.all(model.kept_fractions() <= 0.5 + 1e-6), (sharing_loss, model.kept_fractions())


def test_projection_turns_off_the_least_confident_switches_first():
    model = make_model(budget=0.5, domains=[("a", 2)])
    rng = np.random.default_rng(0)
    for layer in model.switched:
        layer.switches.assign(rng.uniform(0.01, 1.0, size=layer.switches.shape))
    before = np.concatenate([layer.switches.numpy()[0] for layer in model.switched])
    turned_off = model.project_to_budget()
    after = np.concatenate([layer.switches.numpy()[0] for layer in model.switched])
    assert model.kept_fractions()[0] <= 0.5 and turned_off[0] == np.sum(after <= 0) > 0
    assert before[after <= 0].max() <= before[after > 0].min()
    assert model.project_to_budget() == [0]


def test_full_budget_never_pushes(runs):
    model, history = runs[(1.0, "none")]
    for name, _ in DOMAINS:
        assert history[f"{name}_lambda"] == [0.0] * EPOCHS
    constrained, _ = runs[(0.5, "none")]
    assert np.all(model.kept_fractions() > constrained.kept_fractions())


def test_sharing_losses_shrink_the_union_of_used_channels(runs):
    baseline = runs[(0.5, "none")][0].union_fraction()
    for sharing_loss in ("union", "jaccard"):
        assert runs[(0.5, sharing_loss)][0].union_fraction() <= baseline - 0.1, sharing_loss


def test_training_learns_every_domain(runs):
    _, history = runs[(0.5, "none")]
    for name, _ in DOMAINS:
        assert history[f"{name}_accuracy"][-1] > 0.6, name


def test_fit_logs_per_domain_metrics(runs):
    _, history = runs[(0.5, "union")]
    expected = {"loss", "union", "sharing_loss", "sharing_weight"}
    for name, _ in DOMAINS:
        expected |= {f"{name}_{key}" for key in ("loss", "accuracy", "kept", "lambda")}
    assert expected <= set(history)
    assert history["sharing_weight"][-1] > 0.0


def test_backbone_weights_stay_frozen():
    model = make_model()
    frozen = {v.path: v.numpy().copy() for v in model.network.weights
              if v.name in ("kernel", "bias") and "heads" not in v.path}
    bn_gamma = model.network.get_layer("stem_bn").gamma.numpy().copy()
    x, y = data(16)
    model.fit(x, y, batch_size=24, epochs=2, verbose=0)
    after = {v.path: v.numpy() for v in model.network.weights}
    assert frozen and all(np.array_equal(value, after[path]) for path, value in frozen.items())
    assert not np.array_equal(bn_gamma, model.network.get_layer("stem_bn").gamma.numpy())


def test_save_and_reload_continues_identically(tmp_path):
    model = make_model(sharing_loss="jaccard")
    x, y = data(16)
    model.fit(x, y, batch_size=24, epochs=2, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    for index, (name, _) in enumerate(DOMAINS):
        np.testing.assert_array_equal(model.domain_logits(x["image"], name), restored.domain_logits(x["image"], index))
    batch = ({k: v[:24] for k, v in x.items()}, y[:24])
    model.train_on_batch(*batch)
    restored.train_on_batch(*batch)
    assert int(restored.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    for ours, theirs in zip(model.weights, restored.weights):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-6, err_msg=ours.path)


def test_separate_switch_optimizer_is_used_and_saved(tmp_path):
    model = make_model()
    model.compile(optimizer="adam", switch_optimizer=keras.optimizers.SGD(0.1))
    x, y = data(16)
    model.fit(x, y, batch_size=24, epochs=1, verbose=0)
    assert int(model.switch_optimizer.iterations.numpy()) == 2  # 48 samples, batches of 24
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(restored.switch_optimizer, keras.optimizers.SGD)
    np.testing.assert_allclose(restored.switch_optimizer.variables[-1].numpy(),
                               model.switch_optimizer.variables[-1].numpy())


def test_step_compiles_with_xla():
    model = make_model()
    model.compile(optimizer="adam", jit_compile=True)
    x, y = data(8)
    history = model.fit(x, y, batch_size=24, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("budget", [0, -0.5, 1.5, float("nan"), "half"])
def test_budget_outside_unit_interval_is_named(budget):
    with pytest.raises(ValueError, match=r"budget must be a fraction in \(0, 1\]. Received: budget="):
        make_model(budget=budget)


def test_unknown_sharing_loss_is_named():
    with pytest.raises(ValueError, match="Received: sharing_loss='dice'"):
        make_model(sharing_loss="dice")


def test_domain_without_classes_is_named():
    with pytest.raises(ValueError,
                       match="Domain 'b' needs a positive integer number of classes. Received: num_classes=0"):
        make_model(domains=[("a", 2), ("b", 0)])


def test_label_outside_its_domain_is_named():
    model = make_model()
    x, y = data(8)
    y = y.copy()
    y[2] = 5  # sample 2 is domain "c" (5 classes): label 5 is out of range
    with pytest.raises(Exception,
                       match=r"Received: label =\] \[5\] \[in domain index\] \[2\] \[with num_classes =\] \[5\]"):
        model.fit(x, y, batch_size=24, epochs=1, verbose=0)
    y[2] = -1
    with pytest.raises(Exception, match=r"Received: label =\] \[-1\]"):
        model.evaluate(x, y, batch_size=24, verbose=0)


def test_unknown_domain_is_named():
    model = make_model()
    with pytest.raises(ValueError, match=r"Expected one of \['a', 'b', 'c'\]. Received: domain='z'"):
        model.domain_logits(np.zeros((1, 16, 16, 3), "float32"), "z")


def test_switches_follow_the_network():
    model = make_model()
    assert [layer.name for layer in model.switched] == [layer.name for layer in switched_layers(model.network)]


@pytest.mark.parametrize("shape", [(2, 16, 16), (2, 16, 16, 1), (2, 8, 8, 3)])
def test_images_of_the_wrong_shape_are_named(shape):
    model = make_model()
    with pytest.raises(ValueError, match=r"\(N, 16, 16, 3\). Received: images.shape=" + re.escape(str(shape))):
        model.domain_logits(np.zeros(shape, "float32"), "a")


def test_warmup_trains_heads_only_then_switches_and_multipliers_act():
    keras.utils.set_random_seed(0)
    model = make_model(budget=0.3, warmup_steps=3, max_sharing_weight=0.2)
    x, y = data(samples=24)
    switches = [layer.switches.numpy().copy() for layer in model.switched]
    head = model.network.get_layer("heads").get_weights()[0].copy()
    model.fit(x, y, batch_size=24, epochs=1, steps_per_epoch=3, verbose=0)  # the warm-up
    assert all(np.array_equal(a, layer.switches.numpy()) for a, layer in zip(switches, model.switched))
    assert not np.allclose(head, model.network.get_layer("heads").get_weights()[0])
    assert np.all(model.multipliers.numpy() == 0) and float(model.sharing_weight.numpy()) == 0
    model.fit(x, y, batch_size=24, epochs=1, steps_per_epoch=3, verbose=0)
    assert not all(np.array_equal(a, layer.switches.numpy()) for a, layer in zip(switches, model.switched))
    assert np.all(model.multipliers.numpy() > 0)
    assert float(model.sharing_weight.numpy()) == pytest.approx(0.2)  # capped: uncapped it passes 0.2 in 3 steps
    config = model.get_config()
    assert config["warmup_steps"] == 3 and config["max_sharing_weight"] == 0.2


def test_warmup_steps_must_be_a_count():
    with pytest.raises(ValueError, match=r"Received: warmup_steps=-1"):
        make_model(warmup_steps=-1)
