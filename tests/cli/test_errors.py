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
from PIL import Image

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
        ("bap-train", ["--dataset=cifar10"],
         r"flag --dataset=cifar10: value should be one of <pocket\|decathlon\|imagenet_sketch\|folders>"),
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
    assert_one_line_error(result, "bap-train",
                          r"Cannot write to the workdir\. .*Received: workdir='.*a_file/run' \(NotADirectoryError")


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


# -- A run that cannot start is refused before it writes anything. -------------------------------
TINY = ["--dataset=folders", "--epochs=1", "--steps_per_epoch=2", "--batch_size=4", "--image_size=16", "--width=4",
        "--pretrained=none", "--finetune_epochs=0", "--nobaselines", "--calibration_examples=4"]


def _image(path, colour=(200, 0, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


@pytest.fixture
def folders_root(tmp_path):
    """Domains d1 and d2, each with train/ and test/ trees of two classes of two 8x8 images."""
    root = tmp_path / "data"
    for domain in ("d1", "d2"):
        for split in ("train", "test"):
            for name in ("cat", "dog"):
                for i in range(2):
                    _image(root / domain / split / name / f"{i}.png", (100 * i, 200 if name == "cat" else 0, 0))
    return root


def _truncate(root):
    path = root / "d2" / "test" / "dog" / "1.png"
    path.write_bytes(path.read_bytes()[:40])


def _one_class(root):
    for split in ("train", "test"):
        for path in (root / "d2" / split / "dog").iterdir():
            path.unlink()
        (root / "d2" / split / "dog").rmdir()


@pytest.mark.parametrize(
    "damage, args, pattern",
    [
        pytest.param(_truncate, [], r"Image file cannot be decoded.*Received: .*/d2/test/dog/1\.png",
                     id="truncated_png"),
        pytest.param(None, ["--domains=d1,nosuch"],
                     r"Expected a folder of class sub-folders\. Received: root='.*/nosuch'", id="missing_domain"),
        pytest.param(None, ["--pretrained=no/such.weights.h5"],
                     r"pretrained must be a weights file.*'no/such\.weights\.h5', which does not exist",
                     id="missing_pretrained"),
        pytest.param(None, ["--domains=d1,café"],
                     r"Domain name 'café' cannot name layers, files, TFLite signatures and C identifiers",
                     id="bad_name"),
        pytest.param(None, ["--domains=d1,D1"], r"Domains 'd1' and 'D1' would share C identifiers",
                     id="colliding_names"),
        pytest.param(_one_class, [], r"Domain 'd2' has 1 class \(\['cat'\]\)\. Expected at least 2 classes",
                     id="one_class"),
        pytest.param(lambda root: _image(root / "d2" / "test" / "emu" / "0.png"), [],
                     r"Folder .*/d2/test has classes that the given label space lacks.*Received: \['emu'\]",
                     id="test_class_not_in_train"),
        pytest.param(None, ["--quantize=int8,qat", "--backbone=resnet50"],
                     r"quantize='qat' needs a backbone whose layers the QAT rebuild knows.*"
                     r"Received: backbone='resnet50'",
                     id="qat_backbone"),
    ],
)
def test_a_run_that_cannot_start_is_refused_before_it_writes_anything(folders_root, tmp_path, damage, args, pattern):
    if damage is not None:
        damage(folders_root)
    workdir = tmp_path / "run"
    result = run("bap-train", f"--workdir={workdir}", f"--folders_root={folders_root}", *TINY, *args)
    assert_one_line_error(result, "bap-train", pattern)
    assert not workdir.exists()  # so the corrected command starts a new run instead of being refused


def test_a_workdir_keeps_its_folders_root(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = ExperimentConfig(dataset="folders", folders_root=str(tmp_path / "data"), domains=("d1", "d2")).resolve()
    (workdir / "config.json").write_text(config.to_json())
    result = run("bap-prune", f"--workdir={workdir}", f"--folders_root={tmp_path / 'other'}")
    assert_one_line_error(result, "bap-prune",
                          rf"holds a run with folders_root='{tmp_path}/data', not '{tmp_path}/other'")
