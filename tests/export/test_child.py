"""run_worker: exit codes, stderr and timeouts of child processes become clear errors."""

import pytest

from bap_tf.export.child import WorkerError, run_worker


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
