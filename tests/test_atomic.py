"""atomic_path: all or nothing at the destination."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bap_tf.atomic import atomic_path
from bap_tf.run.workdir import Workdir


def test_success_replaces_the_destination_and_leaves_no_temporary(tmp_path):
    destination = tmp_path / "model.tflite"
    destination.write_bytes(b"old")
    with atomic_path(destination) as temporary:
        assert temporary.parent == tmp_path and temporary.exists() and temporary != destination
        temporary.write_bytes(b"new")
        assert destination.read_bytes() == b"old"  # nothing visible before the body ends
    assert destination.read_bytes() == b"new"
    assert list(tmp_path.iterdir()) == [destination]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert os.stat(destination).st_mode & 0o777 == os.stat(plain).st_mode & 0o777


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    destination = tmp_path / "model.tflite"
    destination.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="converter died"):
        with atomic_path(destination) as temporary:
            temporary.write_bytes(b"half a mod")
            raise RuntimeError("converter died")
    assert destination.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [destination]


def test_failure_without_an_old_file_leaves_nothing(tmp_path):
    destination = tmp_path / "new_dir" / "model.tflite"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(destination):
            raise KeyboardInterrupt
    assert list(destination.parent.iterdir()) == []


def test_a_writer_killed_outright_leaves_a_temporary_that_the_next_command_removes(tmp_path):
    writer = ("import sys, time\nfrom bap_tf.atomic import atomic_path\n"
              "with atomic_path(sys.argv[1]) as temporary:\n    print(temporary, flush=True)\n    time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", writer, str(tmp_path / "pruned" / "union.keras")],
                             stdout=subprocess.PIPE, text=True)
    stale = Path(child.stdout.readline().strip())
    child.kill()
    child.wait()
    with atomic_path(tmp_path / "history.json") as live:  # a writer still at work keeps its file
        assert stale.exists() and stale.stat().st_size == 0
        Workdir(tmp_path).create()
        assert not stale.exists() and live.exists()
    assert list(tmp_path.rglob(".*.tmp*")) == []
