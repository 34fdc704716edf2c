"""Runs Python child processes of this package and reports their failures clearly.

TF 2.21's TFLite converter keeps memory after every call (MLIR contexts, traced graphs),
tensorflow-model-optimization switches the whole process to legacy Keras, and TFLM's binding
can crash outright on a too-small arena. All three are confined to child processes started by
``run_python`` (``run_worker`` for ``python -m bap_tf.export.<worker>``), whose exit code is
checked and whose stderr becomes part of the error.
"""

import os
import subprocess
import sys

# How much of a failed child's stderr goes into the error message: the end holds the traceback.
STDERR_TAIL_CHARS = 6000


class WorkerError(RuntimeError):
    """A worker process failed, crashed or ran out of time; the message holds its stderr tail."""


def run_python(args, *, timeout_s, what, env=None, error_class=WorkerError, accept=None):
    """Runs ``python *args``; returns its ``CompletedProcess`` when the exit code is accepted.

    Args:
        args: interpreter arguments (converted with ``str``): ``-m module ...``, a script, ``-c``.
        timeout_s: seconds before the child is killed; ``None`` waits for it.
        what: what the child does, for the error message ("int8 conversion of 'birds'").
        env: extra environment variables for the child, over this process's.
        error_class: the ``WorkerError`` subclass to raise.
        accept: ``accept(returncode)`` is true for exit codes the caller reads as answers rather
            than failures (negative: killed by that signal); by default 0 only.

    Raises:
        WorkerError: an exit code not accepted, or a timeout; includes the stderr tail.
    """
    command = [sys.executable, *map(str, args)]
    child_env = {**os.environ, **(env or {})}
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=child_env
        )
    except subprocess.TimeoutExpired as error:
        raise error_class(
            f"The {what} did not finish within {timeout_s} s and was killed. Expected it to end "
            f"in time; raise timeout_s for large models. Received: timeout_s={timeout_s}\n"
            f"--- child stderr (tail) ---\n{stderr_tail(error.stderr)}"
        ) from None
    if not (accept(result.returncode) if accept else result.returncode == 0):
        how = (
            f"was killed by signal {-result.returncode}"
            if result.returncode < 0
            else f"exited with code {result.returncode}"
        )
        raise error_class(
            f"The {what} failed: the child process {how}.\n"
            f"Command: {' '.join(command)}\n--- child stderr (tail) ---\n{stderr_tail(result.stderr)}"
        )
    return result


def run_worker(module, args, *, timeout_s, what, env=None, error_class=WorkerError):
    """``run_python(["-m", module, *args])`` with TensorFlow's C++ log quiet unless set.

    ``module`` is a dotted name with a ``__main__`` block, e.g. ``bap_tf.export.convert_worker``.
    """
    quiet = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    return run_python(
        ["-m", module, *args], timeout_s=timeout_s, what=what, env={**quiet, **(env or {})},
        error_class=error_class,
    )


def stderr_tail(text):
    """The last ``STDERR_TAIL_CHARS`` of a child's stderr (``str``, ``bytes`` or ``None``)."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-STDERR_TAIL_CHARS:]
