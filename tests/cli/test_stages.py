"""The stage library in process: resumable training, pre-training, strategies, stage selection."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from bap_tf.backbones import build_backbone
from bap_tf.config import ExperimentConfig, PretrainConfig
from bap_tf.run import stages, strategy
from bap_tf.run.pretrain import pretrain
from bap_tf.run.train_stage import train
from bap_tf.run.workdir import Workdir


def tiny_config(cache, **overrides):
    values = dict(domains=("digits", "letters"), data_dir=str(cache), pretrained="none", width=4, epochs=1,
                  steps_per_epoch=2, batch_size=4)
    return ExperimentConfig(**{**values, **overrides}).resolve()


@pytest.mark.slow
def test_training_resumes_and_trains_on(tmp_path, pocket_cache):
    workdir = Workdir(tmp_path / "run").create()
    first = train(tiny_config(pocket_cache), workdir, verbose=0)
    history = json.loads(workdir.history.read_text())
    assert history["epochs"] == 1 and history["model_epochs"] == 1 and not first.skipped
    assert all(value <= 0.5 + 1e-6 for value in first.kept_fractions.values())
    # More epochs on the same workdir: restored from backup/, only the new epoch trains.
    second = train(tiny_config(pocket_cache, epochs=2), workdir, verbose=0)
    resumed = json.loads(workdir.history.read_text())
    assert resumed["epochs"] == 2 and resumed["model_epochs"] == 2 and len(resumed["epoch_seconds"]) == 2
    assert resumed["logs"]["loss"][0] == history["logs"]["loss"][0]
    assert second.epochs == 2
    # Asked again: nothing left to train.
    third = train(tiny_config(pocket_cache, epochs=2), workdir, verbose=0)
    assert third.skipped and third.kept_fractions == second.kept_fractions
    model = keras.saving.load_model(workdir.model, compile=False)
    assert model.domain_names == ["digits", "letters"] and model.budget == 0.5


@pytest.mark.slow
def test_pretrain_writes_weights_that_build_backbone_loads(tmp_path, pocket_cache):
    config = PretrainConfig(data_dir=str(pocket_cache), width=4, epochs=1, steps_per_epoch=2, batch_size=8)
    result = pretrain(config, Workdir(tmp_path / "pre").create(), verbose=0)
    summary = json.loads(open(result.summary_path).read())
    assert 0.0 <= result.test_accuracy <= 1.0 and summary["source"] == "fashion_mnist"
    backbone = build_backbone("resnet26", (32, 32, 3), width=4, weights=result.weights_path)
    fresh = build_backbone("resnet26", (32, 32, 3), width=4)
    assert backbone.output.shape == (None, 16)
    assert not np.allclose(backbone.get_layer("stem_conv").kernel.numpy(), fresh.get_layer("stem_conv").kernel.numpy())


def test_strategies_by_name():
    assert strategy.get_strategy("default") is tf.distribute.get_strategy()
    mirrored = strategy.get_strategy("mirrored")  # two logical CPUs (tests/conftest.py)
    assert mirrored.num_replicas_in_sync == 2
    assert strategy.check_batch_size(mirrored, 8, 3) == 24
    with pytest.raises(ValueError,
                       match=r"batch_size \(per domain\) must be a multiple of the 2 replicas.*Received: batch_size=5"):
        strategy.check_batch_size(mirrored, 5, 3)
    with pytest.raises(ValueError, match=r"strategy must be one of"):
        strategy.get_strategy("horovod")


def test_run_stages_checks_names_and_requires_earlier_stages(tmp_path, pocket_cache):
    workdir = Workdir(tmp_path / "run").create()
    with pytest.raises(ValueError, match=r"stages must be a non-empty list of \['train', 'prune', 'export', 'eval'\]"):
        stages.run_stages(tiny_config(pocket_cache), workdir, ["deploy"])
    with pytest.raises(FileNotFoundError, match=r"model\.keras is missing.*the train stage"):
        stages.run_stages(tiny_config(pocket_cache), workdir, ["prune"])


def test_shipped_backbone_is_found_and_others_are_asked_for(pocket_cache):
    from bap_tf.run.backbone import pretrained_weights

    assert pretrained_weights(ExperimentConfig().resolve()).endswith("pocket_resnet26_w16_32px.weights.h5")
    with pytest.raises(ValueError, match=r"No shipped backbone for backbone='resnet26', width=8.*--pretrained=PATH"):
        pretrained_weights(dataclasses.replace(ExperimentConfig().resolve(), width=8))
    with pytest.raises(FileNotFoundError, match=r"Received: pretrained='missing.h5', which does not exist"):
        pretrained_weights(dataclasses.replace(ExperimentConfig().resolve(), pretrained="missing.h5"))


@pytest.mark.slow
def test_prune_stage_with_finetuning(tmp_path, pocket_cache):
    from bap_tf.prune.saving import load_union
    from bap_tf.run.prune_stage import prune

    # One domain: each fine-tuned model costs a trace of its training step (~30 s here); the
    # joint fine-tuning of several domains is tested in tests/prune/test_finetune.py.
    # whole_union: the union model is no longer the masked model's function, so only the domain
    # models are held to it.
    config = tiny_config(pocket_cache, domains=("letters",), finetune_epochs=1, finetune_learning_rate=1e-3,
                         finetune_batch_size=4, whole_union=True, finetune_augment=True)
    workdir = Workdir(tmp_path / "run").create()
    train(config, workdir, verbose=0)
    result = prune(config, workdir)
    finetune = json.loads(workdir.finetune.read_text())
    assert set(finetune["union"]["after"]) == {"letters"} and set(finetune["domain"]) == {"letters"}
    assert finetune["settings"] == {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "layers": "all",
                                    "schedule": "cosine", "distill_weight": 0.0, "augment": True}
    assert 0.0 <= finetune["domain"]["letters"]["after"]["letters_pruned"] <= 1.0
    assert len(finetune["domain"]["letters"]["history"]["loss"]) == 1
    assert result.costs["union_ratio"]["macs"] < 1.0
    assert result.costs["max_abs_logit_diff"]["union"] == {}
    assert set(result.costs["max_abs_logit_diff"]["domain"]) == {"letters"}
    union = load_union(workdir.union_model)
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    assert union["letters"].predict(images, verbose=0).shape == (2, 26)
