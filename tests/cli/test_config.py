"""The config: validation messages, dataset defaults, the workdir merge rules, flagfile replay."""

import dataclasses
import json

import pytest
from absl import flags

from bap_tf import config as config_lib
from bap_tf.cli import flags as cli_flags
from bap_tf.config import ExperimentConfig, PretrainConfig
from bap_tf.run.workdir import Workdir, WorkdirError, config_for_workdir


def test_constants_repeated_in_config_match_the_library():
    from bap_tf import backbones, budgets, losses
    from bap_tf.data import pocket, tfds_loaders
    from bap_tf.prune import finetune

    assert config_lib.BACKBONES == backbones.BACKBONES
    assert config_lib.BUDGET_METRICS == budgets.BUDGET_METRICS
    assert config_lib.SHARING_LOSSES == losses.SHARING_LOSSES
    assert config_lib.FINETUNE_LAYERS == finetune.FINETUNE_LAYERS
    assert config_lib.FINETUNE_SCHEDULES == finetune.FINETUNE_SCHEDULES
    assert config_lib.POCKET_SOURCE == pocket.POCKET_SOURCE
    assert config_lib.POCKET_DOMAINS == tuple(pocket.POCKET_DOMAINS)
    assert config_lib.DECATHLON_DOMAINS == tfds_loaders.DECATHLON_DOMAINS
    assert config_lib.DECATHLON_IMAGE_SIZE == tfds_loaders.DECATHLON_IMAGE_SIZE
    assert config_lib.IMAGENET_TO_SKETCH == tuple(tfds_loaders.IMAGENET_TO_SKETCH)
    assert config_lib.IMAGENET_TO_SKETCH_FOLDERS == tfds_loaders.IMAGENET_TO_SKETCH_FOLDERS
    assert config_lib.IMAGENET_TO_SKETCH_IMAGE_SIZE == tfds_loaders.IMAGENET_TO_SKETCH_IMAGE_SIZE


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"budget": 1.5}, r"budget must be a fraction in \(0, 1\]\. Received: budget=1\.5"),
        ({"budget": 0.0}, r"Received: budget=0\.0"),
        ({"dataset": "cifar"},
         r"dataset must be one of \['pocket', 'decathlon', 'imagenet_sketch', 'folders'\]\. Received: dataset='cifar'"),
        ({"sharing_loss": "dice"}, r"sharing_loss must be one of .*Received: sharing_loss='dice'"),
        ({"epochs": 0}, r"epochs must be an integer >= 1\. Received: epochs=0"),
        ({"quantize": ("int8", "int4")}, r"quantize must be one of .*Received: quantize='int4'"),
        ({"domains": ("digits", "cifar100")},
         r"Unknown domain 'cifar100' for dataset='pocket'.*Received: domains=digits,cifar100"),
        ({"domains": ("digits", "digits")}, r"distinct names.*Received: domains='digits,digits'"),
        ({"dataset": "folders"}, r"folders_root must be .*Received: folders_root=''"),
        ({"test_fraction": 1.0}, r"test_fraction must be a fraction in \(0, 1\)\. Received: test_fraction=1\.0"),
        ({"test_fraction": 0}, r"Received: test_fraction=0"),
        ({"dataset": "imagenet_sketch", "domains": ("cubs", "sketch")},
         r"folders_root must be a folder holding sketch/train"),
        ({"learning_rate": 0.0}, r"learning_rate must be a finite number > 0\. Received: learning_rate=0\.0"),
        ({"finetune_batch_size": -1},
         r"finetune_batch_size must be an integer >= 0\. Received: finetune_batch_size=-1"),
        ({"channel_multiple": 0}, r"channel_multiple must be an integer >= 1\. Received: channel_multiple=0"),
        ({"android_layout": "fast"}, r"android_layout must be one of .*Received: android_layout='fast'"),
        ({"whole_union": True, "finetune_epochs": 0},
         r"whole_union must be used with finetune_epochs > 0.*Received: whole_union=True"),
        ({"read_runs": True, "android_layout": "per_domain"},
         r"read_runs must be used with --dense_reads or --android_layout=shared_filters.*Received: read_runs=True"),
        ({"distill_weight": 1.5}, r"distill_weight must be a fraction in \[0, 1\]\. Received: distill_weight=1\.5"),
        ({"distill_weight": 0.5, "finetune_epochs": 0},
         r"distill_weight must be 0 when finetune_epochs=0.*Received: distill_weight=0\.5"),
        ({"android_layout": "shared_filters", "finetune_epochs": 0},
         r"android_layout must be per_domain or shared when finetune_epochs=0.*"
         r"Received: android_layout='shared_filters'"),
        ({"finetune_schedule": "linear"},
         r"finetune_schedule must be one of \['constant', 'cosine'\]\. Received: finetune_schedule='linear'"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**overrides)


def test_resolve_fills_dataset_defaults(tmp_path):
    pocket = ExperimentConfig().resolve()
    assert pocket.domains == config_lib.POCKET_DOMAINS and pocket.image_size == 32
    decathlon = ExperimentConfig(dataset="decathlon").resolve()
    assert len(decathlon.domains) == 10 and decathlon.image_size == 72
    sketch = ExperimentConfig(dataset="imagenet_sketch").resolve()
    assert sketch.domains == ("cubs", "stanford_cars", "flowers") and sketch.image_size == 224  # no folders_root
    for name in ("b_domain", "a_domain", ".hidden"):
        (tmp_path / name).mkdir()
    folders = ExperimentConfig(dataset="folders", folders_root=str(tmp_path)).resolve()
    assert folders.domains == ("a_domain", "b_domain")


def test_android_layout_auto_is_shared_filters_when_the_reduced_models_are_fine_tuned(tmp_path):
    assert ExperimentConfig().android_layout == "shared_filters"
    assert ExperimentConfig(finetune_epochs=0).android_layout == "per_domain"
    assert ExperimentConfig(finetune_epochs=0, android_layout="shared").android_layout == "shared"
    # A latency budget bounds each domain's own channels: its signature runs them.
    table = tmp_path / "table.json"
    table.write_text("{}")
    assert ExperimentConfig(budget_metric="latency", latency_table=str(table)).android_layout == "per_domain"
    # A saved config holds what "auto" became, so a later command reads the same layout.
    assert ExperimentConfig.from_dict(ExperimentConfig().to_dict()).android_layout == "shared_filters"


def test_json_round_trip_and_unknown_fields():
    config = ExperimentConfig(budget=0.25, domains=("letters", "digits"), sharing_weight=0.1).resolve()
    assert ExperimentConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match=r"Unknown ExperimentConfig fields \['bugdet'\]"):
        ExperimentConfig.from_dict({"bugdet": 0.5})
    with pytest.raises(ValueError, match=r"output must be a path ending in \.weights\.h5"):
        PretrainConfig(output="backbone.h5")


def test_later_command_keeps_the_run_and_takes_stage_flags(tmp_path):
    saved = ExperimentConfig(domains=("digits", "letters"), budget=0.25, epochs=3).resolve()
    config = config_for_workdir(saved, {"quantize": ("int8",), "epochs": 5, "budget": 0.25, "image_size": 0}, tmp_path)
    assert config == dataclasses.replace(saved, quantize=("int8",), epochs=5)


@pytest.mark.parametrize(
    "explicit, message",
    [
        ({"domains": ("digits", "textures")}, r"holds a run with domains=digits,letters, not digits,textures"),
        ({"backbone": "mobilenet_v2"}, r"holds a run with backbone='resnet26', not 'mobilenet_v2'"),
        ({"budget": 0.75}, r"holds a run with budget=0\.25, not 0\.75"),
        ({"dataset": "decathlon"}, r"holds a run with dataset='pocket', not 'decathlon'"),
        ({"domains": ()}, r"holds a run with domains=digits,letters, not digits,letters,textures,photo_digits"),
    ],
)
def test_later_command_with_another_run_is_refused(tmp_path, explicit, message):
    saved = ExperimentConfig(domains=("digits", "letters"), budget=0.25).resolve()
    with pytest.raises(WorkdirError, match=message + r".*a new --workdir"):
        config_for_workdir(saved, explicit, tmp_path)


def test_flagfile_text_replays_the_config(tmp_path):
    config = ExperimentConfig(domains=("letters", "digits"), budget=0.75, sharing_weight=0.1, augment=False,
                              quantize=("float32", "int8"), eval_examples=50).resolve()
    path = tmp_path / "flags.cfg"
    path.write_text(cli_flags.flagfile_text(config, "bap-train"))
    values = flags.FlagValues()
    cli_flags.define_experiment_flags(values)
    values(["bap-train", f"--flagfile={path}", "--workdir=w"])
    replayed = ExperimentConfig(**cli_flags.explicit_values(ExperimentConfig, values))
    assert replayed == config


def test_workdir_config_written_and_read_back(tmp_path):
    workdir = Workdir(tmp_path / "run").create()
    config = ExperimentConfig(budget=0.25).resolve()
    workdir.write_config(config, "--budget=0.25\n")
    assert workdir.saved_config() == config and workdir.flags.read_text() == "--budget=0.25\n"
    workdir.config.write_text("{not json")
    with pytest.raises(WorkdirError, match=r"config.json cannot be read back"):
        workdir.saved_config()


def test_unwritable_workdir_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(WorkdirError, match=r"Cannot write to the workdir.*Received: workdir='.*file/run'"):
        Workdir(tmp_path / "file" / "run").create()
