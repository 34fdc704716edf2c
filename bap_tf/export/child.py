"""Runs a worker module of this package in a child process and reports its failure clearly.

TF 2.21's TFLite converter keeps memory after every call (MLIR contexts, traced graphs), and
tensorflow-model-optimization switches the whole process to legacy Keras. Both are confined
to a child process: ``python -m bap_tf.export.<worker> ...``, whose exit code is checked and
whose stderr becomes part of the error.
"""

import os
import subprocess
import sys

# How much of a failed child's stderr goes into the error message: the end holds the traceback.
STDERR_TAIL_CHARS = 6000


class WorkerError(RuntimeError):
    """A worker process failed, crashed or ran out of time; the message holds its stderr tail."""


def run_worker(module, args, *, timeout_s, what, env=None, error_class=WorkerError):
    """Runs ``python -m module *args``; returns its ``CompletedProcess`` when it exits with 0.

    Args:
        module: dotted module name with a ``__main__`` block, e.g. ``bap_tf.export.convert_worker``.
        args: command-line arguments (converted with ``str``).
        timeout_s: seconds before the child is killed.
        what: what the child does, for the error message ("int8 conversion of 'birds'").
        env: extra environment variables for the child.
        error_class: the ``WorkerError`` subclass to raise.

    Raises:
        WorkerError: non-zero exit, death by signal, or timeout; includes the stderr tail.
    """
    command = [sys.executable, "-m", module, *map(str, args)]
    child_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    child_env.update(env or {})
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=child_env
        )
    except subprocess.TimeoutExpired as error:
        raise error_class(
            f"The {what} did not finish within {timeout_s} s and was killed. Expected it to end "
            f"in time; raise timeout_s for large models. Received: timeout_s={timeout_s}\n"
            f"--- child stderr (tail) ---\n{_tail(error.stderr)}"
        ) from None
    if result.returncode != 0:
        how = (
            f"was killed by signal {-result.returncode}"
            if result.returncode < 0
            else f"exited with code {result.returncode}"
        )
        raise error_class(
            f"The {what} failed: the child process {how}.\n"
            f"Command: {' '.join(command)}\n--- child stderr (tail) ---\n{_tail(result.stderr)}"
        )
    return result


def _tail(text):
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-STDERR_TAIL_CHARS:]
