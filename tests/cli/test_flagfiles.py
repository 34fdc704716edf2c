"""Every flagfile in flags/ documents itself and parses into a valid config."""

from pathlib import Path

import pytest
from absl import flags

from bap_tf.cli import flags as cli_flags
from bap_tf.config import ExperimentConfig, PretrainConfig

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
