"""Fine-tuning the reduced models is ordinary ``fit``: it runs and moves the weights."""

import functools

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf.data import pipeline
from bap_tf.prune import Rewriter, finetune


def _data(network, num_classes, seed):
    images = prune_nets.images(network, count=16, seed=seed)
    labels = np.random.default_rng(seed).integers(0, num_classes, 16)
    return images, labels


def test_finetune_union_and_domain_models():
    network = prune_nets.residual_network()
    rng = np.random.default_rng(31)
    prune_nets.set_switches(network, 0.5, rng)
    prune_nets.randomize(network, rng)
    domains = prune_nets.domains_of(network)
    rewriter = Rewriter(network, domains)
    union = rewriter.union_models()
    data = {name: _data(network, classes, seed) for seed, (name, classes) in enumerate(domains)}

    shared = union["birds"].get_layer("block_conv")
    heads = {name: union[name].get_layer(f"{name}_head") for name in union}
    before = {"shared": shared.kernel.numpy().copy(), **{n: h.kernel.numpy().copy() for n, h in heads.items()}}
    result = finetune.finetune_union(union, data, epochs=1, batch_size=8, learning_rate=1e-2)
    assert set(result.before) == set(result.after) == set(union)
    assert all(0.0 <= value <= 1.0 for value in [*result.before.values(), *result.after.values()])
    assert "loss" in result.history
    assert not np.allclose(shared.kernel.numpy(), before["shared"])  # the shared conv trained
    for name, head in heads.items():
        assert not np.allclose(head.kernel.numpy(), before[name])
    # The domains' models still call the same, now trained, conv.
    assert union["cars"].get_layer("block_conv") is shared

    own = rewriter.domain_model("cars")
    kernel = own.get_layer("last").kernel.numpy().copy()
    result = finetune.finetune_domain(own, data["cars"], epochs=1, batch_size=8, learning_rate=1e-2, steps_per_epoch=3)
    assert list(result.after) == ["cars_pruned"]
    assert int(own.optimizer.iterations.numpy()) == 3
    assert not np.allclose(own.get_layer("last").kernel.numpy(), kernel)


def test_finetuning_keeps_the_epoch_that_scores_best_on_the_selection_data():
    network = prune_nets.residual_network()
    rng = np.random.default_rng(5)
    prune_nets.set_switches(network, 0.5, rng)
    prune_nets.randomize(network, rng)
    domains = prune_nets.domains_of(network)
    model = Rewriter(network, domains).domain_model("cars")
    data = _data(network, dict(domains)["cars"], 0)
    before = [w.copy() for w in model.get_weights()]
    # A score that falls at every call makes the model before fine-tuning (epoch 0) the best:
    # its weights come back at the end, though both epochs moved them.
    calls = []

    def falling_score():
        calls.append(None)
        return -len(calls)

    keep = finetune.KeepBestEpoch(falling_score, model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(*data, epochs=2, batch_size=8, verbose=0, callbacks=[keep])
    assert keep.best_epoch == 0 and len(calls) == 3
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    result = finetune.finetune_domain(model, data, epochs=2, batch_size=8, learning_rate=1e-2, select_on=data)
    assert result.selected_epoch in (0, 1, 2) and 0.0 <= result.selection_score <= 1.0
    assert result.selection_score >= result.before[model.name] - 1e-9  # epoch 0 was a candidate


def test_finetuning_batchnorms_and_heads_leaves_the_convolutions():
    network = prune_nets.residual_network()
    rng = np.random.default_rng(7)
    prune_nets.set_switches(network, 0.5, rng)
    prune_nets.randomize(network, rng)
    domains = prune_nets.domains_of(network)
    model = Rewriter(network, domains).domain_model("cars")
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    kernels = [layer.kernel.numpy().copy() for layer in convs]
    head = model.get_layer("cars_head").kernel.numpy().copy()
    finetune.finetune_domain(model, _data(network, dict(domains)["cars"], 0), epochs=1, batch_size=8,
                             learning_rate=1e-2, layers="batchnorm_heads")
    assert convs and all(np.array_equal(k, layer.kernel.numpy()) for k, layer in zip(kernels, convs))
    assert not np.allclose(head, model.get_layer("cars_head").kernel.numpy())
    with pytest.raises(ValueError, match="Received: layers='convs'"):
        finetune.unfreeze(model, "convs")


def test_cosine_schedule_decays_the_rate_to_zero_over_the_fine_tuning():
    network = prune_nets.residual_network()
    prune_nets.set_switches(network, 0.5, np.random.default_rng(2))
    rewriter = Rewriter(network, prune_nets.domains_of(network))
    own = rewriter.domain_model("cars")
    data = _data(network, dict(prune_nets.domains_of(network))["cars"], 0)
    finetune.finetune_domain(own, data, epochs=2, batch_size=8, learning_rate=1e-2, steps_per_epoch=3,
                             schedule="cosine")
    assert float(own.optimizer.iterations.numpy()) == 6
    assert float(own.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # the rate at step 6 of 6
    with pytest.raises(ValueError, match="schedule must be one of .* Received: schedule='linear'"):
        finetune.optimizer(1e-3, "linear", 10)
    constant = finetune.optimizer(1e-3, "constant", 10)
    assert float(constant.learning_rate) == pytest.approx(1e-3)


def test_distillation_loss_mixes_the_label_and_the_softened_teacher():
    from bap_tf.prune.distill import DistillationLoss

    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(5, 4)).astype("float32"), rng.normal(size=(5, 4)).astype("float32")
    labels = rng.integers(0, 4, 5)
    y_true = np.concatenate([labels[:, None].astype("float32"), teacher], axis=1)

    def log_softmax(x):
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    hard = -log_softmax(student)[np.arange(5), labels].mean()
    soft = -(np.exp(log_softmax(teacher / 2)) * log_softmax(student / 2)).sum(-1).mean()
    assert float(DistillationLoss(0.0)(y_true, student)) == pytest.approx(hard, rel=1e-5)
    assert float(DistillationLoss(0.25)(y_true, student)) == pytest.approx(0.75 * hard + 0.25 * 4 * soft, rel=1e-5)
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\]. Received: weight=1.5"):
        DistillationLoss(1.5)


def test_a_distilled_domain_model_learns_its_teacher():
    import keras

    network = prune_nets.residual_network()
    prune_nets.set_switches(network, 0.5, np.random.default_rng(2))
    own = Rewriter(network, prune_nets.domains_of(network)).domain_model("cars")
    classes = own.output_shape[-1]
    images, _ = _data(network, classes, 0)
    labels = np.full(len(images), 1)  # the labels say class 1, the teacher always class 0
    teacher_input = keras.Input(own.input_shape[1:])
    teacher = keras.Model(teacher_input, keras.layers.Lambda(
        lambda x: keras.ops.one_hot(keras.ops.zeros_like(x[:, 0, 0, 0], "int32"), classes) * 20.0)(teacher_input))
    finetune.finetune_domain(own, (images, labels), epochs=3, batch_size=8, learning_rate=3e-2, steps_per_epoch=10,
                             teacher=teacher, distill_weight=1.0)
    assert np.all(np.argmax(own.predict(images, verbose=0), -1) == 0)


def test_augmented_fine_tuning_trains_on_the_augmented_images(monkeypatch):
    network = prune_nets.residual_network()
    prune_nets.set_switches(network, 0.5, np.random.default_rng(3))
    domains = prune_nets.domains_of(network)
    data = {name: _data(network, classes, seed) for seed, (name, classes) in enumerate(domains)}
    size = data["cars"][0].shape[1]
    seen = []
    fit = keras.Model.fit

    def spy(model, x, **kwargs):  # the first batch fit is given
        images = next(iter(x))[0]
        seen.append((images["cars"] if isinstance(images, dict) else images).numpy())
        return fit(model, x, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)

    def among_sources(batch):
        return [any(np.allclose(image, source) for source in data["cars"][0]) for image in batch]

    for augment in (None, functools.partial(pipeline.augment_pairs, image_size=size, flip=True, seed=0)):
        kwargs = dict(epochs=1, batch_size=8, learning_rate=1e-2, steps_per_epoch=1)
        finetune.finetune_domain(Rewriter(network, domains).domain_model("cars"), data["cars"], augment=augment,
                                 **kwargs)
        finetune.finetune_union(Rewriter(network, domains).union_models(), data,
                                augment=None if augment is None else {"cars": augment}, **kwargs)
    plain, augmented = seen[:2], seen[2:]
    assert all(all(among_sources(batch)) for batch in plain)
    # An image drawn unmoved and unflipped is its source (1 in 18 at this size): most are not.
    assert all(sum(among_sources(batch)) < len(batch) / 2 for batch in augmented)
