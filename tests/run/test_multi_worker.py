"""--strategy=multi_worker for real: two worker processes on 127.0.0.1, each with its TF_CONFIG.

Each worker runs ``multi_worker_fit.py`` (beside this file): a tiny BudgetAwareModel, a few
steps of ``fit`` under ``get_strategy("multi_worker")``, its weights saved, then more training
for the second test to kill a worker in. One cluster serves both tests (two TensorFlow imports
are most of their CPU time). Ports are picked free at run time, on 127.0.0.1 only.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("multi_worker_fit.py")
STEPS = 2
# Collectives add the two workers' halves of a global batch in another order than one device
# sums the whole batch: float32 rounding, a few ulps on weights of order 1 (as test_distribute).
ATOL, RTOL = 2e-5, 1e-4


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two workers that train ``STEPS`` steps, save their weights, then train on until killed."""
    directory = tmp_path_factory.mktemp("multi_worker")
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2",
               "CUDA_VISIBLE_DEVICES": ""}
        command = [sys.executable, str(WORKER), "multi_worker", str(directory / f"worker{index}.npz"),
                   str(STEPS), "100000"]
        # stderr to a file: a pipe nobody reads while the worker trains could fill up and block it.
        with open(directory / f"worker{index}.log", "w") as log:
            workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True))
    for worker in workers:  # the workers' output up to "saved" (or its end, when one failed)
        if not any(line.strip() == "saved" for line in worker.stdout):
            for other in workers:
                other.kill()
            pytest.fail(f"a worker failed:\n{stderr(directory, workers.index(worker))[-3000:]}")
    yield directory, addresses, workers
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()


def stderr(directory, index):
    return (directory / f"worker{index}.log").read_text()


@pytest.mark.slow
def test_two_workers_train_like_one_device_on_the_same_global_batch(cluster, tmp_path):
    directory, _, _ = cluster
    # The default strategy on the same global batches, in this process.
    sys.path.insert(0, str(WORKER.parent))
    import multi_worker_fit

    multi_worker_fit.main("default", tmp_path / "default.npz", STEPS)
    first, second = (np.load(directory / f"worker{index}.npz") for index in range(2))
    default = np.load(tmp_path / "default.npz")
    assert sorted(first.files) == sorted(default.files)
    moved = 0
    for name in default.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)  # mirrored: one model
        np.testing.assert_allclose(first[name], default[name], atol=ATOL, rtol=RTOL, err_msg=name)
        moved += "switches" in name and not np.allclose(default[name], 1e-2, rtol=0, atol=1e-7)
    assert moved > 0  # the steps really moved the switches


@pytest.mark.slow
def test_a_killed_worker_is_reported_instead_of_a_hang(cluster):
    directory, addresses, (survivor, victim) = cluster
    assert survivor.poll() is None and victim.poll() is None  # still training together
    victim.kill()
    killed = time.monotonic()
    try:
        survivor.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("the surviving worker still waited for the killed one after 180 s")
    message = stderr(directory, 0)
    assert survivor.returncode != 0
    assert "WorkerLostError" in message, message[-3000:]
    assert f"worker 1 ({addresses[1]}) of the multi-worker run died or stopped answering" in message
    assert "Received: UnavailableError" in message
    print(f"the surviving worker stopped {time.monotonic() - killed:.0f} s after the kill")
