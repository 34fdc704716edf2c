"""Every flagfile in flags/ documents itself and parses into a valid config."""

import json
import re
from pathlib import Path

import pytest
from absl import flags

from bap_tf.cli import flags as cli_flags
from bap_tf.config import ExperimentConfig, PretrainConfig
from benchmarks.pocket_runs import REPORT_ONLY_FLAGS, effective_flags, flagfile_values, with_new_flags

ROOT = Path(__file__).resolve().parents[2]
FLAGFILES = sorted((ROOT / "flags").glob("*.cfg"))


def test_the_expected_flagfiles_exist():
    names = {path.name for path in FLAGFILES}
    assert {"pocket.cfg", "pretrain_pocket.cfg", "decathlon_base.cfg", "decathlon_b100.cfg", "decathlon_b075.cfg",
            "decathlon_b050.cfg", "decathlon_b025.cfg", "imagenet_sketch_r50_b050.cfg",
            "decathlon_mobilenet_v2_b050.cfg"} <= names


@pytest.mark.parametrize("path", FLAGFILES, ids=lambda p: p.name)
def test_flagfile_opens_with_command_runtime_and_result(path):
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert "bap-" in text and "--flagfile=flags/" in text, path.name
    assert "Expected runtime" in text and "2 CPU cores" in text and "Expected result" in text, path.name


@pytest.mark.parametrize("path", FLAGFILES, ids=lambda p: p.name)
def test_flagfile_parses_into_a_valid_config(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # flagfiles include each other by paths relative to the repository
    values = flags.FlagValues()
    pretrain = path.name.startswith("pretrain_")
    (cli_flags.define_pretrain_flags if pretrain else cli_flags.define_experiment_flags)(values)
    values(["bap", f"--flagfile=flags/{path.name}", "--workdir=runs/x"])
    config_class = PretrainConfig if pretrain else ExperimentConfig
    config = config_class(**cli_flags.explicit_values(config_class, values))
    if not pretrain and config.dataset == "pocket":
        assert config.resolve().image_size == 32


RECORD = re.compile(r"Measured: (\S+\.json)")
FIGURE = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\w.])")


def _header(path):
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return " ".join(lines)


def _numbers(value):
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return []


@pytest.mark.parametrize("path", FLAGFILES, ids=lambda p: p.name)
def test_flagfile_header_figures_are_those_of_its_recorded_run(path):
    """Figures after "Expected result" come from the record the header names ("Measured: FILE"),
    made with this flagfile's flags as they read now; without a record, no figures (a budget or
    another value the flagfile sets is not a result)."""
    header = _header(path)
    result = header[header.index("Expected result"):]
    own = set(flagfile_values(f"flags/{path.name}").values())
    records = RECORD.findall(header)
    figures = [f for f in FIGURE.findall(RECORD.sub("", result)) if f not in own]
    if not records:
        assert figures == [], f"{path.name} promises {figures} but names no recorded run (Measured: FILE)"
        return
    text = (ROOT / records[0]).read_text()
    record = json.loads(text)
    if "effective_flags" in record.get("measured", record):
        # A flag added since counts at the value that does what the code did before it existed.
        ran = {k: v for k, v in with_new_flags(record.get("measured", record)["effective_flags"]).items()
               if k not in REPORT_ONLY_FLAGS}
        wanted = {k: v for k, v in effective_flags({"flagfile": f"flags/{path.name}"}).items()
                  if k not in REPORT_ONLY_FLAGS}
        assert ran == wanted, f"{records[0]} was not made with {path.name} as it reads now"
    else:
        assert f"--flagfile=flags/{path.name}" in text, f"{records[0]} does not name {path.name}'s command"
    numbers = _numbers(record)
    for figure in figures:
        places = len(figure.split(".")[1])
        assert any(round(n, places) == float(figure) for n in numbers), (
            f"{path.name}: {figure} is not a figure of {records[0]}")


def test_library_fine_tuning_defaults_are_the_main_jobs():
    """The main job's fine-tuning (chosen by benchmarks.recipes) is what the library does by default."""
    main_job = effective_flags({"flagfile": "flags/pocket.cfg"})
    defaults = ExperimentConfig()
    for name in ("finetune_epochs", "finetune_batch_size", "finetune_learning_rate", "finetune_layers",
                 "finetune_schedule", "finetune_augment"):
        assert main_job[name] == getattr(defaults, name), name
