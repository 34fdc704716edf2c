"""Model selection on the validation split: the train stage keeps its best finished epoch."""

import json

import keras
import numpy as np
import pytest

from bap_tf.config import ExperimentConfig
from bap_tf.data import pocket
from bap_tf.run import sources
from bap_tf.run.train_stage import train
from bap_tf.run.workdir import Workdir


@pytest.fixture(scope="module")
def pocket_cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pocket")
    pocket.build_pocket(directory, names=["digits", "letters"])
    return directory


def test_validation_split_is_carved_from_train_and_only_with_a_fraction(pocket_cache):
    config = ExperimentConfig(domains=("digits",), data_dir=str(pocket_cache), validation_fraction=0.1).resolve()
    nothing_held = ExperimentConfig(domains=("digits",), data_dir=str(pocket_cache), validation_fraction=0.0).resolve()
    whole = sources.domain_sources(nothing_held, "train")
    train_part, validation = (sources.domain_sources(config, split)[0] for split in ("train", "validation"))
    total = int(whole[0].dataset.cardinality())
    assert int(validation.dataset.cardinality()) == round(0.1 * total)
    assert int(train_part.dataset.cardinality()) + int(validation.dataset.cardinality()) == total
    with pytest.raises(ValueError, match="Received: validation_fraction=0.0"):
        sources.domain_sources(nothing_held, "validation")
    assert ExperimentConfig().validation_fraction == 0.1  # held back by default


@pytest.mark.parametrize("fraction", [0.5, -0.1])
def test_validation_fraction_is_checked(fraction):
    with pytest.raises(ValueError, match=f"Received: validation_fraction={fraction}"):
        ExperimentConfig(validation_fraction=fraction)


def test_warmup_must_leave_epochs_to_train_the_switches():
    with pytest.raises(ValueError, match="Received: warmup_epochs=2"):
        ExperimentConfig(epochs=2, warmup_epochs=2)


@pytest.mark.slow
def test_train_stage_keeps_the_best_finished_epoch_on_validation(tmp_path, pocket_cache):
    config = ExperimentConfig(domains=("digits", "letters"), data_dir=str(pocket_cache), pretrained="none", width=4,
                              epochs=3, warmup_epochs=1, steps_per_epoch=3, batch_size=4,
                              validation_fraction=0.05).resolve()
    workdir = Workdir(tmp_path / "run").create()
    result = train(config, workdir, verbose=0)
    history = json.loads(workdir.history.read_text())
    scores = history["logs"]["val_mean_accuracy"]
    assert scores[0] is None and all(0.0 <= s <= 1.0 for s in scores[1:])  # the warm-up is no candidate
    best = json.loads((workdir.root / "best_epoch.weights.h5.json").read_text())
    assert best["epoch"] in (1, 2) and best["score"] == max(scores[1:])
    # The saved model is the best epoch's finished state: within the budget, its weights saved.
    assert all(value <= 0.5 + 1e-6 for value in result.kept_fractions.values())
    saved = keras.saving.load_model(workdir.model, compile=False)
    reference = keras.saving.load_model(workdir.model, compile=False)
    reference.load_weights(workdir.root / "best_epoch.weights.h5")
    assert all(np.array_equal(a, b) for a, b in zip(saved.get_weights(), reference.get_weights()))
