"""The console entry points fail on a user's mistake with one line and a non-zero exit code.

Each case runs the installed command in a subprocess, as a user would. A flag error comes
before TensorFlow loads; an error found later (a missing file, a workdir of another run) comes
after, and on some machines TensorFlow's native runtime writes a few log lines to stderr (absl's
"before InitializeLog" banner, CUDA stub notes). Those lines are TensorFlow's, not ours:
everything bap-tf itself prints must be the one error line.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bap_tf.config import ExperimentConfig

BIN = Path(sys.executable).parent


def run(command, *args, cwd=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([str(BIN / command), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


NATIVE_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] .*"
    r"|To enable the following instructions: .*)$"
)


def assert_one_line_error(result, command, pattern, only_line=True):
    """Exit code 2 and ``command: error: ...`` as the last line of stderr, no traceback; with
    ``only_line``, nothing else on stderr but TensorFlow's native log lines."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    if only_line:
        ours = [line for line in lines if not NATIVE_LOG_LINE.match(line)]
        assert len(ours) == 1, result.stderr
    assert lines[-1].startswith(f"{command}: error: "), lines[-1]
    assert re.search(pattern, lines[-1]), lines[-1]
    assert [line for line in lines if ": error: " in line] == lines[-1:]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command, args, pattern",
    [
        ("bap-train", ["--budget=1.5"], r"flag --budget=1\.5: 1\.5 is not number <= 1\.0"),
        ("bap-train", ["--budget=0"], r"flag --budget=0\.0: --budget must be > 0"),
        ("bap-prune", ["--epochs=many"], r"flag --epochs=many: invalid literal"),
        ("bap-train", ["--flagfile=no/such.cfg"], r"Unable to open flagfile: .*'no/such\.cfg'"),
        ("bap-train", ["--dataset=cifar10"], r"flag --dataset=cifar10: value should be one of <pocket\|decathlon\|imagenet_sketch\|folders>"),
        ("bap-eval", ["--quantize=float32,int4"], r"--quantize must be a comma list of float32,dynamic,int8,qat"),
        ("bap-train", ["--stages=train,deploy"], r"--stages must be 'all' or a comma list of train,prune,export,eval"),
        ("bap-train", ["--no_such_flag=1"], r"Unknown command line flag 'no_such_flag'"),
        ("bap-train", ["--domains=digits,cifar100"], r"Unknown domain 'cifar100' for dataset='pocket'"),
        ("bap-pretrain", ["--source=mnist"], r"flag --source=mnist: value should be one of <fashion_mnist\|imagenet>"),
    ],
)
def test_bad_flags_give_one_line(tmp_path, command, args, pattern):
    workdir = tmp_path / "run"
    result = run(command, f"--workdir={workdir}", *args)
    assert_one_line_error(result, command, pattern)
    assert not workdir.exists()  # nothing is created for a command that cannot run


def test_missing_workdir_flag():
    assert_one_line_error(run("bap-export"), "bap-export", r"--workdir must have a value other than None")


def test_unwritable_workdir(tmp_path):
    (tmp_path / "a_file").write_text("")
    result = run("bap-train", f"--workdir={tmp_path / 'a_file' / 'run'}")
    assert_one_line_error(result, "bap-train", r"Cannot write to the workdir\. .*Received: workdir='.*a_file/run' \(NotADirectoryError")


@pytest.fixture
def trained_workdir(tmp_path):
    """A workdir as bap-train leaves it (only its config matters before anything loads)."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = ExperimentConfig(domains=("digits", "letters"), budget=0.5).resolve()
    (workdir / "config.json").write_text(config.to_json())
    return workdir


@pytest.mark.parametrize(
    "command, args, pattern",
    [
        ("bap-prune", ["--domains=digits,textures"], r"holds a run with domains=digits,letters, not digits,textures"),
        ("bap-eval", ["--backbone=mobilenet_v2"], r"holds a run with backbone='resnet26', not 'mobilenet_v2'"),
        ("bap-export", ["--dataset=decathlon"], r"holds a run with dataset='pocket', not 'decathlon'"),
        ("bap-train", ["--budget=0.25"], r"holds a run with budget=0\.5, not 0\.25"),
    ],
)
def test_workdir_of_another_run_is_refused(trained_workdir, command, args, pattern):
    before = (trained_workdir / "config.json").read_text()
    result = run(command, f"--workdir={trained_workdir}", *args)
    assert_one_line_error(result, command, pattern + r".*Expected the settings of that run")
    assert (trained_workdir / "config.json").read_text() == before


def test_flagfile_values_count_like_command_line_ones(trained_workdir, tmp_path):
    flagfile = tmp_path / "other.cfg"
    flagfile.write_text("# another run\n--domains=letters,textures\n")
    result = run("bap-prune", f"--flagfile={flagfile}", f"--workdir={trained_workdir}")
    assert_one_line_error(result, "bap-prune", r"holds a run with domains=digits,letters, not letters,textures")


def test_verbosity_shows_the_traceback(tmp_path):
    result = run("bap-train", f"--workdir={tmp_path / 'run'}", "--domains=digits,cifar100", "--verbosity=1")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "Unknown domain 'cifar100'" in result.stderr


def test_stage_before_its_input_exists_says_which_stage_to_run(trained_workdir):
    result = run("bap-export", f"--workdir={trained_workdir}")
    # The check runs once TensorFlow has loaded (and logged a few lines).
    assert_one_line_error(result, "bap-export", r"pruned/union\.keras is missing in workdir .*Expected the prune stage "
                          r"to have run there first \(bap-prune --workdir=", only_line=False)
    assert json.loads((trained_workdir / "config.json").read_text())["domains"] == ["digits", "letters"]
