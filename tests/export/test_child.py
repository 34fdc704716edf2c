"""run_python, run_worker: exit codes, signals, stderr and timeouts of child processes become
clear errors."""

import pytest

from bap_tf.export.child import STDERR_TAIL_CHARS, WorkerError, run_python, run_worker, stderr_tail


class _CustomError(WorkerError):
    pass


def test_a_failing_child_raises_with_its_stderr(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(_CustomError, match=r"(?s)The json check failed: the child process exited "
                       r"with code 2\..*No such file"):
        run_worker("json.tool", [missing], timeout_s=60, what="json check", error_class=_CustomError)


def test_a_child_past_its_timeout_is_killed():
    with pytest.raises(WorkerError, match=r"did not finish within 1 s.*Received: timeout_s=1"):
        run_worker("timeit", ["-n", "1", "import time; time.sleep(30)"], timeout_s=1, what="sleep")


def test_a_successful_child_returns_its_output(tmp_path):
    document = tmp_path / "ok.json"
    document.write_text('{"a": 1}')
    result = run_worker("json.tool", [document], timeout_s=60, what="json check")
    assert result.returncode == 0 and '"a": 1' in result.stdout


def test_run_python_reports_an_exit_code_the_caller_does_not_accept():
    child = ["-c", "import sys; print('the reason', file=sys.stderr); sys.exit(3)"]
    result = run_python(child, timeout_s=60, what="probe", accept=lambda code: code in (0, 3))
    assert result.returncode == 3 and "the reason" in result.stderr
    with pytest.raises(WorkerError, match=r"(?s)The probe failed: the child process exited with "
                       r"code 3\.\nCommand: .* -c .*--- child stderr \(tail\) ---\nthe reason"):
        run_python(child, timeout_s=60, what="probe")


def test_run_python_names_the_signal_that_killed_the_child():
    with pytest.raises(WorkerError, match=r"(?s)The crash failed: the child process was killed by "
                       r"signal 9\..*about to die"):
        run_python(["-c", "import os, sys; print('about to die', file=sys.stderr, flush=True); "
                    "os.kill(os.getpid(), 9)"], timeout_s=60, what="crash")


def test_run_python_keeps_only_the_tail_of_stderr_and_passes_env_over_this_process(monkeypatch):
    monkeypatch.setenv("BAP_TF_TEST_KEPT", "kept")
    child = ["-c", "import os, sys; print('x' * 10000 + os.environ['BAP_TF_TEST_KEPT'] + "
             "os.environ['BAP_TF_TEST_ADDED'], file=sys.stderr); sys.exit(1)"]
    with pytest.raises(WorkerError) as caught:
        run_python(child, timeout_s=60, what="env check", env={"BAP_TF_TEST_ADDED": "added"})
    tail = str(caught.value).split("--- child stderr (tail) ---\n")[1]
    assert tail == stderr_tail("x" * 10000 + "keptadded\n") and len(tail) == STDERR_TAIL_CHARS
