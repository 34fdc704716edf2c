"""How the commands end: one-line user errors (exit 2), the MCU budget (exit 3), bugs keep tracebacks."""

import logging
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import logging as absl_logging

from bap_tf.cli import app
from bap_tf.export.mcu import McuBudgetError


def _raise(error):
    def main(argv):
        raise error

    return main


@pytest.mark.parametrize("error", [ValueError("budget must be a fraction in (0, 1].\nReceived: budget=2"),
                                   FileNotFoundError("no such file"), PermissionError("read-only")])
def test_user_errors_are_one_line_with_exit_code_2(capsys, error):
    with pytest.raises(SystemExit) as exit_info:
        app.call_main("bap-x", _raise(error), ["bap-x"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bap-x: error: ")
    assert "\n" not in lines[0] and str(error).split()[0] in lines[0]


def test_mcu_budget_exits_with_code_3(capsys):
    error = McuBudgetError("Microcontroller budget exceeded (flash 1 KiB ...).\ndigits: flash over by 3.0 KiB", {})
    with pytest.raises(SystemExit) as exit_info:
        app.call_main("bap-eval", _raise(error), ["bap-eval"])
    assert exit_info.value.code == 3
    assert "digits: flash over by 3.0 KiB" in capsys.readouterr().err


def test_bugs_keep_their_traceback():
    with pytest.raises(KeyError):
        app.call_main("bap-x", _raise(KeyError("bug")), ["bap-x"])


def test_positional_arguments_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        app.call_main("bap-x", lambda argv: None, ["bap-x", "runs/pocket"])
    assert exit_info.value.code == 2 and "unexpected arguments ['runs/pocket']" in capsys.readouterr().err


def test_a_nan_loss_is_a_one_line_error(capsys):
    from bap_tf.run.checkpoint import NonFiniteLossError

    error = NonFiniteLossError("The loss became nan at epoch 2, step 5. Lower --learning_rate or check the data.")
    with pytest.raises(SystemExit) as exit_info:
        app.call_main("bap-train", _raise(error), ["bap-train"])
    assert exit_info.value.code == 2 and "The loss became nan at epoch 2, step 5" in capsys.readouterr().err


def test_tensorflow_info_lines_are_dropped_below_verbosity_1():
    absl_logger, tf_logger = absl_logging.get_absl_logger(), logging.getLogger("tensorflow")
    filters, level = list(absl_logger.filters), tf_logger.level
    tf_file = os.path.join(os.path.dirname(tf.__file__), "python", "saved_model", "signature_serialization.py")

    def passes(level, path):
        return bool(absl_logger.filter(logging.LogRecord("absl", level, path, 1, "message", None, None)))

    try:
        app.quiet_tensorflow()
        assert not passes(logging.INFO, tf_file)
        assert passes(logging.WARNING, tf_file)
        assert passes(logging.INFO, app.__file__)  # bap-tf's own progress lines stay
        assert tf_logger.level == logging.WARNING
    finally:
        absl_logger.filters[:] = filters
        tf_logger.setLevel(level)


@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_flags_are_parsed_before_tensorflow_loads(command):
    """A command's --help and flag errors need neither TensorFlow nor Keras (bap_tf/__init__.py)."""
    script = (f"import sys, bap_tf.cli.{command}; "
              "sys.exit(' '.join(m for m in ('tensorflow', 'keras') if m in sys.modules) or None)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"bap_tf.cli.{command} loads {result.stderr.strip()}"
